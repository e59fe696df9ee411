package fakevllm

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sseData splits an SSE body into its data payloads and checks the framing.
func sseData(t *testing.T, body string) []string {
	t.Helper()
	require.True(t, strings.HasSuffix(body, "\n\n"), "events end with a blank line")
	var out []string
	for ev := range strings.SplitSeq(strings.TrimSuffix(body, "\n\n"), "\n\n") {
		data, ok := strings.CutPrefix(ev, "data: ")
		require.True(t, ok, "event %q", ev)
		out = append(out, data)
	}
	return out
}

type chunk struct {
	ID      string `json:"id"`
	Object  string `json:"object"`
	Model   string `json:"model"`
	Choices []struct {
		Index int `json:"index"`
		Delta struct {
			Role    string `json:"role"`
			Content string `json:"content"`
		} `json:"delta"`
		Text         string  `json:"text"`
		FinishReason *string `json:"finish_reason"`
	} `json:"choices"`
	Usage *usageInfo `json:"usage"`
}

func TestStreams(t *testing.T) {
	tests := []struct {
		name, path, request string
		wantObject          string
		wantUsage           string // raw usage of the final chunk; "" = no usage chunk
		wantText            string // per choice
		wantChoices         int
		wantFinish          string
	}{
		{
			name: "chat with usage (stream_options present)", path: "/v1/chat/completions",
			request:    `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":3,"stream":true,"stream_options":{}}`,
			wantObject: "chat.completion.chunk", wantText: "Once fox ran", wantChoices: 1, wantFinish: "length",
			wantUsage: `"choices":[],"usage":{"prompt_tokens":1,"total_tokens":4,"completion_tokens":3}}`,
		},
		{
			name: "chat n=2", path: "/v1/chat/completions",
			request:    `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"n":2,"stream":true,"stream_options":{"include_usage":true}}`,
			wantObject: "chat.completion.chunk", wantText: "Once fox", wantChoices: 2, wantFinish: "length",
			wantUsage: `"choices":[],"usage":{"prompt_tokens":1,"total_tokens":5,"completion_tokens":4}}`,
		},
		{
			name: "chat without stream_options: no usage", path: "/v1/chat/completions",
			request:    `{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":2,"stream":true}`,
			wantObject: "chat.completion.chunk", wantText: "Once fox", wantChoices: 1, wantFinish: "length",
		},
		{
			name: "chat include_usage false", path: "/v1/chat/completions",
			request:    `{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true,"stream_options":{"include_usage":false}}`,
			wantObject: "chat.completion.chunk", wantText: filler(16), wantChoices: 1, wantFinish: "stop",
		},
		{
			name: "completions with usage", path: "/v1/completions",
			request:    `{"model":"m","prompt":"hi","max_tokens":3,"stream":true,"stream_options":{}}`,
			wantObject: "text_completion", wantText: "Once fox ran", wantChoices: 1, wantFinish: "length",
			wantUsage: `"choices":[],"usage":{"prompt_tokens":1,"total_tokens":4,"completion_tokens":3}}`,
		},
		{
			name: "completions without usage", path: "/v1/completions",
			request:    `{"model":"m","prompt":"hi","max_tokens":1,"stream":true}`,
			wantObject: "text_completion", wantText: "Once", wantChoices: 1, wantFinish: "length",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, New(Config{}), tt.path, tt.request)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, contentTypeSSE, rec.Header().Get("Content-Type"))
			data := sseData(t, rec.Body.String())
			assert.Equal(t, len(data), rec.flushes, "each event is flushed")
			require.Equal(t, "[DONE]", data[len(data)-1])
			data = data[:len(data)-1]

			if tt.wantUsage != "" {
				last := data[len(data)-1]
				assert.True(t, strings.HasSuffix(last, tt.wantUsage), "usage chunk %s", last)
				data = data[:len(data)-1]
			}
			text := make([]string, tt.wantChoices)
			finish := make([]string, tt.wantChoices)
			for _, d := range data {
				var c chunk
				require.NoError(t, json.Unmarshal([]byte(d), &c), d)
				assert.Equal(t, tt.wantObject, c.Object)
				assert.Equal(t, "m", c.Model)
				require.Len(t, c.Choices, 1)
				ch := c.Choices[0]
				require.Less(t, ch.Index, tt.wantChoices)
				require.Empty(t, finish[ch.Index], "a chunk after finish_reason")
				text[ch.Index] += ch.Delta.Content + ch.Text
				if ch.FinishReason != nil {
					finish[ch.Index] = *ch.FinishReason
				}
				if tt.wantUsage == "" || tt.path == "/v1/chat/completions" {
					assert.NotContains(t, d, `"usage":{`, "usage only in the final chunk")
				}
			}
			for i := range tt.wantChoices {
				assert.Equal(t, tt.wantText, text[i], "choice %d", i)
				assert.Equal(t, tt.wantFinish, finish[i], "choice %d", i)
			}
		})
	}
}

// vLLM's exact bytes for the pieces a parser keys on.
func TestStreamChunkBytes(t *testing.T) {
	s := New(Config{PromptTokens: 12, CompletionTokens: 2, CachedTokens: 4, ServedModelName: "Hunyuan"})

	chat := sseData(t, post(t, s, "/v1/chat/completions", `{"messages":[],"max_tokens":2,"stream":true,"stream_options":{}}`).Body.String())
	require.Len(t, chat, 5)
	assert.Contains(t, chat[0], `"object":"chat.completion.chunk",`)
	assert.Contains(t, chat[0], `"model":"Hunyuan","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}]}`)
	assert.Contains(t, chat[1], `"choices":[{"index":0,"delta":{"content":"Once"},"logprobs":null,"finish_reason":null}]}`)
	assert.Contains(t, chat[2], `"choices":[{"index":0,"delta":{"content":" fox"},"logprobs":null,"finish_reason":"length","stop_reason":null}]}`)
	assert.Contains(t, chat[3], `"choices":[],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}`)

	text := sseData(t, post(t, s, "/v1/completions", `{"prompt":"a","max_tokens":2,"stream":true,"stream_options":{}}`).Body.String())
	require.Len(t, text, 4)
	assert.Contains(t, text[0], `"choices":[{"index":0,"text":"Once","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":null}`)
	assert.Contains(t, text[2], `"object":"text_completion",`)
	assert.Contains(t, text[2], `"choices":[],"usage":{"prompt_tokens":12,"total_tokens":14,"completion_tokens":2,"prompt_tokens_details":{"cached_tokens":4}}}`)
}

func TestResponsesStream(t *testing.T) {
	s := New(Config{PromptTokens: 3, CompletionTokens: 2})
	rec := post(t, s, "/v1/responses", `{"model":"m","input":"hi","stream":true}`)
	require.Equal(t, http.StatusOK, rec.Code)
	events := strings.Split(strings.TrimSuffix(rec.Body.String(), "\n\n"), "\n\n")
	require.Len(t, events, 10)

	var types []string
	var final struct {
		Response struct {
			Status string         `json:"status"`
			Usage  map[string]any `json:"usage"`
		} `json:"response"`
	}
	for _, ev := range events {
		name, data, ok := strings.Cut(ev, "\ndata: ")
		require.True(t, ok, ev)
		types = append(types, strings.TrimPrefix(name, "event: "))
		require.NoError(t, json.Unmarshal([]byte(data), &final), data)
	}
	assert.Equal(t, []string{
		"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.done",
		"response.content_part.done", "response.output_item.done", "response.completed",
	}, types)
	assert.Equal(t, "completed", final.Response.Status)
	assert.Equal(t, 3.0, final.Response.Usage["input_tokens"])
	assert.Equal(t, 2.0, final.Response.Usage["output_tokens"])
	assert.Equal(t, 5.0, final.Response.Usage["total_tokens"])
}

func TestStreamContinuousUsageErrorsAndAborts(t *testing.T) {
	s := New(Config{PromptTokens: 5, CompletionTokens: 3})
	body := `{"model":"m","max_tokens":3,"stream":true,"stream_options":{"continuous_usage_stats":true}}`
	chat := sseData(t, post(t, s, "/v1/chat/completions", body+"").Body.String())
	require.Len(t, chat, 6) // role, 3 words, usage, [DONE]
	assert.Contains(t, chat[1], `"usage":{"prompt_tokens":5,"total_tokens":6,"completion_tokens":1}`)
	assert.Contains(t, chat[3], `"usage":{"prompt_tokens":5,"total_tokens":8,"completion_tokens":3}`)

	req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m","max_tokens":3,"stream":true}`))
	req.Header.Set(HeaderErrorAfterEvents, "2")
	rec := httptest.NewRecorder()
	s.ServeHTTP(rec, req)
	out := rec.Body.String()
	assert.True(t, strings.HasSuffix(out, "data: {\"error\": {\"message\": \"fakevllm: generation failed mid-stream\", \"type\": \"InternalServerError\", \"param\": null, \"code\": 500}}\n\ndata: [DONE]\n\n"),
		"Python json.dumps spacing, then [DONE], no usage: %s", out)
	assert.Equal(t, 2, strings.Count(out, `"content":"`)-1, "two content events before the error (plus the role chunk's empty content)")

	req = httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(`{"model":"m","max_tokens":3,"stream":true}`))
	req.Header.Set(HeaderAbortAfterEvents, "2")
	assert.PanicsWithValue(t, http.ErrAbortHandler, func() { s.ServeHTTP(httptest.NewRecorder(), req) })
}
