package fakevllm

// POST /v1/messages: the Anthropic Messages API as vLLM serves it, by
// turning the request into a chat completion (with usage and continuous
// usage on when it streams) and its answer back into Anthropic's shapes.

import (
	"encoding/json"
	"fmt"
	"net/http"
)

type messagesRequest struct {
	Model     string          `json:"model"`
	Messages  json.RawMessage `json:"messages"`
	System    json.RawMessage `json:"system"`
	MaxTokens *int            `json:"max_tokens"`
	Stream    bool            `json:"stream"`
}

// anthropicMessage is vLLM's AnthropicMessagesResponse dumped with
// exclude_none: no stop_sequence (it is null) and no kv_transfer_params.
type anthropicMessage struct {
	ID         string           `json:"id"`
	Type       string           `json:"type"`
	Role       string           `json:"role"`
	Content    []anthropicBlock `json:"content"`
	Model      string           `json:"model"`
	StopReason string           `json:"stop_reason"`
	Usage      anthropicUsage   `json:"usage"`
}

type anthropicBlock struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type anthropicUsage struct {
	InputTokens  int `json:"input_tokens"`
	OutputTokens int `json:"output_tokens"`
}

// stopReasons maps a chat finish_reason to Anthropic's stop_reason.
var stopReasons = map[string]string{"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use"}

func serveMessages(w http.ResponseWriter, body []byte, p params) {
	var req messagesRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "JSON decode error: "+err.Error(), "")
		return
	}
	if !validateMessages(w, body, req) {
		return
	}
	model, ok := p.modelFor(req.Model)
	if !ok {
		writeAnthropicError(w, http.StatusNotFound, "NotFoundError", fmt.Sprintf("The model `%s` does not exist.", req.Model))
		return
	}
	var v [2]any
	_ = json.Unmarshal(req.System, &v[0])
	_ = json.Unmarshal(req.Messages, &v[1])
	pl := newPlan(p, model, []int{estimateOne(v[:])}, req.MaxTokens, 1)
	p.tokens.add(model, pl.prompt, pl.perChoice)
	id := newID("chatcmpl-", 16)
	if req.Stream {
		streamMessages(w, p, pl, id)
		return
	}
	resp := anthropicMessage{
		ID: id, Type: "message", Role: "assistant", Model: model, StopReason: stopReasons[pl.finish],
		Content: []anthropicBlock{},
		Usage:   anthropicUsage{InputTokens: pl.prompt, OutputTokens: pl.perChoice},
	}
	if pl.words > 0 {
		resp.Content = append(resp.Content, anthropicBlock{Type: "text", Text: filler(pl.words)})
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

// validateMessages answers as FastAPI's request validation does in vLLM
// (an OpenAI-shaped 400 with type "Bad Request", not Anthropic's shape):
// model, messages and max_tokens are required, max_tokens positive. The
// message names the first error as pydantic does, without its "input".
func validateMessages(w http.ResponseWriter, body []byte, req messagesRequest) bool {
	var fields map[string]json.RawMessage
	_ = json.Unmarshal(body, &fields)
	for _, f := range []string{"model", "messages", "max_tokens"} {
		if _, ok := fields[f]; !ok {
			writeTypedError(w, http.StatusBadRequest, "Bad Request",
				fmt.Sprintf("1 validation error:\n  {'type': 'missing', 'loc': ('body', '%s'), 'msg': 'Field required'}", f), "body."+f)
			return false
		}
	}
	switch {
	case req.MaxTokens == nil:
		writeTypedError(w, http.StatusBadRequest, "Bad Request",
			"1 validation error:\n  {'type': 'int_type', 'loc': ('body', 'max_tokens'), 'msg': 'Input should be a valid integer'}", "body.max_tokens")
	case *req.MaxTokens <= 0:
		writeTypedError(w, http.StatusBadRequest, "Bad Request", fmt.Sprintf(
			"1 validation error:\n  {'type': 'value_error', 'loc': ('body', 'max_tokens'), 'msg': 'Value error, max_tokens must be positive', 'input': %d, 'ctx': {'error': ValueError('max_tokens must be positive')}}",
			*req.MaxTokens), "body.max_tokens")
	case req.Model == "":
		writeTypedError(w, http.StatusBadRequest, "Bad Request",
			"1 validation error:\n  {'type': 'value_error', 'loc': ('body', 'model'), 'msg': 'Value error, Model is required', 'input': '', 'ctx': {'error': ValueError('Model is required')}}", "body.model")
	default:
		return true
	}
	return false
}

// anthropicError is vLLM's AnthropicErrorResponse. For errors its chat
// handler returns, the type is the OpenAI error type (e.g. NotFoundError).
type anthropicError struct {
	Type  string             `json:"type"`
	Error anthropicErrorInfo `json:"error"`
}

type anthropicErrorInfo struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

func writeAnthropicError(w http.ResponseWriter, status int, errType, message string) {
	body := marshal(anthropicError{Type: "error", Error: anthropicErrorInfo{Type: errType, Message: message}})
	writeBody(w, status, contentTypeJSON, body, defaultWriteChunkSize)
}

// The stream events, dumped as vLLM does (exclude_unset: only the fields it
// sets, in AnthropicStreamEvent's order type, message, delta,
// content_block, index, usage).
type messageStartEvent struct {
	Type    string       `json:"type"`
	Message startMessage `json:"message"`
}

// startMessage is message_start's message: vLLM sets no type or role.
type startMessage struct {
	ID           string         `json:"id"`
	Content      emptyList      `json:"content"`
	Model        string         `json:"model"`
	StopReason   null           `json:"stop_reason"`
	StopSequence null           `json:"stop_sequence"`
	Usage        anthropicUsage `json:"usage"`
}

type blockStartEvent struct {
	Type         string         `json:"type"`
	ContentBlock anthropicBlock `json:"content_block"`
	Index        int            `json:"index"`
}

type blockDeltaEvent struct {
	Type  string         `json:"type"`
	Delta anthropicDelta `json:"delta"`
	Index int            `json:"index"`
}

type anthropicDelta struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type blockStopEvent struct {
	Type  string `json:"type"`
	Index int    `json:"index"`
}

type messageDeltaEvent struct {
	Type  string         `json:"type"`
	Delta stopDelta      `json:"delta"`
	Usage anthropicUsage `json:"usage"`
}

type stopDelta struct {
	StopReason string `json:"stop_reason"`
}

type streamErrorEvent struct {
	Type  string             `json:"type"`
	Error anthropicErrorInfo `json:"error"`
}

// streamMessages sends message_start (input tokens, output 0), one
// content_block_start, a content_block_delta per word, content_block_stop,
// message_delta (stop_reason and the whole usage) and message_stop.
func streamMessages(w http.ResponseWriter, p params, pl plan, id string) {
	s := newSSEWriter(w, p)
	s.event("message_start", messageStartEvent{Type: "message_start", Message: startMessage{
		ID: id, Model: pl.model, Usage: anthropicUsage{InputTokens: pl.prompt},
	}})
	for k := range pl.words {
		if s.failNowWith(func() {
			s.event("error", streamErrorEvent{Type: "error", Error: anthropicErrorInfo{
				Type: "internal_error", Message: "fakevllm: generation failed mid-stream",
			}})
		}) {
			return
		}
		if k == 0 {
			s.event("content_block_start", blockStartEvent{Type: "content_block_start", ContentBlock: anthropicBlock{Type: "text"}})
		}
		s.event("content_block_delta", blockDeltaEvent{Type: "content_block_delta", Delta: anthropicDelta{Type: "text_delta", Text: fillerWord(k)}})
	}
	if pl.words > 0 {
		s.event("content_block_stop", blockStopEvent{Type: "content_block_stop"})
	}
	s.event("message_delta", messageDeltaEvent{
		Type: "message_delta", Delta: stopDelta{StopReason: stopReasons[pl.finish]},
		Usage: anthropicUsage{InputTokens: pl.prompt, OutputTokens: pl.perChoice},
	})
	s.event("message_stop", typeOnlyEvent{Type: "message_stop"})
}

type typeOnlyEvent struct {
	Type string `json:"type"`
}
