package fakevllm

import (
	"bufio"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestRequestsRecordsWhatArrived(t *testing.T) {
	s := New(Config{})
	body := `{"model":"m","messages":[{"role":"user","content":"hi"}]}`
	do(t, s, http.MethodPost, "/v1/chat/completions?x=1", body, map[string]string{"Authorization": "Bearer k"})
	do(t, s, http.MethodGet, "/health", "", nil)
	do(t, s, http.MethodPost, "/v1/embeddings", `{bad`, nil)

	got := s.Requests()
	require.Len(t, got, 3)
	assert.Equal(t, 3, s.Count())
	assert.Equal(t, http.MethodPost, got[0].Method)
	assert.Equal(t, "/v1/chat/completions", got[0].Path)
	assert.Equal(t, "x=1", got[0].RawQuery)
	assert.Equal(t, "Bearer k", got[0].Header.Get("Authorization"))
	assert.Equal(t, body, string(got[0].Body))
	assert.Equal(t, "/health", got[1].Path)
	assert.Empty(t, got[1].Body)
	assert.Equal(t, `{bad`, string(got[2].Body), "rejected bodies are recorded too")

	got[0].Body[0] = 'X'
	got[0].Header.Set("Authorization", "changed")
	again := s.Requests()
	assert.Equal(t, body, string(again[0].Body), "Requests returns copies")
	assert.Equal(t, "Bearer k", again[0].Header.Get("Authorization"))

	s.Reset()
	assert.Zero(t, s.Count())
	assert.Empty(t, s.Requests())
}

func TestStartServesOverTCP(t *testing.T) {
	s := New(Config{PromptTokens: 5, CompletionTokens: 3})
	url, err := s.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, s.Close()) })
	_, err = s.Start("127.0.0.1:0")
	assert.Error(t, err, "a second Start")

	resp, err := http.Post(url+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"m","messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.NoError(t, resp.Body.Close())
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Contains(t, string(b), `"usage":{"prompt_tokens":5,"total_tokens":8,"completion_tokens":3,"prompt_tokens_details":null}`)

	resp, err = http.Post(url+"/v1/completions", "application/json",
		strings.NewReader(`{"model":"m","prompt":"hi","max_tokens":2,"stream":true,"stream_options":{}}`))
	require.NoError(t, err)
	defer func() { _ = resp.Body.Close() }()
	var lines []string
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		if sc.Text() != "" {
			lines = append(lines, sc.Text())
		}
	}
	require.NoError(t, sc.Err())
	require.Len(t, lines, 5, "three chunks (CompletionTokens wins), usage, [DONE]")
	assert.Equal(t, "data: [DONE]", lines[4])
	assert.Equal(t, 2, s.Count())
}

func TestCloseWithoutStart(t *testing.T) {
	assert.NoError(t, New(Config{}).Close())
}
