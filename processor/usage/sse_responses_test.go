package usage

import "github.com/spendguard/spendguard/pricing"

// Events of a Responses API stream, written for these tests in the shape
// OpenAI and vLLM send.
const (
	respCreated = `data: {"type":"response.created","sequence_number":0,"response":{"id":"resp_1","object":"response","status":"in_progress","output":[],"usage":null}}`
	respDelta   = `data: {"type":"response.output_text.delta","sequence_number":4,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"Hé 😀","logprobs":[]}`
	respEmpty   = `data: {"type":"response.output_text.delta","sequence_number":5,"item_id":"msg_1","output_index":0,"content_index":0,"delta":"","logprobs":[]}`
	respReason  = `data: {"type":"response.reasoning_text.delta","sequence_number":3,"item_id":"rs_1","output_index":0,"content_index":0,"delta":"think"}`
	respTextEnd = `data: {"type":"response.output_text.done","sequence_number":6,"item_id":"msg_1","output_index":0,"content_index":0,"text":"Hé 😀","logprobs":[]}`
	respUsage   = `"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":4},"output_tokens":3,"output_tokens_details":{"reasoning_tokens":1},"total_tokens":15}`
)

var u12c4x3 = pricing.Usage{Prompt: 12, CachedPrompt: 4, Completion: 3}

func responsesCases() []sseCase {
	final := func(typ, extra string) string {
		return `data: {"type":"` + typ + `","sequence_number":7,"response":{"id":"resp_1","object":"response","status":"x","output":[{"type":"message","content":[{"type":"output_text","text":"Hé 😀"}]}],` + extra + respUsage + `,"user":null}}`
	}
	return []sseCase{
		{name: "responses: completed", kind: SSEResponses,
			body: event("\n", "event: response.created", respCreated) + event("\n", "event: response.reasoning_text.delta", respReason) +
				event("\n", "event: response.output_text.delta", respDelta) + event("\n", "event: response.output_text.delta", respEmpty) +
				event("\n", "event: response.output_text.done", respTextEnd) + event("\n", "event: response.completed", final("response.completed", "")),
			found: true, usage: u12c4x3, content: 2},
		{name: "responses: no event field", kind: SSEResponses,
			body:  event("\r\n", respCreated) + event("\r\n", respDelta) + event("\r\n", final("response.incomplete", `"incomplete_details":{"reason":"max_output_tokens"},`)),
			found: true, usage: u12c4x3, content: 1},
		{name: "responses: failed", kind: SSEResponses,
			body:  event("\n", "event: response.created", respCreated) + event("\n", "event: response.failed", final("response.failed", `"error":{"code":"server_error","message":"engine died"},`)),
			found: true, usage: u12c4x3},
		{name: "responses: error event", kind: SSEResponses,
			body:    event("\n", "event: response.created", respCreated) + event("\n", "event: response.output_text.delta", respDelta) + event("\n", "event: error", `data: {"type":"error","code":"ERR","message":"boom","param":null,"sequence_number":5}`),
			content: 1},
		{name: "responses: top-level usage does not count", kind: SSEResponses,
			body:    event("\n", "event: response.output_text.delta", `data: {"type":"response.output_text.delta","delta":"a","usage":{"input_tokens":1}}`),
			content: 1},
		{name: "responses: aborted", kind: SSEResponses,
			body:    event("\n", "event: response.created", respCreated) + event("\n", "event: response.output_text.delta", respDelta) + "event: response.output_text.delta\ndata: {\"type\":\"resp",
			content: 1},
	}
}
