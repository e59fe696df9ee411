package pricing

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// n is the byte length of each string, to spell out expected PromptBytes.
func n(parts ...string) int64 {
	var total int64
	for _, p := range parts {
		total += int64(len(p))
	}
	return total
}

func TestParseRequest(t *testing.T) {
	imagePart := `{"type":"image_url","image_url":{"url":"https://example.test/cat.png","detail":"low"}}`
	tools := `[{"type":"function","function":{"name":"get_weather","parameters":{"type":"object","properties":{"city":{"type":"string"}}}}}]`
	toolCalls := `[{"id":"call_1","type":"function","function":{"name":"get_weather","arguments":"{\"city\":\"Berlin\"}"}}]`
	tests := []struct {
		name     string
		endpoint Endpoint
		body     string
		want     Request
	}{
		{
			name: "chat, multi-part content, stream with usage", endpoint: ChatCompletions,
			body: `{
  "model": "meta-llama/Llama-3.1-70B-Instruct",
  "messages": [
    {"role": "system", "content": "You are terse."},
    {"role": "user", "name": "alice", "content": [
      {"type": "text", "text": "Describe "},
      ` + imagePart + `,
      {"type": "text", "text": "in one wörd."}
    ]}
  ],
  "max_completion_tokens": 50,
  "n": 2,
  "temperature": 0.2,
  "stream": true,
  "stream_options": {"include_usage": true, "continuous_usage_stats": false},
  "user": "user-42"
}`,
			want: Request{
				Endpoint: ChatCompletions, Model: "meta-llama/Llama-3.1-70B-Instruct",
				Stream: true, StreamOptionsPresent: true, IncludeUsage: true,
				MaxOutputTokens: 50, OutputLimitStated: true, N: 2, User: "user-42",
				PromptBytes: n(`"system"`, "You are terse.", `"user"`, `"alice"`, "Describe ", imagePart, "in one wörd."),
				Messages:    2, Prompts: 1, NonTextParts: 1,
			},
		},
		{
			name: "chat, tools, tool calls, both max fields", endpoint: ChatCompletions,
			body: `{"model":"m","max_tokens":700,"max_completion_tokens":300,"tools":` + tools + `,` +
				`"messages":[{"role":"user","content":"Weather in Berlin?"},` +
				`{"role":"assistant","content":null,"tool_calls":` + toolCalls + `},` +
				`{"role":"tool","tool_call_id":"call_1","content":"12°C"}],` +
				`"stream":false,"stream_options":null}`,
			want: Request{
				Endpoint: ChatCompletions, Model: "m", MaxOutputTokens: 700, OutputLimitStated: true, N: 1,
				PromptBytes: n(tools, `"user"`, "Weather in Berlin?", `"assistant"`, toolCalls,
					`"tool"`, `"call_1"`, "12°C"),
				Messages: 3, Prompts: 1,
			},
		},
		{
			name: "chat, stream_options without include_usage", endpoint: ChatCompletions,
			body: `{"model":"m","stream":true,"stream_options":{},"messages":[{"role":"user","content":"\u00e9\n"}]}`,
			want: Request{
				Endpoint: ChatCompletions, Model: "m", Stream: true, StreamOptionsPresent: true, N: 1,
				PromptBytes: n(`"user"`, "é\n"), Messages: 1, Prompts: 1,
			},
		},
		{
			name: "chat, keys are case-sensitive and the last duplicate wins", endpoint: ChatCompletions,
			body: `{"model":"cheap","Model":"x","MAX_TOKENS":1,"max_tokens":5,"max_tokens":9000,"model":"expensive"}`,
			want: Request{Endpoint: ChatCompletions, Model: "expensive", MaxOutputTokens: 9000, OutputLimitStated: true, N: 1, Prompts: 1},
		},
		{
			name: "completions, batch of strings, best_of above n", endpoint: Completions,
			body: `{"model":"qwen2-7b","prompt":["Once upon","a time"],"max_tokens":16,"n":2,"best_of":3,"echo":true}`,
			want: Request{
				Endpoint: Completions, Model: "qwen2-7b", MaxOutputTokens: 16, OutputLimitStated: true, N: 3,
				PromptBytes: n("Once upon", "a time"), Prompts: 2,
			},
		},
		{
			name: "completions, n above best_of, streaming", endpoint: Completions,
			body: `{"model":"m","prompt":"Say hi","n":4,"best_of":2,"stream":true,"stream_options":{"include_usage":false}}`,
			want: Request{
				Endpoint: Completions, Model: "m", Stream: true, StreamOptionsPresent: true, N: 4,
				PromptBytes: n("Say hi"), Prompts: 1,
			},
		},
		{
			name: "completions, token ids", endpoint: Completions,
			body: `{"model":"m","prompt":[1, 2, 3, 4]}`,
			want: Request{Endpoint: Completions, Model: "m", N: 1, PromptTokensKnown: 4, Prompts: 1},
		},
		{
			name: "completions, batch of token arrays", endpoint: Completions,
			body: `{"model":"m","prompt":[[1,2],[3]],"max_tokens":null,"n":null}`,
			want: Request{Endpoint: Completions, Model: "m", N: 1, PromptTokensKnown: 3, Prompts: 2},
		},
		{
			name: "embeddings, string", endpoint: Embeddings,
			body: `{"model":"Qwen/Qwen3-Embedding-8B","input":"héllo","encoding_format":"float","user":"u"}`,
			want: Request{Endpoint: Embeddings, Model: "Qwen/Qwen3-Embedding-8B", N: 1, User: "u", PromptBytes: 6, Prompts: 1},
		},
		{
			name: "embeddings, batch; stream fields are not read", endpoint: Embeddings,
			body: `{"model":"e","input":["a","bcd",[5,6,7]],"stream":"ignored"}`,
			want: Request{Endpoint: Embeddings, Model: "e", N: 1, PromptBytes: 4, PromptTokensKnown: 3, Prompts: 3},
		},
		{
			name: "embeddings, chat messages", endpoint: Embeddings,
			body: `{"model":"e","messages":[{"role":"user","content":"query: cats"}]}`,
			want: Request{Endpoint: Embeddings, Model: "e", N: 1, PromptBytes: n(`"user"`, "query: cats"), Messages: 1, Prompts: 1},
		},
		{
			name: "responses, string input", endpoint: Responses,
			body: `{"model":"m","input":"Tell me a joke.","max_output_tokens":300,"stream":true}`,
			want: Request{
				Endpoint: Responses, Model: "m", Stream: true, MaxOutputTokens: 300, OutputLimitStated: true, N: 1,
				PromptBytes: n("Tell me a joke."), Messages: 1, Prompts: 1,
			},
		},
		{
			name: "responses, items and instructions", endpoint: Responses,
			body: `{"model":"m","instructions":"Be brief.","tools":[{"type":"function","name":"f"}],"input":[` +
				`{"role":"user","content":[{"type":"input_text","text":"Hi"},{"type":"input_image","image_url":"data:image/png;base64,AAAA"}]},` +
				`{"type":"function_call_output","call_id":"c1","output":"42"}]}`,
			want: Request{
				Endpoint: Responses, Model: "m", N: 1,
				PromptBytes: n("Be brief.", `[{"type":"function","name":"f"}]`, `"user"`, "Hi",
					`{"type":"input_image","image_url":"data:image/png;base64,AAAA"}`,
					`"function_call_output"`, `"c1"`, `"42"`),
				Messages: 3, Prompts: 1, NonTextParts: 1,
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.endpoint, []byte(tt.body))
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
		})
	}
}

func TestParseRequestRejects(t *testing.T) {
	tests := []struct {
		endpoint Endpoint
		body     string
		msg      string
	}{
		{ChatCompletions, ``, "not valid JSON"},
		{ChatCompletions, `{"model":"m",}`, "not valid JSON"},
		{ChatCompletions, `{"model":"m"} {}`, "not valid JSON"},
		{ChatCompletions, `[]`, "must be a JSON object"},
		{ChatCompletions, `"model"`, "must be a JSON object"},
		{ChatCompletions, `null`, "must be a JSON object"},
		{ChatCompletions, `{}`, "model: missing"},
		{ChatCompletions, `{"Model":"m"}`, "model: missing"},
		{ChatCompletions, `{"model":""}`, "model: must not be empty"},
		{ChatCompletions, `{"model":null}`, "model: must be a string"},
		{ChatCompletions, `{"model":["m"]}`, "model: must be a string"},
		{ChatCompletions, `{"model":"m","user":7}`, "user: must be a string"},
		{ChatCompletions, `{"model":"m","stream":"true"}`, "stream: must be true, false or null"},
		{ChatCompletions, `{"model":"m","stream_options":true}`, "stream_options: must be an object or null"},
		{ChatCompletions, `{"model":"m","stream_options":{"include_usage":1}}`, "stream_options.include_usage: must be true"},
		{ChatCompletions, `{"model":"m","max_tokens":-1}`, "max_tokens: must be at least 0, got -1"},
		{ChatCompletions, `{"model":"m","max_tokens":1.5}`, "max_tokens: must be an integer, got 1.5"},
		{ChatCompletions, `{"model":"m","max_completion_tokens":"100"}`, "max_completion_tokens: must be an integer"},
		{ChatCompletions, `{"model":"m","max_tokens":99999999999999999999}`, "max_tokens: must be an integer"},
		{ChatCompletions, `{"model":"m","n":0}`, "n: must be at least 1, got 0"},
		{ChatCompletions, `{"model":"m","messages":{"role":"user"}}`, "messages: must be an array"},
		{ChatCompletions, `{"model":"m","messages":["hi"]}`, "messages[0]: must be an object"},
		{ChatCompletions, `{"model":"m","messages":[{"role":"user","content":5}]}`, "messages[0].content: must be a string"},
		{ChatCompletions, `{"model":"m","messages":[{},{"content":[{"type":"text","text":5}]}]}`, `messages[1].content[0].text: must be a string in a "text" part`},
		{ChatCompletions, `{"model":"m","messages":[{"content":[{"type":"text"}]}]}`, `messages[0].content[0].text: must be a string`},
		{ChatCompletions, `{"model":"m","messages":[{"content":[7]}]}`, "messages[0].content[0]: must be a content part object"},
		{Completions, `{"model":"m","prompt":5}`, "prompt: must be a string"},
		{Completions, `{"model":"m","prompt":[true]}`, "prompt[0]: must be a string or an array of token ids"},
		{Completions, `{"model":"m","prompt":[[1,"a"]]}`, "prompt[0][1]: must be a token id"},
		{Completions, `{"model":"m","best_of":0}`, "best_of: must be at least 1"},
		{Completions, `{"model":"m","n":-2}`, "n: must be at least 1"},
		{Embeddings, `{"model":"m","input":{"text":"a"}}`, "input: must be a string"},
		{Embeddings, `{"model":"m","messages":"hi"}`, "messages: must be an array"},
		{Responses, `{"model":"m","input":5}`, "input: must be a string or an array of input items"},
		{Responses, `{"model":"m","input":["hi"]}`, "input[0]: must be an object"},
		{Responses, `{"model":"m","input":[{"content":[{"type":"input_text","text":null}]}]}`, "input[0].content[0].text: must be a string"},
		{Responses, `{"model":"m","instructions":["a"]}`, "instructions: must be a string"},
		{Responses, `{"model":"m","max_output_tokens":"10"}`, "max_output_tokens: must be an integer"},
		{Endpoint(0), `{"model":"m"}`, "has no JSON request to parse"},
		{Transcriptions, `{"model":"m"}`, "has no JSON request to parse"},
	}
	for _, tt := range tests {
		t.Run(tt.endpoint.String()+" "+tt.body, func(t *testing.T) {
			got, err := ParseRequest(tt.endpoint, []byte(tt.body))
			require.Error(t, err)
			assert.Nil(t, got)
			assert.ErrorIs(t, err, ErrInvalidRequest)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

func TestWorstCase(t *testing.T) {
	tests := []struct {
		name       string
		req        Request
		defaultMax int64
		want       Usage
	}{
		{
			name: "chat with max_tokens and n",
			req:  Request{Endpoint: ChatCompletions, PromptBytes: 100, Messages: 3, MaxOutputTokens: 50, OutputLimitStated: true, N: 2, Prompts: 1},
			// 100 + 4*3 + 8; 50*2
			want: Usage{Prompt: 120, Completion: 100},
		},
		{
			name:       "chat without max_tokens uses the default",
			req:        Request{Endpoint: ChatCompletions, PromptBytes: 10, Messages: 1, N: 3, Prompts: 1},
			defaultMax: 1024,
			want:       Usage{Prompt: 22, Completion: 3072},
		},
		{
			name:       "completions batch: every prompt generates n sequences",
			req:        Request{Endpoint: Completions, PromptBytes: 15, PromptTokensKnown: 7, MaxOutputTokens: 16, OutputLimitStated: true, N: 3, Prompts: 2},
			defaultMax: 1024,
			want:       Usage{Prompt: 15 + 7 + 16, Completion: 96},
		},
		{
			name:       "embeddings have no output",
			req:        Request{Endpoint: Embeddings, PromptBytes: 39, N: 1, Prompts: 1},
			defaultMax: 1024,
			want:       Usage{Prompt: 47},
		},
		{
			name:       "responses",
			req:        Request{Endpoint: Responses, PromptBytes: 15, Messages: 1, MaxOutputTokens: 300, OutputLimitStated: true, N: 1, Prompts: 1},
			defaultMax: 1024,
			want:       Usage{Prompt: 27, Completion: 300},
		},
		{
			name: "zero values are safe",
			req:  Request{Endpoint: ChatCompletions},
			want: Usage{Prompt: 8},
		},
		{
			name:       "negative default counts as zero",
			req:        Request{Endpoint: ChatCompletions, N: 1},
			defaultMax: -5,
			want:       Usage{Prompt: 8},
		},
		{
			name: "saturates",
			req:  Request{Endpoint: Completions, PromptBytes: 1 << 62, PromptTokensKnown: 1 << 62, MaxOutputTokens: 1 << 40, N: 1 << 30, Prompts: 4},
			want: Usage{Prompt: 1<<63 - 1, Completion: 1<<63 - 1},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.req.WorstCase(tt.defaultMax))
		})
	}
}

func TestWorstCaseFromParsedBody(t *testing.T) {
	body := `{"model":"Hunyuan","messages":[{"role":"user","content":"Who are you?"}],"max_tokens":100}`
	req, err := ParseRequest(ChatCompletions, []byte(body))
	require.NoError(t, err)
	wc := req.WorstCase(1024)
	// 6 (`"user"`) + 12 ("Who are you?") + 4 + 8
	assert.Equal(t, Usage{Prompt: 30, Completion: 100}, wc)

	p := Price{Input: 600_000_000, CachedInput: 300_000_000, Output: 800_000_000}
	// 30*0.60e9/1e6 = 18000; 100*0.80e9/1e6 = 80000
	assert.Equal(t, Breakdown{Input: 18_000, Output: 80_000, Total: 98_000}, p.Cost(wc))
}

// TestOutputLimitStated: a limit is stated by a member that is present and
// not null, even 0; of duplicate keys the last counts.
func TestOutputLimitStated(t *testing.T) {
	for _, tc := range []struct {
		e      Endpoint
		body   string
		stated bool
	}{
		{ChatCompletions, `{"model":"m","messages":[]}`, false},
		{ChatCompletions, `{"model":"m","messages":[],"max_tokens":null,"max_completion_tokens":null}`, false},
		{ChatCompletions, `{"model":"m","messages":[],"max_tokens":0}`, true},
		{ChatCompletions, `{"model":"m","messages":[],"max_completion_tokens":5}`, true},
		{ChatCompletions, `{"model":"m","messages":[],"max_tokens":5,"max_tokens":null}`, false},
		{ChatCompletions, `{"model":"m","messages":[],"max_output_tokens":5}`, false},
		{Completions, `{"model":"m","prompt":"p","max_tokens":5}`, true},
		{Completions, `{"model":"m","prompt":"p","max_completion_tokens":5}`, false},
		{Responses, `{"model":"m","input":"p","max_output_tokens":5}`, true},
		{Responses, `{"model":"m","input":"p","max_tokens":5}`, false},
		{Messages, `{"model":"m","messages":[],"max_tokens":5}`, true},
		{Generate, `{"model":"m","token_ids":[1],"sampling_params":{"max_tokens":5}}`, true},
		{Generate, `{"model":"m","token_ids":[1],"sampling_params":{"n":2}}`, false},
	} {
		r, err := ParseRequest(tc.e, []byte(tc.body))
		require.NoError(t, err, tc.body)
		assert.Equal(t, tc.stated, r.OutputLimitStated, "%v %s", tc.e, tc.body)
	}
}
