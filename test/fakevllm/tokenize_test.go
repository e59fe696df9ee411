package fakevllm

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type tokenized struct {
	Count       int       `json:"count"`
	MaxModelLen int       `json:"max_model_len"`
	Tokens      []int     `json:"tokens"`
	TokenStrs   *[]string `json:"token_strs"`
}

func tokenize(t *testing.T, s *Server, body string) tokenized {
	t.Helper()
	rec := post(t, s, "/tokenize", body)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	var out tokenized
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
	assert.Len(t, out.Tokens, out.Count)
	assert.Equal(t, maxModelLen, out.MaxModelLen)
	return out
}

// /tokenize counts a prompt exactly as the prompt_tokens the fake reports
// for it, and delivered text as the completion tokens that produced it.
func TestTokenizeMatchesReportedUsage(t *testing.T) {
	s := New(Config{})
	for _, prompt := range []string{"", "hi", "12345678", "héllo wörld, a longer prompt of some bytes"} {
		q, _ := json.Marshal(prompt)
		got := tokenize(t, s, `{"model":"m","prompt":`+string(q)+`}`)
		usage := usageOf(t, post(t, s, "/v1/completions", `{"model":"m","prompt":`+string(q)+`,"max_tokens":1}`).Body.Bytes())
		assert.Equal(t, usage["prompt_tokens"], float64(got.Count), "prompt %q", prompt)
	}
	messages := `[{"role":"system","content":"be brief"},{"role":"user","content":[{"type":"text","text":"what is the time?"}]}]`
	got := tokenize(t, s, `{"model":"m","messages":`+messages+`}`)
	usage := usageOf(t, post(t, s, "/v1/chat/completions", `{"model":"m","messages":`+messages+`}`).Body.Bytes())
	assert.Equal(t, usage["prompt_tokens"], float64(got.Count))

	for _, n := range []int{0, 1, 2, 17, 300} {
		got := tokenize(t, s, `{"model":"m","prompt":"`+filler(n)+`","add_special_tokens":false}`)
		assert.Equal(t, n, got.Count, "delivered text of %d tokens", n)
		assert.Equal(t, fillerIDs(n), got.Tokens)
	}
	strs := tokenize(t, s, `{"prompt":"Once fox","return_token_strs":true}`)
	require.NotNil(t, strs.TokenStrs)
	assert.Equal(t, []string{"Once", " fox"}, *strs.TokenStrs)
	assert.Equal(t, `{"count":1,"max_model_len":32768,"tokens":[1],"token_strs":null}`, post(t, s, "/tokenize", `{"prompt":"a"}`).Body.String())
}

func TestDetokenizeInvertsTokenize(t *testing.T) {
	s := New(Config{})
	ids := tokenize(t, s, `{"prompt":"Once fox ran far"}`).Tokens
	b, _ := json.Marshal(ids)
	rec := post(t, s, "/detokenize", `{"model":"m","tokens":`+string(b)+`}`)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, `{"prompt":"Once fox ran far"}`, rec.Body.String())
	assert.Equal(t, http.StatusBadRequest, post(t, s, "/detokenize", `{"tokens":[-1]}`).Code)
	assert.Equal(t, http.StatusBadRequest, post(t, s, "/tokenize", `{"model":"m"}`).Code)
	assert.Equal(t, `{"prompt":""}`, post(t, s, "/detokenize", `{"tokens":[1]}`).Body.String(), "the BOS token is no text")
}

// The Responses API and the Messages API count their prompt as a chat
// does: /tokenize of the equivalent messages gives the same number.
func TestOtherAPIsCountPromptsAsChat(t *testing.T) {
	s := New(Config{CompletionTokens: 1})
	want := tokenize(t, s, `{"messages":[{"role":"system","content":"be brief!"},{"role":"user","content":"what time is it"}]}`).Count
	resp := decodeResponse(t, post(t, s, "/v1/responses", `{"model":"m","instructions":"be brief!","input":"what time is it"}`))
	assert.Contains(t, string(resp.Usage), `"input_tokens":`+itoa(want)+`,`)
	msg := post(t, s, "/v1/messages", `{"model":"m","system":"be brief!","messages":[{"role":"user","content":"what time is it"}],"max_tokens":1}`)
	assert.Contains(t, msg.Body.String(), `"usage":{"input_tokens":`+itoa(want)+`,`)
}
