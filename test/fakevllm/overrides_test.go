package fakevllm

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestOverrideHeaders(t *testing.T) {
	base := Config{PromptTokens: 12, CompletionTokens: 100, ServedModelName: "served"}
	chat := `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}`
	tests := []struct {
		name       string
		header     map[string]string
		wantStatus int
		wantModel  string
		wantUsage  string
	}{
		{"none", nil, 200, "served",
			`{"prompt_tokens":12,"total_tokens":212,"completion_tokens":200,"prompt_tokens_details":null}`},
		{"prompt and completion", map[string]string{HeaderPromptTokens: "3", HeaderCompletionTokens: "4"}, 200, "served",
			`{"prompt_tokens":3,"total_tokens":11,"completion_tokens":8,"prompt_tokens_details":null}`},
		{"zero completion is exact", map[string]string{HeaderCompletionTokens: "0"}, 200, "served",
			`{"prompt_tokens":12,"total_tokens":12,"completion_tokens":0,"prompt_tokens_details":null}`},
		{"cached", map[string]string{HeaderCachedTokens: "10"}, 200, "served",
			`{"prompt_tokens":12,"total_tokens":212,"completion_tokens":200,"prompt_tokens_details":{"cached_tokens":10}}`},
		{"model", map[string]string{HeaderModel: "other"}, 200, "other",
			`{"prompt_tokens":12,"total_tokens":212,"completion_tokens":200,"prompt_tokens_details":null}`},
		{"2xx status keeps the body", map[string]string{HeaderStatus: "201"}, 201, "served",
			`{"prompt_tokens":12,"total_tokens":212,"completion_tokens":200,"prompt_tokens_details":null}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, New(base), http.MethodPost, "/v1/chat/completions", chat, tt.header)
			require.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			var body struct {
				Model string          `json:"model"`
				Usage json.RawMessage `json:"usage"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.wantModel, body.Model)
			assert.Equal(t, tt.wantUsage, string(body.Usage))
		})
	}
}

func TestSetConfigAppliesToLaterRequests(t *testing.T) {
	s := New(Config{PromptTokens: 1, CompletionTokens: 1})
	s.SetConfig(Config{PromptTokens: 30, CompletionTokens: 40})
	rec := post(t, s, "/v1/completions", `{"model":"m","prompt":"hi"}`)
	assert.Equal(t, map[string]any{
		"prompt_tokens": 30.0, "total_tokens": 70.0, "completion_tokens": 40.0, "prompt_tokens_details": nil,
	}, usageOf(t, rec.Body.Bytes()))
	assert.Equal(t, 30, s.Config().PromptTokens)
}

// serveAsync runs one request in the background; the channel closes when it
// has been answered.
func serveAsync(s *Server, req *http.Request) (*httptest.ResponseRecorder, <-chan struct{}) {
	rec := httptest.NewRecorder()
	done := make(chan struct{})
	go func() {
		defer close(done)
		s.ServeHTTP(rec, req)
	}()
	return rec, done
}

func answered(done <-chan struct{}) bool {
	select {
	case <-done:
		return true
	default:
		return false
	}
}

// Latency holds the whole answer back; the clock is synctest's fake one.
func TestLatency(t *testing.T) {
	tests := []struct {
		name   string
		cfg    time.Duration
		header string
		want   time.Duration
	}{
		{"config", 2 * time.Second, "", 2 * time.Second},
		{"header replaces config", time.Hour, "1500", 1500 * time.Millisecond},
		{"header zero", time.Hour, "0", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				s := New(Config{Latency: tt.cfg})
				req := httptest.NewRequest(http.MethodGet, "/health", nil)
				if tt.header != "" {
					req.Header.Set(HeaderLatencyMS, tt.header)
				}
				rec, done := serveAsync(s, req)
				if tt.want > 0 {
					time.Sleep(tt.want - time.Millisecond)
					synctest.Wait()
					require.False(t, answered(done), "answered before the latency passed")
				}
				time.Sleep(time.Millisecond)
				synctest.Wait()
				require.True(t, answered(done), "not answered once the latency passed")
				assert.Equal(t, http.StatusOK, rec.Code)
			})
		})
	}
}

func TestLatencyEndsWithTheClient(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		s := New(Config{Latency: time.Hour})
		ctx, cancel := context.WithCancel(t.Context())
		req := httptest.NewRequestWithContext(ctx, http.MethodPost, "/v1/completions", strings.NewReader(`{"prompt":"a"}`))
		_, done := serveAsync(s, req)
		synctest.Wait()
		require.False(t, answered(done))
		cancel()
		synctest.Wait()
		assert.True(t, answered(done), "a gone client stops the wait")
		assert.Equal(t, 1, s.Count(), "the request was still recorded")
	})
}
