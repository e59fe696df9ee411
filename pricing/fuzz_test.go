package pricing

import (
	"errors"
	"testing"
)

func FuzzParseRequest(f *testing.F) {
	seeds := []struct {
		e    Endpoint
		body string
	}{
		{ChatCompletions, `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"image_url","image_url":{"url":"u"}}]}],"n":2,"max_completion_tokens":5,"stream":true,"stream_options":{"include_usage":true}}`},
		{ChatCompletions, `{"model":"m","messages":[{"role":"assistant","content":null,"tool_calls":[]}],"tools":[{}]}`},
		{Completions, `{"model":"m","prompt":["a",[1,2],3],"best_of":4,"max_tokens":7}`},
		{Embeddings, `{"model":"m","input":[[1],[2,3]],"messages":[]}`},
		{Responses, `{"model":"m","instructions":"x","input":[{"role":"user","content":[{"type":"input_text","text":"t"}]}],"max_output_tokens":9}`},
		{ChatCompletions, `{"model":"\ud800","messages":[{"content":"\u00e9\xff"}]}`},
		{Messages, `{"model":"m","max_tokens":9,"system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":[{"type":"text","text":"hi"},{"type":"tool_result","content":"x"}]}],"tools":[{}]}`},
		{Generate, `{"model":"m","token_ids":[1,2],"sampling_params":{"max_tokens":3,"n":2},"stream":true,"stream_options":{}}`},
		{Rerank, `{"model":"m","query":"q","documents":["a",{"content":[]}]}`},
		{Score, `{"model":"m","text_1":["a","b"],"text_2":"c","queries":null}`},
		{Pooling, `{"model":"m","input":[[1,2],"x"],"messages":[]}`},
		{Classify, `{"model":"m","messages":[{"content":"c"}]}`},
		{Invocations, `{"model":"m","query":"q","documents":["d"],"text_1":"a","text_2":"b"}`},
		{Invocations, `{"model":"m","prompt":"p","input":"i"}`},
		{ChatCompletions, `[]`},
		{ChatCompletions, `null`},
	}
	for _, s := range seeds {
		f.Add(uint8(s.e), []byte(s.body))
	}
	f.Fuzz(func(t *testing.T, ep uint8, body []byte) {
		e := Endpoint(ep % uint8(Invocations+2)) // includes two values that are not endpoints
		r, err := ParseRequest(e, body)
		if err != nil {
			if r != nil || !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v with request %+v", err, r)
			}
			return
		}
		if r.Model == "" || r.N < 1 || r.Prompts < 1 || r.MaxOutputTokens < 0 ||
			r.PromptBytes < 0 || r.PromptTokensKnown < 0 || r.Messages < 0 || r.NonTextParts < 0 {
			t.Fatalf("impossible request %+v", r)
		}
		// Every counted byte comes from a distinct part of the body, and
		// decoding turns one byte into at most three (an invalid byte
		// becomes U+FFFD).
		if r.PromptBytes > 3*int64(len(body)) || r.PromptTokensKnown > int64(len(body)) {
			t.Fatalf("prompt of %d bytes and %d tokens from a body of %d bytes", r.PromptBytes, r.PromptTokensKnown, len(body))
		}
		wc := r.WorstCase(1024)
		if wc.Prompt < r.PromptBytes || wc.Completion < 0 || wc.CachedPrompt != 0 {
			t.Fatalf("worst case %+v for %+v", wc, r)
		}
	})
}
