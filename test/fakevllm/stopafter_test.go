package fakevllm

import (
	"bufio"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestStopAfterTokens: the model stops by itself after StopAfterTokens
// tokens, or at the request's limit when that is smaller.
func TestStopAfterTokens(t *testing.T) {
	srv := New(Config{StopAfterTokens: 40})
	for _, tc := range []struct {
		body       string
		header     string
		want       int
		wantFinish string
	}{
		{`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "", 40, "stop"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":10}`, "", 10, "length"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":100}`, "", 40, "stop"},
		{`{"model":"m","messages":[{"role":"user","content":"hi"}]}`, "7", 7, "stop"},
	} {
		req := httptest.NewRequest(http.MethodPost, "/v1/chat/completions", strings.NewReader(tc.body))
		if tc.header != "" {
			req.Header.Set(HeaderStopAfterTokens, tc.header)
		}
		rec := httptest.NewRecorder()
		srv.ServeHTTP(rec, req)
		require.Equal(t, 200, rec.Code, rec.Body.String())
		var out struct {
			Choices []struct {
				FinishReason string `json:"finish_reason"`
			} `json:"choices"`
			Usage usageInfo `json:"usage"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &out))
		assert.Equal(t, tc.want, out.Usage.CompletionTokens, tc.body)
		assert.Equal(t, tc.wantFinish, out.Choices[0].FinishReason, tc.body)
	}
}

// TestDisconnectStopsTheStream: a client that goes away mid-stream is
// counted, as vLLM aborts such a request.
func TestDisconnectStopsTheStream(t *testing.T) {
	srv := New(Config{})
	hs := httptest.NewServer(srv)
	defer hs.Close()
	req, err := http.NewRequest(http.MethodPost, hs.URL+"/v1/chat/completions",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}],"stream":true}`))
	require.NoError(t, err)
	req.Header.Set(HeaderStopAfterTokens, "100000")
	req.Header.Set(HeaderEventDelayMS, "5")
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	r := bufio.NewReader(resp.Body)
	for range 3 {
		_, err := r.ReadString('\n')
		require.NoError(t, err)
	}
	assert.Equal(t, 0, srv.Disconnects(), "still streaming")
	require.NoError(t, resp.Body.Close())
	deadline := time.Now().Add(10 * time.Second)
	for srv.Disconnects() == 0 && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	assert.Equal(t, 1, srv.Disconnects())
}
