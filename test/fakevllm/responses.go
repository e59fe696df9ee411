package fakevllm

// The Responses API: POST /v1/responses (JSON, SSE, background), GET
// /v1/responses/{id} and POST /v1/responses/{id}/cancel.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"time"
)

type responsesRequest struct {
	Model           string          `json:"model"`
	Input           json.RawMessage `json:"input"`
	Instructions    *string         `json:"instructions"`
	MaxOutputTokens *int            `json:"max_output_tokens"`
	Stream          bool            `json:"stream"`
	Background      bool            `json:"background"`
	Store           *bool           `json:"store"`
}

// maxStoredResponses bounds the responses kept for GET /v1/responses/{id};
// past it the oldest are forgotten.
const maxStoredResponses = 4096

// responseStore keeps every answered response by id, as vLLM does with its
// response store enabled.
type responseStore struct {
	mu    sync.Mutex
	byID  map[string]*storedResponse
	order []string
}

type storedResponse struct {
	final      responsesResponse // the completed response
	background bool
	readyAt    time.Time // a background response is pending until then
	pending    string    // what it reports while pending: queued or in_progress
	cancelled  bool
}

func (st *responseStore) put(r *storedResponse) {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.byID == nil {
		st.byID = map[string]*storedResponse{}
	}
	if len(st.order) >= maxStoredResponses {
		delete(st.byID, st.order[0])
		st.order = st.order[1:]
	}
	st.byID[r.final.ID] = r
	st.order = append(st.order, r.final.ID)
}

// view is the response as it stands now.
func (r *storedResponse) view(now time.Time) responsesResponse {
	v := r.final
	switch {
	case r.cancelled:
		v.Status, v.Output, v.Usage, v.IncompleteDetails = "cancelled", []outputMessage{}, nil, nil
	case r.background && now.Before(r.readyAt):
		v.Status, v.Output, v.Usage, v.IncompleteDetails = r.pending, []outputMessage{}, nil, nil
	}
	return v
}

// with calls fn with the stored response of id, under the store's lock,
// and reports whether there is one.
func (st *responseStore) with(id string, fn func(*storedResponse)) bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	r, ok := st.byID[id]
	if ok {
		fn(r)
	}
	return ok
}

func serveResponses(w http.ResponseWriter, body []byte, p params) {
	var req responsesRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	if _, ok := validate(w, nil, req.MaxOutputTokens); !ok {
		return
	}
	switch {
	case req.Background && req.Store != nil && !*req.Store:
		writeTypedError(w, http.StatusBadRequest, "invalid_request_error", "background can only be used when `store` is true", "")
		return
	case req.Background && req.Stream:
		writeTypedError(w, http.StatusBadRequest, "invalid_request_error", "fakevllm: background with stream is not served", "")
		return
	}
	// instructions and input count together, as the system and user
	// messages of a chat would.
	var v [2]any
	if req.Instructions != nil {
		v[0] = *req.Instructions
	}
	_ = json.Unmarshal(req.Input, &v[1])
	pl := newPlan(p, model, []int{estimateOne(v[:])}, req.MaxOutputTokens, 1)
	p.tokens.add(model, pl.prompt, pl.perChoice)
	resp := newResponse(pl, req)
	stored := &storedResponse{final: resp, background: req.Background, readyAt: time.Now().Add(p.backgroundDelay), pending: p.backgroundStatus}
	if req.Store == nil || *req.Store {
		p.responses.put(stored)
	}
	switch {
	case req.Stream:
		streamResponses(w, p, resp, pl.words)
	case req.Background:
		v := stored.view(time.Time{}) // pending when it is answered, whatever the delay
		writeBody(w, p.okStatus(), contentTypeJSON, marshal(v), p.chunkSize)
	default:
		writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
	}
}

// newResponse is the finished response of pl: "incomplete" with reason
// max_output_tokens when the output reached max_output_tokens.
func newResponse(pl plan, req responsesRequest) responsesResponse {
	maxOutput := maxModelLen - pl.prompt
	if req.MaxOutputTokens != nil {
		maxOutput = min(*req.MaxOutputTokens, maxOutput)
	}
	resp := responsesResponse{
		ID: newID("resp_", 32), CreatedAt: time.Now().Unix(), Instructions: req.Instructions,
		Model: pl.model, Object: "response", ParallelToolCalls: true, Temperature: 1, ToolChoice: "auto",
		TopP: 1, Background: req.Background, MaxOutputTokens: maxOutput, ServiceTier: "auto",
		Status: "completed", Truncation: "disabled",
		Output: []outputMessage{{
			ID:      newID("msg_", 32),
			Content: []outputText{{Text: filler(pl.words), Type: "output_text"}},
			Role:    "assistant", Status: "completed", Type: "message",
		}},
		Usage: &responseUsage{
			InputTokens:        pl.prompt,
			InputTokensDetails: inputTokenDetail{CachedTokens: pl.cached},
			OutputTokens:       pl.perChoice,
			TotalTokens:        pl.prompt + pl.perChoice,
		},
	}
	if pl.finish == "length" {
		resp.Status = "incomplete"
		resp.IncompleteDetails = &incompleteDetails{Reason: "max_output_tokens"}
	}
	return resp
}

// responseID is the {id} of /v1/responses/{id}[/cancel].
func responseID(path string) string {
	id := strings.TrimPrefix(path, responsesPrefix)
	return strings.TrimSuffix(id, "/cancel")
}

func notFoundResponse(w http.ResponseWriter, id string) {
	writeTypedError(w, http.StatusNotFound, "invalid_request_error", fmt.Sprintf("Response with id '%s' not found.", id), "")
}

// serveRetrieveResponse answers GET /v1/responses/{id}: a background
// response is queued (or in_progress, x-fake-background-status) with usage
// null until its delay has passed, then completed with its usage.
func serveRetrieveResponse(w http.ResponseWriter, _ []byte, p params) {
	id := responseID(p.path)
	var v responsesResponse
	if !p.responses.with(id, func(r *storedResponse) { v = r.view(time.Now()) }) {
		notFoundResponse(w, id)
		return
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(v), p.chunkSize)
}

// serveCancelResponse answers POST /v1/responses/{id}/cancel: a pending
// background response becomes cancelled (usage null, for good); any other
// is vLLM's 400.
func serveCancelResponse(w http.ResponseWriter, _ []byte, p params) {
	id := responseID(p.path)
	var v responsesResponse
	cancelled := false
	found := p.responses.with(id, func(r *storedResponse) {
		now := time.Now()
		if r.background && !r.cancelled && now.Before(r.readyAt) {
			r.cancelled, cancelled = true, true
		}
		v = r.view(now)
	})
	switch {
	case !found:
		notFoundResponse(w, id)
	case !cancelled:
		writeTypedError(w, http.StatusBadRequest, "invalid_request_error", "Cannot cancel a synchronous response.", "")
	default:
		writeBody(w, p.okStatus(), contentTypeJSON, marshal(v), p.chunkSize)
	}
}
