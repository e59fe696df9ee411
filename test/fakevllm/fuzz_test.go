package fakevllm

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
)

// Any body to any endpoint gets an answer vLLM could give, never a panic.
func FuzzServeHTTP(f *testing.F) {
	seeds := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"n":2,"max_tokens":3}`},
		{"/v1/chat/completions", `{"messages":[],"stream":true,"stream_options":{"include_usage":true}}`},
		{"/v1/completions", `{"model":"m","prompt":[[1,2],[3]],"max_tokens":1,"stream":true}`},
		{"/v1/completions", `{"prompt":["a","b"],"n":3}`},
		{"/v1/embeddings", `{"input":[1,2,3],"dimensions":4,"encoding_format":"base64"}`},
		{"/v1/responses", `{"input":[{"role":"user","content":"x"}],"instructions":"y","stream":true}`},
		{"/v1/models", ``},
		{"/health", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.path, []byte(s.body))
	}
	s := New(Config{KnownModels: []string{"m"}})
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		if _, ok := routes[path]; !ok {
			path = "/v1/chat/completions"
		}
		req := httptest.NewRequest(routes[path].method, path, bytes.NewReader(body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		assert.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound}, rec.Code, rec.Body.String())
		s.Reset()
	})
}
