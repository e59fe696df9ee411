package pricing

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseKinds(t *testing.T) {
	tests := []struct {
		name string
		e    Endpoint
		body string
		want Request
		wc   Usage
	}{
		{"messages: system string, text and image blocks, tools", Messages,
			`{"model":"claude","max_tokens":300,"stream":true,"system":"Be brief.",` +
				`"messages":[{"role":"user","content":[{"type":"text","text":"hello"},{"type":"image","source":{"type":"base64","data":"AAAA"}}]},` +
				`{"role":"assistant","content":"hi"}],"tools":[{"name":"t"}],"metadata":{"user_id":"u"},"unknown":1}`,
			Request{Endpoint: Messages, Model: "claude", Stream: true, MaxOutputTokens: 300, OutputLimitStated: true, N: 1,
				PromptBytes: int64(len(`Be brief.`) + len("hello") + len(`{"type":"image","source":{"type":"base64","data":"AAAA"}}`) + len(`"user"`) + len("hi") + len(`"assistant"`) + len(`[{"name":"t"}]`)),
				Messages:    3, Prompts: 1, NonTextParts: 1},
			Usage{Completion: 300}},
		{"messages: system blocks", Messages,
			`{"model":"claude","max_tokens":5,"system":[{"type":"text","text":"abc","cache_control":{"type":"ephemeral"}}],"messages":[{"role":"user","content":"x"}]}`,
			Request{Endpoint: Messages, Model: "claude", MaxOutputTokens: 5, OutputLimitStated: true, N: 1, PromptBytes: 3 + 1 + 6, Messages: 2, Prompts: 1},
			Usage{Completion: 5}},
		{"generate", Generate,
			`{"model":"m","token_ids":[1,2,3,4],"sampling_params":{"max_tokens":50,"n":2,"temperature":0},"stream":false}`,
			Request{Endpoint: Generate, Model: "m", MaxOutputTokens: 50, OutputLimitStated: true, N: 2, PromptTokensKnown: 4, Prompts: 1},
			Usage{Completion: 100}},
		{"generate without sampling limit", Generate, `{"model":"m","token_ids":[7]}`,
			Request{Endpoint: Generate, Model: "m", N: 1, PromptTokensKnown: 1, Prompts: 1},
			Usage{Completion: 1024}},
		{"rerank: query counted per document", Rerank,
			`{"model":"r","query":"qq","documents":["aaa","bbbb",{"content":[{"type":"text","text":"c"}]}],"top_n":2}`,
			Request{Endpoint: Rerank, Model: "r", N: 1, PromptBytes: 2*3 + 3 + 4 + int64(len(`{"content":[{"type":"text","text":"c"}]}`)), Prompts: 3, NonTextParts: 1},
			Usage{}},
		{"score: one text against a list", Score, `{"model":"s","text_1":"ab","text_2":["c","d","e"]}`,
			Request{Endpoint: Score, Model: "s", N: 1, PromptBytes: 2*3 + 3, Prompts: 3}, Usage{}},
		{"score: two lists pairwise", Score, `{"model":"s","queries":["ab","cd"],"documents":["e","f"]}`,
			Request{Endpoint: Score, Model: "s", N: 1, PromptBytes: 6, Prompts: 2}, Usage{}},
		{"score: list against one", Score, `{"model":"s","data_1":["a","b"],"data_2":"xyz"}`,
			Request{Endpoint: Score, Model: "s", N: 1, PromptBytes: 2 + 3*2, Prompts: 2}, Usage{}},
		{"pooling input", Pooling, `{"model":"p","input":["ab",[1,2]]}`,
			Request{Endpoint: Pooling, Model: "p", N: 1, PromptBytes: 2, PromptTokensKnown: 2, Prompts: 2}, Usage{}},
		{"classify messages", Classify, `{"model":"c","messages":[{"role":"user","content":"hey"}]}`,
			Request{Endpoint: Classify, Model: "c", N: 1, PromptBytes: 3 + 6, Messages: 1, Prompts: 1}, Usage{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := ParseRequest(tt.e, []byte(tt.body))
			require.NoError(t, err)
			assert.Equal(t, tt.want, *got)
			wc := got.WorstCase(1024)
			assert.Equal(t, tt.wc.Completion, wc.Completion)
			assert.GreaterOrEqual(t, wc.Prompt, got.PromptBytes+got.PromptTokensKnown)
		})
	}
}

func TestParseInvocations(t *testing.T) {
	tests := []struct {
		body string
		want Endpoint
	}{
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"prompt":"x","input":"y"}`, ChatCompletions},
		{`{"model":"m","messages":null,"prompt":"x","input":"y"}`, Completions},
		{`{"model":"m","prompt":[1,2]}`, Completions},
		{`{"model":"m","prompt_embeds":"AAAA"}`, Completions},
		{`{"model":"m","input":["a","b"],"query":"q","documents":["d"]}`, Embeddings},
		{`{"model":"m","query":"q","documents":["d"],"text_1":"a","text_2":"b"}`, Rerank},
		{`{"model":"m","queries":["q"],"documents":["d"]}`, Score},
		{`{"model":"m","queries":"q","items":["d"]}`, Score},
		{`{"model":"m","text_1":"a","text_2":["b","c"]}`, Score},
	}
	for _, tt := range tests {
		t.Run(tt.body, func(t *testing.T) {
			var b Body
			require.NoError(t, ParseBody(&b, Invocations, []byte(tt.body)))
			assert.Equal(t, tt.want, b.Request.Endpoint)
			direct, err := ParseRequest(tt.want, []byte(tt.body))
			require.NoError(t, err)
			assert.Equal(t, *direct, b.Request, "the same as the routed kind's own parse")
		})
	}
	_, err := ParseRequest(Invocations, []byte(`{"model":"m","messages":"hi"}`))
	assert.ErrorContains(t, err, "/invocations: no endpoint takes this body")
	_, err = ParseRequest(Invocations, []byte(`{"model":"m","query":"q"}`))
	assert.ErrorContains(t, err, "/invocations: no endpoint takes this body")
}

func TestParseKindsRejects(t *testing.T) {
	tests := []struct {
		e    Endpoint
		body string
		msg  string
	}{
		{Messages, `{"model":"m","messages":[]}`, "max_tokens: missing: the Messages API requires it"},
		{Messages, `{"model":"m","max_tokens":null,"messages":[]}`, "max_tokens: missing"},
		{Messages, `{"model":"m","max_tokens":0,"messages":[]}`, "max_tokens: must be at least 1"},
		{Messages, `{"model":"m","max_tokens":"5","messages":[]}`, "max_tokens: must be an integer"},
		{Messages, `{"model":"m","max_tokens":5}`, "messages: missing"},
		{Messages, `{"model":"m","max_tokens":5,"messages":[],"system":5}`, "system: must be a string, an array of content parts or null"},
		{Messages, `{"model":"m","max_tokens":5,"messages":[],"system":[{"type":"text","text":1}]}`, `system[0].text: must be a string in a "text" part`},
		{Messages, `{"model":"m","max_tokens":5,"messages":[],"stream":1}`, "stream: must be true, false or null"},
		{Generate, `{"model":"m"}`, "token_ids: missing"},
		{Generate, `{"model":"m","token_ids":"abc"}`, "token_ids: must be an array of token ids"},
		{Generate, `{"model":"m","token_ids":[1,"a"]}`, "token_ids[1]: must be a token id"},
		{Generate, `{"model":"m","token_ids":[1],"sampling_params":[]}`, "sampling_params: must be an object"},
		{Generate, `{"model":"m","token_ids":[1],"sampling_params":{"max_tokens":-1}}`, "sampling_params.max_tokens: must be at least 0"},
		{Generate, `{"model":"m","token_ids":[1],"sampling_params":{"n":0}}`, "sampling_params.n: must be at least 1"},
		{Rerank, `{"model":"m","documents":["a"]}`, "query: missing"},
		{Rerank, `{"model":"m","query":"q"}`, "documents: missing"},
		{Rerank, `{"model":"m","query":5,"documents":["a"]}`, "query: must be a string, an object or an array"},
		{Rerank, `{"model":"m","query":"q","documents":["a",3]}`, "documents[1]: must be a string or an object"},
		{Score, `{"model":"m","text_1":"a"}`, "queries: missing"},
		{Score, `{"model":"m","text_1":"a","text_2":[true]}`, "text_2[0]: must be a string or an object"},
		{Pooling, `{"model":"m"}`, "input: missing"},
		{Classify, `{"model":"m","input":{}}`, "input: must be a string"},
	}
	for _, tt := range tests {
		t.Run(tt.e.String()+" "+tt.body, func(t *testing.T) {
			_, err := ParseRequest(tt.e, []byte(tt.body))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidRequest)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
}

// TestParseKindsEveryPosition cuts bodies of the newer kinds at every
// byte and breaks every byte in turn: ParseBody must read what
// ParseRequest reads and find the members where a second reader does,
// and never fail in any other way than ErrInvalidRequest.
func TestParseKindsEveryPosition(t *testing.T) {
	bodies := map[Endpoint]string{
		Messages:    `{"model":"m","max_tokens":9,"system":[{"type":"text","text":"s\u00e9"}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"stream":true}`,
		Generate:    `{"model":"m","token_ids":[1,-2],"sampling_params":{"max_tokens":3,"n":2},"stream_options":{"include_usage":true}}`,
		Rerank:      `{"model":"m","query":"q","documents":["a\"b",{"content":[]}],"top_n":1}`,
		Score:       `{"model":"m","text_1":["a","b"],"text_2":"c"}`,
		Pooling:     `{"model":"m","input":[[1,2],"x"]}`,
		Invocations: `{"model":"m","query":"q","documents":["d"],"prompt":null,"messages":null}`,
	}
	bytesToTry := []byte{'"', '\\', ',', ':', '[', ']', '{', '}', ' ', 0x01, 0xff, 'x', '1', 'n'}
	for e, body := range bodies {
		b := []byte(body)
		checkBody(t, e, b)
		for i := range b {
			checkBody(t, e, b[:i])
			saved := b[i]
			for _, c := range bytesToTry {
				b[i] = c
				checkBody(t, e, b)
				if _, err := ParseRequest(e, b); err != nil {
					require.ErrorIs(t, err, ErrInvalidRequest)
				}
			}
			b[i] = saved
		}
	}
}
