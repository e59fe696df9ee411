package fakevllm

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// stripIDs blanks the random id and the creation time of every chunk, so
// whole chunks can be compared byte for byte.
func stripIDs(chunks []string) []string {
	out := make([]string, len(chunks))
	for i, c := range chunks {
		if j := strings.Index(c, `"model":`); strings.HasPrefix(c, `{"id":`) && j > 0 {
			c = c[j:]
		}
		out[i] = c
	}
	return out
}

// With continuous_usage_stats and n>1, every chunk (the role chunks too)
// carries its own choice's running completion count; only the final
// choices:[] chunk has the sum.
func TestContinuousUsageIsPerChoice(t *testing.T) {
	s := New(Config{ServedModelName: "m"})
	chat := sseData(t, post(t, s, "/v1/chat/completions",
		`{"messages":[{"role":"user","content":"12345678"}],"max_tokens":2,"n":2,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`).Body.String())
	assert.Equal(t, []string{
		`"model":"m","choices":[{"index":0,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":2,"total_tokens":2,"completion_tokens":0}}`,
		`"model":"m","choices":[{"index":1,"delta":{"role":"assistant","content":""},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":2,"total_tokens":2,"completion_tokens":0}}`,
		`"model":"m","choices":[{"index":0,"delta":{"content":"Once"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":2,"total_tokens":3,"completion_tokens":1}}`,
		`"model":"m","choices":[{"index":1,"delta":{"content":"Once"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":2,"total_tokens":3,"completion_tokens":1}}`,
		`"model":"m","choices":[{"index":0,"delta":{"content":" fox"},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":{"prompt_tokens":2,"total_tokens":4,"completion_tokens":2}}`,
		`"model":"m","choices":[{"index":1,"delta":{"content":" fox"},"logprobs":null,"finish_reason":"length","stop_reason":null}],"usage":{"prompt_tokens":2,"total_tokens":4,"completion_tokens":2}}`,
		`"model":"m","choices":[],"usage":{"prompt_tokens":2,"total_tokens":6,"completion_tokens":4}}`,
		`[DONE]`,
	}, stripIDs(chat))

	// Completions: each choice's own prompt, and prompt_tokens_details null
	// (completions chunks are dumped with every field).
	text := sseData(t, post(t, s, "/v1/completions",
		`{"prompt":["1234","12345678"],"max_tokens":1,"stream":true,"stream_options":{"continuous_usage_stats":true}}`).Body.String())
	assert.Equal(t, []string{
		`"model":"m","choices":[{"index":0,"text":"Once","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1,"prompt_tokens_details":null}}`,
		`"model":"m","choices":[{"index":1,"text":"Once","logprobs":null,"finish_reason":"length","stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":2,"total_tokens":3,"completion_tokens":1,"prompt_tokens_details":null}}`,
		`"model":"m","choices":[],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}}`,
		`[DONE]`,
	}, stripIDs(text))
}

// vLLM's should_include_usage, case by case.
func TestStreamUsageSwitches(t *testing.T) {
	tests := []struct {
		name, options string
		header        string // x-fake-force-include-usage
		force         bool   // Config.ForceIncludeUsage
		wantFinal     bool   // a choices:[] usage chunk
		wantPerChunk  bool   // usage on every chunk
	}{
		{name: "no stream_options", options: ``},
		{name: "empty stream_options turns it on", options: `,"stream_options":{}`, wantFinal: true},
		{name: "include_usage null turns it off", options: `,"stream_options":{"include_usage":null}`},
		{name: "include_usage false", options: `,"stream_options":{"include_usage":false}`},
		{name: "continuous without usage: nothing", options: `,"stream_options":{"include_usage":false,"continuous_usage_stats":true}`},
		{name: "continuous", options: `,"stream_options":{"continuous_usage_stats":true}`, wantFinal: true, wantPerChunk: true},
		{name: "force-include-usage", options: `,"stream_options":{"include_usage":false}`, force: true, wantFinal: true, wantPerChunk: true},
		{name: "force-include-usage by header", options: ``, header: "true", wantFinal: true, wantPerChunk: true},
		{name: "header turns the flag off", options: ``, header: "false", force: true},
	}
	for _, tt := range tests {
		for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
			t.Run(tt.name+path, func(t *testing.T) {
				s := New(Config{ForceIncludeUsage: tt.force, PromptTokens: 3})
				body := `{"model":"m","messages":[],"prompt":"x","max_tokens":2,"stream":true` + tt.options + `}`
				h := map[string]string{}
				if tt.header != "" {
					h[HeaderForceIncludeUsage] = tt.header
				}
				rec := do(t, s, http.MethodPost, path, body, h)
				require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
				data := sseData(t, rec.Body.String())
				final := data[len(data)-2]
				assert.Equal(t, tt.wantFinal, strings.Contains(final, `"choices":[],"usage":{"prompt_tokens":3,"total_tokens":7,"completion_tokens":4}`) ||
					strings.Contains(final, `"choices":[],"usage":{"prompt_tokens":3,"total_tokens":5,"completion_tokens":2}`), final)
				first := data[0]
				switch {
				case tt.wantPerChunk:
					assert.Contains(t, first, `"usage":{"prompt_tokens":3,`)
				case path == "/v1/chat/completions":
					assert.NotContains(t, first, `"usage"`, "chat chunks without usage have no usage key")
				default:
					assert.True(t, strings.HasSuffix(first, `"usage":null}`), "completions chunks carry usage null: %s", first)
				}
			})
		}
	}
}

func TestStreamOptionsWithoutStreamIs400(t *testing.T) {
	rec := post(t, New(Config{}), "/v1/chat/completions", `{"model":"m","messages":[],"stream_options":{}}`)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.JSONEq(t, `{"error":{"message":"Stream options can only be defined when `+"`stream=True`"+`.","type":"BadRequestError","param":"stream_options","code":400}}`, rec.Body.String())
}

// Completions with use_beam_search do not stream: the whole response is one
// event, then [DONE].
func TestBeamSearchStreamIsOneEvent(t *testing.T) {
	s := New(Config{PromptTokens: 4, ServedModelName: "m"})
	data := sseData(t, post(t, s, "/v1/completions", `{"prompt":"x","max_tokens":3,"use_beam_search":true,"n":2,"stream":true,"stream_options":{}}`).Body.String())
	require.Len(t, data, 2)
	assert.Equal(t, "[DONE]", data[1])
	assert.Contains(t, data[0], `"object":"text_completion",`)
	assert.Contains(t, data[0], `"text":"Once fox ran"`)
	assert.Contains(t, data[0], `"usage":{"prompt_tokens":4,"total_tokens":10,"completion_tokens":6,"prompt_tokens_details":null},"kv_transfer_params":null}`)
}

// The error event after N content events uses Python's json.dumps spacing,
// then [DONE], and no usage chunk even when usage was asked for.
func TestMidStreamErrorHasNoUsage(t *testing.T) {
	for _, path := range []string{"/v1/chat/completions", "/v1/completions"} {
		rec := do(t, New(Config{}), http.MethodPost, path,
			`{"model":"m","messages":[],"prompt":"x","max_tokens":5,"stream":true,"stream_options":{"continuous_usage_stats":true}}`,
			map[string]string{HeaderErrorAfterEvents: "2"})
		data := sseData(t, rec.Body.String())
		require.GreaterOrEqual(t, len(data), 2)
		assert.Equal(t, `{"error": {"message": "fakevllm: generation failed mid-stream", "type": "InternalServerError", "param": null, "code": 500}}`, data[len(data)-2], path)
		assert.Equal(t, "[DONE]", data[len(data)-1])
		assert.NotContains(t, rec.Body.String(), `"choices":[],"usage"`)
	}
}

// With several prompts and n>1, vLLM numbers choice i of prompt p as
// p*n + i; under continuous_usage_stats each chunk carries its own
// prompt's prompt_tokens and its own choice's running count, and the
// final chunk the sums (each prompt counted once, not n times).
func TestContinuousUsageSeveralPromptsN2(t *testing.T) {
	s := New(Config{ServedModelName: "m"})
	text := sseData(t, post(t, s, "/v1/completions",
		`{"prompt":["1234","12345678"],"n":2,"max_tokens":2,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`).Body.String())
	type chunk struct {
		Choices []struct {
			Index int `json:"index"`
		} `json:"choices"`
		Usage *struct {
			Prompt     int `json:"prompt_tokens"`
			Completion int `json:"completion_tokens"`
			Total      int `json:"total_tokens"`
		} `json:"usage"`
	}
	sent := map[int]int{}
	var final *chunk
	for _, data := range text {
		if data == "[DONE]" {
			continue
		}
		var c chunk
		require.NoError(t, json.Unmarshal([]byte(data), &c), data)
		require.NotNil(t, c.Usage, "every chunk carries usage: %s", data)
		if len(c.Choices) == 0 {
			final = &c
			continue
		}
		require.Len(t, c.Choices, 1)
		i := c.Choices[0].Index
		sent[i]++
		assert.Equal(t, []int{1, 2}[i/2], c.Usage.Prompt, "choice %d: its own prompt's tokens", i)
		assert.Equal(t, sent[i], c.Usage.Completion, "choice %d: its own running count", i)
		assert.Equal(t, c.Usage.Prompt+c.Usage.Completion, c.Usage.Total)
	}
	assert.Equal(t, map[int]int{0: 2, 1: 2, 2: 2, 3: 2}, sent)
	require.NotNil(t, final)
	assert.Equal(t, 3, final.Usage.Prompt, "each prompt once")
	assert.Equal(t, 8, final.Usage.Completion)
}
