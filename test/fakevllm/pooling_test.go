package fakevllm

import (
	"net/http"
	"regexp"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// idAndTime blanks ids and creation times for byte comparisons.
var idAndTime = regexp.MustCompile(`"(id|request_id|created)":("[^"]*"|\d+)`)

func blank(b string) string { return idAndTime.ReplaceAllString(b, `"$1":_`) }

func TestPoolingEndpoints(t *testing.T) {
	s := New(Config{ServedModelName: "m"})
	tests := []struct {
		name, path, body, want string
	}{
		{"rerank", "/rerank", `{"query":"1234","documents":["12345678","1234"],"top_n":1}`,
			`{"id":_,"model":"m","usage":{"prompt_tokens":5,"total_tokens":5},"results":[{"index":0,"document":{"text":"12345678","multi_modal":null},"relevance_score":` + formatPyFloat(relevance(0)) + `}]}`},
		{"score 1:N", "/score", `{"text_1":"1234","text_2":["1234","12345678"]}`,
			`{"id":_,"object":"list","created":_,"model":"m","data":[{"index":0,"object":"score","score":` + formatPyFloat(relevance(0)) + `},{"index":1,"object":"score","score":` + formatPyFloat(relevance(1)) + `}],"usage":{"prompt_tokens":5,"total_tokens":5,"completion_tokens":0,"prompt_tokens_details":null}}`},
		{"pooling", "/pooling", `{"input":"12345678","dimensions":1}`,
			`{"id":_,"object":"list","created":_,"model":"m","data":[{"index":0,"object":"pooling","data":[` + formatPyFloat(vector(0, 1)[0]) + `]}],"usage":{"prompt_tokens":2,"total_tokens":2,"completion_tokens":0,"prompt_tokens_details":null}}`},
		{"classify", "/classify", `{"input":["1234"]}`,
			`{"id":_,"object":"list","created":_,"model":"m","data":[{"index":0,"label":"LABEL_0","probs":[` + formatPyFloat(relevance(0)) + `,` + formatPyFloat(1-relevance(0)) + `],"num_classes":2}],"usage":{"prompt_tokens":1,"total_tokens":1,"completion_tokens":0,"prompt_tokens_details":null}}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, s, tt.path, tt.body)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, tt.want, blank(rec.Body.String()))
		})
	}
	for _, path := range []string{"/v1/rerank", "/v2/rerank"} {
		assert.Equal(t, http.StatusOK, post(t, s, path, `{"query":"q","documents":["d"]}`).Code, path)
	}
	assert.Equal(t, http.StatusOK, post(t, s, "/v1/score", `{"queries":["q"],"documents":["d"]}`).Code)
	assert.Equal(t, http.StatusBadRequest, post(t, s, "/score", `{"text_1":["a","b"],"text_2":["a","b","c"]}`).Code)
	assert.Equal(t, http.StatusBadRequest, post(t, s, "/rerank", `{"query":"q"}`).Code)
}

// /invocations serves the endpoint the body's shape names, in vLLM's order.
func TestInvocationsRoutesByBodyShape(t *testing.T) {
	s := New(Config{ServedModelName: "m"})
	tests := []struct{ body, want string }{
		{`{"messages":[{"role":"user","content":"hi"}],"prompt":"x"}`, `"object":"chat.completion"`},
		{`{"prompt":"x","input":"y"}`, `"object":"text_completion"`},
		{`{"input":"y"}`, `"object":"embedding"`},
		{`{"query":"q","documents":["d"]}`, `"results":[`},
		{`{"data_1":"a","data_2":"b"}`, `"object":"score"`},
		{`{"data":[1,2]}`, `"object":"pooling"`},
	}
	for _, tt := range tests {
		rec := post(t, s, "/invocations", tt.body)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		assert.Contains(t, rec.Body.String(), tt.want, tt.body)
	}
	rec := post(t, s, "/invocations", `{"foo":1}`)
	assert.Equal(t, http.StatusBadRequest, rec.Code)
	assert.Contains(t, rec.Body.String(), `"message":"Cannot find suitable handler for request. Expected one of: ['ChatCompletionRequest', 'CompletionRequest', `)

	streamed := do(t, s, http.MethodPost, "/invocations", `{"messages":[],"stream":true,"stream_options":{}}`, map[string]string{HeaderCompletionTokens: "2"})
	assert.Contains(t, streamed.Body.String(), `"choices":[],"usage":{"prompt_tokens":1,"total_tokens":3,"completion_tokens":2}}`, "streams as chat does")
}

func TestGenerate(t *testing.T) {
	s := New(Config{ServedModelName: "m"})
	rec := post(t, s, "/inference/v1/generate", `{"token_ids":[1,2,3],"sampling_params":{"max_tokens":2,"n":2}}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	ids := `[` + itoa(fillerIDs(2)[0]) + `,` + itoa(fillerIDs(2)[1]) + `]`
	assert.Equal(t, `{"request_id":_,"model":"m","created":_,"choices":[`+
		`{"index":0,"logprobs":null,"finish_reason":"length","token_ids":`+ids+`,"routed_experts":null},`+
		`{"index":1,"logprobs":null,"finish_reason":"length","token_ids":`+ids+`,"routed_experts":null}],`+
		`"usage":{"prompt_tokens":3,"total_tokens":7,"completion_tokens":4,"prompt_tokens_details":null},"prompt_logprobs":null,"kv_transfer_params":null,"ec_transfer_params":null}`,
		blank(rec.Body.String()))

	stream := sseData(t, post(t, s, "/inference/v1/generate",
		`{"token_ids":[1],"sampling_params":{"max_tokens":1},"stream":true,"stream_options":{"continuous_usage_stats":true}}`).Body.String())
	assert.Equal(t, []string{
		`{"request_id":_,"choices":[{"index":0,"logprobs":null,"finish_reason":"length","token_ids":[` + itoa(fillerIDs(1)[0]) + `],"routed_experts":null}],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1,"prompt_tokens_details":null}}`,
		`{"request_id":_,"choices":[],"usage":{"prompt_tokens":1,"total_tokens":2,"completion_tokens":1}}`,
		`[DONE]`,
	}, []string{blank(stream[0]), blank(stream[1]), stream[2]})

	missing := post(t, s, "/inference/v1/generate", `{"sampling_params":{}}`)
	assert.Equal(t, http.StatusBadRequest, missing.Code)
	assert.Contains(t, missing.Body.String(), `"param":"body.token_ids"`)
}
