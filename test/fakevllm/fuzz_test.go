package fakevllm

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"testing"
	"testing/iotest"

	"github.com/stretchr/testify/assert"
)

// Any body to any endpoint gets an answer vLLM could give, never a panic.
func FuzzServeHTTP(f *testing.F) {
	seeds := []struct{ path, body string }{
		{"/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":[{"type":"text","text":"hi"}]}],"n":2,"max_tokens":3}`},
		{"/v1/chat/completions", `{"messages":[],"stream":true,"stream_options":{"include_usage":null,"continuous_usage_stats":true}}`},
		{"/v1/completions", `{"model":"m","prompt":[[1,2],[3]],"max_tokens":1,"stream":true}`},
		{"/v1/completions", `{"prompt":["a","b"],"n":3,"use_beam_search":true,"stream":true}`},
		{"/v1/embeddings", `{"input":[1,2,3],"dimensions":4,"encoding_format":"base64"}`},
		{"/v1/embeddings", `{"input":"x","encoding_format":"bytes","endianness":"big"}`},
		{"/v1/responses", `{"input":[{"role":"user","content":"x"}],"instructions":"y","stream":true}`},
		{"/v1/responses", `{"input":"x","background":true}`},
		{"/v1/responses/resp_1", ``},
		{"/v1/responses/resp_1/cancel", ``},
		{"/v1/messages", `{"model":"m","system":[{"type":"text","text":"s"}],"messages":[{"role":"user","content":"x"}],"max_tokens":2,"stream":true}`},
		{"/invocations", `{"query":"q","documents":["a"]}`},
		{"/inference/v1/generate", `{"token_ids":[1,2],"sampling_params":{"n":2},"stream":true,"stream_options":{}}`},
		{"/rerank", `{"query":"q","documents":["a","b"],"top_n":1}`},
		{"/score", `{"queries":["a"],"items":["b","c"]}`},
		{"/pooling", `{"input":["a"]}`},
		{"/classify", `{"input":"a"}`},
		{"/tokenize", `{"messages":[{"role":"user","content":"hi"}]}`},
		{"/detokenize", `{"tokens":[1,1332634469]}`},
		{"/v1/audio/transcriptions", `not multipart`},
		{"/v1/models", ``},
		{"/health", `{}`},
	}
	for _, s := range seeds {
		f.Add(s.path, []byte(s.body))
	}
	s := New(Config{KnownModels: []string{"m"}})
	f.Fuzz(func(t *testing.T, path string, body []byte) {
		e, ok := lookup(path)
		if !ok {
			path, e = "/v1/chat/completions", routes["/v1/chat/completions"]
		}
		req := httptest.NewRequest(e.method, "/", bytes.NewReader(body))
		req.URL.Path = path
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		assert.Contains(t, []int{http.StatusOK, http.StatusBadRequest, http.StatusNotFound}, rec.Code, rec.Body.String())
		s.Reset()
	})
}

// The multipart parser never panics, and a form it accepts has what was
// sent: its answer is a vLLM answer or a 400.
func FuzzParseAudioForm(f *testing.F) {
	var body bytes.Buffer
	body.WriteString("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nw\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"stream\"\r\n\r\ntrue\r\n" +
		"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\nContent-Type: audio/wav\r\n\r\n")
	body.Write(wav(16000, 100))
	body.WriteString("\r\n--b--\r\n")
	f.Add("multipart/form-data; boundary=b", body.Bytes())
	f.Add("multipart/form-data; boundary=\"x y\"", []byte("--x y\r\n\r\n--x y--"))
	f.Add("text/plain", []byte("x"))
	f.Fuzz(func(t *testing.T, contentType string, body []byte) {
		req, err := parseAudioForm(contentType, body)
		if err != nil {
			return
		}
		if req.hasFile {
			_, _ = wavSeconds(req.file)
		}
		r := httptest.NewRequest(http.MethodPost, "/v1/audio/transcriptions", bytes.NewReader(body))
		r.Header.Set("Content-Type", contentType)
		rec := httptest.NewRecorder()
		New(Config{}).ServeHTTP(rec, r)
		assert.Contains(t, []int{http.StatusOK, http.StatusBadRequest}, rec.Code, rec.Body.String())
	})
}

// wavSeconds reads any bytes without panicking, and never reports a
// negative length.
func FuzzWAVSeconds(f *testing.F) {
	f.Add(wav(16000, 16000))
	f.Add(wav(8000, 3))
	f.Add([]byte("RIFF\x00\x00\x00\x00WAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := wavSeconds(b)
		if err == nil {
			assert.GreaterOrEqual(t, n, 0)
		}
	})
}

// A body that arrives one byte at a time is answered as the same body in
// one piece.
func TestBodySplitAtAnyByte(t *testing.T) {
	var body bytes.Buffer
	body.WriteString("--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.wav\"\r\n\r\n")
	body.Write(wav(16000, 40000))
	body.WriteString("\r\n--b--\r\n")
	s := New(Config{CompletionTokens: 2})
	answer := func(oneByte bool) string {
		var r = bytes.NewReader(body.Bytes())
		req := httptest.NewRequest(http.MethodPost, "/v1/audio/transcriptions", r)
		if oneByte {
			req = httptest.NewRequest(http.MethodPost, "/v1/audio/transcriptions", iotest.OneByteReader(r))
		}
		req.Header.Set("Content-Type", "multipart/form-data; boundary=b")
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		return rec.Body.String()
	}
	whole := answer(false)
	assert.Equal(t, `{"text":"Once fox","usage":{"type":"duration","seconds":3}}`, whole)
	assert.Equal(t, whole, answer(true))
}
