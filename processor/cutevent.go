package processor

import (
	"encoding/json"
	"strconv"

	"github.com/spendguard/spendguard/pricing"
)

// The last bytes a client receives from a stream spendguard ends at a
// budget cap (grow.go): an event in the endpoint's own streaming error
// shape, which its SDKs surface as an error, followed by the end of the
// response.
//
//   - chat and completions: a data event holding spendguard's error
//     object, then data: [DONE], as vLLM ends a stream that failed
//     mid-way (its SDKs raise on an event with an "error" member);
//   - Responses: a response.failed event whose response has status
//     "failed" and the error, the next sequence_number;
//   - Messages (Anthropic): event: error with a billing_error, as
//     Anthropic's API ends a stream that failed.

// cutEvent renders the final event of a stream cut with message, after
// delivered events (the Responses sequence_number continues from it).
func cutEvent(e pricing.Endpoint, message, model, responseID string, delivered int, createdAt int64) []byte {
	switch e {
	case pricing.Responses:
		return responsesFailed(message, model, responseID, delivered, createdAt)
	case pricing.Messages:
		b, _ := json.Marshal(anthropicError{Type: "error", Error: anthropicFields{Type: anthropicType(402), Message: message}})
		out := make([]byte, 0, len(b)+32)
		out = append(out, "event: error\ndata: "...)
		out = append(out, b...)
		return append(out, "\n\n"...)
	}
	b, _ := json.Marshal(errorBody{Error: errorFields{Message: message, Type: typeBudgetExceeded, Code: typeBudgetExceeded}})
	out := make([]byte, 0, len(b)+32)
	out = append(out, "data: "...)
	out = append(out, b...)
	return append(out, "\n\ndata: [DONE]\n\n"...)
}

type failedEvent struct {
	Type           string         `json:"type"`
	SequenceNumber int            `json:"sequence_number"`
	Response       failedResponse `json:"response"`
}

type failedResponse struct {
	ID                string      `json:"id"`
	Object            string      `json:"object"`
	CreatedAt         int64       `json:"created_at"`
	Status            string      `json:"status"`
	Error             failedError `json:"error"`
	IncompleteDetails *struct{}   `json:"incomplete_details"`
	Model             string      `json:"model"`
	Output            []struct{}  `json:"output"`
	Usage             *struct{}   `json:"usage"`
}

type failedError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// responsesFailed is a Responses API response.failed event.
func responsesFailed(message, model, id string, seq int, createdAt int64) []byte {
	b, _ := json.Marshal(failedEvent{
		Type: "response.failed", SequenceNumber: seq,
		Response: failedResponse{
			ID: id, Object: "response", CreatedAt: createdAt, Status: "failed",
			Error: failedError{Code: typeBudgetExceeded, Message: message},
			Model: model, Output: []struct{}{},
		},
	})
	out := make([]byte, 0, len(b)+40)
	out = append(out, "event: response.failed\ndata: "...)
	out = append(out, b...)
	return append(out, "\n\n"...)
}

// cutMessage is what the client is told when its stream is ended at the
// cap of budget (a budget's name, or limits.max_request_usd).
func cutMessage(budget string, completion int64) string {
	if budget == maxRequestBudget {
		return "spendguard ended this response: it reached limits.max_request_usd after " +
			strconv.FormatInt(completion, 10) + " output tokens"
	}
	return "spendguard ended this response: budget " + strconv.Quote(budget) +
		" has no room for more output (" + strconv.FormatInt(completion, 10) + " output tokens delivered)"
}

// maxRequestBudget names limits.max_request_usd where a budget name goes.
const maxRequestBudget = "limits.max_request_usd"
