package fakevllm

// The Responses API event stream, in vLLM's order: response.created,
// response.in_progress, response.output_item.added,
// response.content_part.added, one response.output_text.delta per word,
// response.output_text.done, response.content_part.done,
// response.output_item.done, response.completed (with usage, also when the
// status is incomplete). Every event is "event: T" + "data: …" with a
// sequence_number counting from 0; no [DONE]. Events are dumped as
// openai-python's models: their fields in alphabetical order.

import (
	"net/http"
)

type responseEvent struct {
	Response       responsesResponse `json:"response"`
	SequenceNumber int               `json:"sequence_number"`
	Type           string            `json:"type"`
}

type outputItemEvent struct {
	Item           any    `json:"item"`
	OutputIndex    int    `json:"output_index"`
	SequenceNumber int    `json:"sequence_number"`
	Type           string `json:"type"`
}

// streamedMessage is the output message of output_item.added (no content
// yet) and output_item.done (vLLM adds annotations and logprobs to it).
type streamedMessage struct {
	ID          string       `json:"id"`
	Content     []outputText `json:"content"`
	Role        string       `json:"role"`
	Status      string       `json:"status"`
	Type        string       `json:"type"`
	Annotations *emptyList   `json:"annotations,omitempty"`
	Logprobs    *emptyList   `json:"logprobs,omitempty"`
}

type contentPartEvent struct {
	ContentIndex   int    `json:"content_index"`
	ItemID         string `json:"item_id"`
	OutputIndex    int    `json:"output_index"`
	Part           any    `json:"part"`
	SequenceNumber int    `json:"sequence_number"`
	Type           string `json:"type"`
}

// addedPart is the empty output_text part of content_part.added.
type addedPart struct {
	Annotations emptyList `json:"annotations"`
	Text        string    `json:"text"`
	Type        string    `json:"type"`
	Logprobs    emptyList `json:"logprobs"`
}

// textDeltaEvent is a response.output_text.delta event.
type textDeltaEvent struct {
	ContentIndex   int       `json:"content_index"`
	Delta          string    `json:"delta"`
	ItemID         string    `json:"item_id"`
	Logprobs       emptyList `json:"logprobs"`
	OutputIndex    int       `json:"output_index"`
	SequenceNumber int       `json:"sequence_number"`
	Type           string    `json:"type"`
}

type textDoneEvent struct {
	ContentIndex   int       `json:"content_index"`
	ItemID         string    `json:"item_id"`
	Logprobs       emptyList `json:"logprobs"`
	OutputIndex    int       `json:"output_index"`
	SequenceNumber int       `json:"sequence_number"`
	Text           string    `json:"text"`
	Type           string    `json:"type"`
}

// responseErrorEvent is the "error" event that ends a failed stream.
type responseErrorEvent struct {
	Code           string `json:"code"`
	Message        string `json:"message"`
	Param          null   `json:"param"`
	SequenceNumber int    `json:"sequence_number"`
	Type           string `json:"type"`
}

// streamResponses sends resp as vLLM's event sequence, one delta per word.
func streamResponses(w http.ResponseWriter, p params, resp responsesResponse, words int) {
	s := newSSEWriter(w, p)
	seq := 0
	emit := func(name string, v any) {
		s.event(name, v)
		seq++
	}
	started := resp
	started.Status, started.Output, started.Usage, started.IncompleteDetails = "in_progress", []outputMessage{}, nil, nil
	emit("response.created", responseEvent{Response: started, SequenceNumber: seq, Type: "response.created"})
	emit("response.in_progress", responseEvent{Response: started, SequenceNumber: seq, Type: "response.in_progress"})
	msg := resp.Output[0]
	emit("response.output_item.added", outputItemEvent{
		Item:        streamedMessage{ID: msg.ID, Content: []outputText{}, Role: "assistant", Status: "in_progress", Type: "message"},
		OutputIndex: 0, SequenceNumber: seq, Type: "response.output_item.added",
	})
	emit("response.content_part.added", contentPartEvent{
		ItemID: msg.ID, Part: addedPart{Type: "output_text"}, SequenceNumber: seq, Type: "response.content_part.added",
	})
	for k := range words {
		if s.failNowWith(func() {
			s.event("error", responseErrorEvent{
				Code: "InternalServerError", Message: "fakevllm: generation failed mid-stream", SequenceNumber: seq, Type: "error",
			})
		}) {
			return
		}
		emit("response.output_text.delta", textDeltaEvent{
			Delta: fillerWord(k), ItemID: msg.ID, SequenceNumber: seq, Type: "response.output_text.delta",
		})
	}
	text := msg.Content[0].Text
	emit("response.output_text.done", textDoneEvent{ItemID: msg.ID, SequenceNumber: seq, Text: text, Type: "response.output_text.done"})
	emit("response.content_part.done", contentPartEvent{
		ItemID: msg.ID, Part: msg.Content[0], SequenceNumber: seq, Type: "response.content_part.done",
	})
	emit("response.output_item.done", outputItemEvent{
		Item: streamedMessage{
			ID: msg.ID, Content: msg.Content, Role: "assistant", Status: "completed", Type: "message",
			Annotations: &emptyList{}, Logprobs: &emptyList{},
		},
		OutputIndex: 0, SequenceNumber: seq, Type: "response.output_item.done",
	})
	emit("response.completed", responseEvent{Response: resp, SequenceNumber: seq, Type: "response.completed"})
}
