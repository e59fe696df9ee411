package fakevllm

import (
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sseEvents splits an "event: T\ndata: D" stream into "T D" strings.
func sseEvents(t *testing.T, body string) []string {
	t.Helper()
	require.True(t, strings.HasSuffix(body, "\n\n"), body)
	var out []string
	for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		name, data, ok := strings.Cut(ev, "\ndata: ")
		require.True(t, ok, ev)
		out = append(out, strings.TrimPrefix(name, "event: ")+" "+data)
	}
	return out
}

func TestMessagesJSON(t *testing.T) {
	s := New(Config{ServedModelName: "qwen"})
	rec := post(t, s, "/v1/messages", `{"model":"claude","system":"12345678","messages":[{"role":"user","content":"1234"}],"max_tokens":3}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	body := rec.Body.String()
	id := body[len(`{"id":"`):strings.Index(body, `","type"`)]
	assert.Regexp(t, `^chatcmpl-[0-9a-f]{16}$`, id)
	assert.Equal(t, `{"id":"`+id+`","type":"message","role":"assistant","content":[{"type":"text","text":"Once fox ran"}],"model":"qwen","stop_reason":"max_tokens","usage":{"input_tokens":3,"output_tokens":3}}`, body,
		"exclude_none: no stop_sequence")

	stop := do(t, s, http.MethodPost, "/v1/messages", `{"model":"claude","messages":[{"role":"user","content":"hi"}],"max_tokens":30}`,
		map[string]string{HeaderCompletionTokens: "4"})
	assert.Contains(t, stop.Body.String(), `"stop_reason":"end_turn","usage":{"input_tokens":1,"output_tokens":4}}`)
}

func TestMessagesStream(t *testing.T) {
	s := New(Config{ServedModelName: "qwen", PromptTokens: 9})
	rec := post(t, s, "/v1/messages", `{"model":"claude","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":true}`)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, contentTypeSSE, rec.Header().Get("Content-Type"))
	events := sseEvents(t, rec.Body.String())
	require.Len(t, events, 7)
	start := events[0]
	id := start[strings.Index(start, `"id":"`)+6 : strings.Index(start, `","content"`)]
	assert.Equal(t, []string{
		`message_start {"type":"message_start","message":{"id":"` + id + `","content":[],"model":"qwen","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":9,"output_tokens":0}}}`,
		`content_block_start {"type":"content_block_start","content_block":{"type":"text","text":""},"index":0}`,
		`content_block_delta {"type":"content_block_delta","delta":{"type":"text_delta","text":"Once"},"index":0}`,
		`content_block_delta {"type":"content_block_delta","delta":{"type":"text_delta","text":" fox"},"index":0}`,
		`content_block_stop {"type":"content_block_stop","index":0}`,
		`message_delta {"type":"message_delta","delta":{"stop_reason":"max_tokens"},"usage":{"input_tokens":9,"output_tokens":2}}`,
		`message_stop {"type":"message_stop"}`,
	}, events)

	failed := do(t, s, http.MethodPost, "/v1/messages", `{"model":"m","messages":[],"max_tokens":5,"stream":true}`, map[string]string{HeaderErrorAfterEvents: "1"})
	ev := sseEvents(t, failed.Body.String())
	assert.Equal(t, `error {"type":"error","error":{"type":"internal_error","message":"fakevllm: generation failed mid-stream"}}`, ev[len(ev)-1])
	assert.NotContains(t, failed.Body.String(), "message_delta", "no usage after an error")
}

func TestMessagesErrors(t *testing.T) {
	s := New(Config{KnownModels: []string{"qwen"}})
	tests := []struct {
		name, body string
		header     map[string]string
		status     int
		want       string
	}{
		{"max_tokens is required (FastAPI's validation: OpenAI shape)", `{"model":"qwen","messages":[]}`, nil, 400,
			`{"error":{"message":"1 validation error:\n  {'type': 'missing', 'loc': ('body', 'max_tokens'), 'msg': 'Field required'}","type":"Bad Request","param":"body.max_tokens","code":400}}`},
		{"max_tokens positive", `{"model":"qwen","messages":[],"max_tokens":0}`, nil, 400,
			`{"error":{"message":"1 validation error:\n  {'type': 'value_error', 'loc': ('body', 'max_tokens'), 'msg': 'Value error, max_tokens must be positive', 'input': 0, 'ctx': {'error': ValueError('max_tokens must be positive')}}","type":"Bad Request","param":"body.max_tokens","code":400}}`},
		{"unknown model: Anthropic shape", `{"model":"gpt","messages":[],"max_tokens":1}`, nil, 404,
			"{\"type\":\"error\",\"error\":{\"type\":\"NotFoundError\",\"message\":\"The model `gpt` does not exist.\"}}"},
		{"status override: Anthropic shape", `{"model":"qwen","messages":[],"max_tokens":1}`, map[string]string{HeaderStatus: "503"}, 503,
			`{"type":"error","error":{"type":"ServiceUnavailableError","message":"fakevllm: x-fake-status=503"}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, s, http.MethodPost, "/v1/messages", tt.body, tt.header)
			assert.Equal(t, tt.status, rec.Code)
			assert.Equal(t, tt.want, rec.Body.String())
		})
	}
}
