package e2e

import (
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/pricing"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// limitConfig reserves 10 output tokens for a request that states no
// limit: fewer than the fake vLLM generates when the request has none
// (16), as real vLLM runs to the end of the context.
const limitConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
  default_max_output_tokens: 10
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1
`

// lastReport waits for the cost report of the n-th request.
func lastReport(t *testing.T, s *stack, n int) *spendguardv1.CostReport {
	t.Helper()
	require.Eventually(t, func() bool { return len(s.reports.all()) >= n }, 5*time.Second, 5*time.Millisecond)
	reps := s.reports.all()
	return reps[n-1]
}

// TestUnstatedLimitIsEnforced: a request without max_tokens, whose
// upstream would generate more than the default output limit, reaches
// vLLM with the limit its reservation covers and is charged at most what
// was reserved; the client learns the limit from x-spendguard-max-tokens.
func TestUnstatedLimitIsEnforced(t *testing.T) {
	s := newStack(t, limitConfig, fakevllm.Config{})
	body := `{"model":"Hunyuan","messages":[{"role":"user","content":"Tell me a long story"}]}`
	resp := s.post("/v1/chat/completions", body, "x-tenant-id", "acme")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Equal(t, "10", resp.header.Get("x-spendguard-max-tokens"))

	reqs := s.vllm.Requests()
	sent := reqs[len(reqs)-1]
	want := strings.TrimSuffix(body, "}") + `,"max_completion_tokens":10}`
	assert.Equal(t, want, string(sent.Body), "the client's body plus the limit")
	assert.Equal(t, strconv.Itoa(len(want)), sent.Header.Get("Content-Length"))

	req, err := pricing.ParseRequest(pricing.ChatCompletions, []byte(body))
	require.NoError(t, err)
	wc := req.WorstCase(10)
	reserved := wc.Prompt*600 + wc.Completion*800 // nano-USD at 0.60 and 0.80 per million
	rep := lastReport(t, s, 1)
	assert.Equal(t, int64(10), rep.GetCompletionTokens(), "the fake stopped at the written limit, not at its own 16")
	assert.LessOrEqual(t, rep.GetCostNanoUsd(), reserved, "charged at most the reservation")

	// A stated limit reaches vLLM as sent, and nothing is announced.
	stated := `{"model":"Hunyuan","max_tokens":3,"messages":[{"role":"user","content":"hi"}]}`
	resp = s.post("/v1/chat/completions", stated, "x-tenant-id", "acme")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Empty(t, resp.header.Values("x-spendguard-max-tokens"))
	reqs = s.vllm.Requests()
	assert.Equal(t, stated, string(reqs[len(reqs)-1].Body))
}

// TestUnstatedLimitReachesUpstream: the fake vLLM's forced completion
// count (x-fake-completion-tokens) overrides the request's limit, which
// real vLLM never does, so for the other endpoints and for a stream this
// checks what the upstream received: the limit under the endpoint's name.
func TestUnstatedLimitReachesUpstream(t *testing.T) {
	s := newStack(t, limitConfig, fakevllm.Config{})
	for _, tc := range []struct{ path, body, want string }{
		{"/v1/completions", `{"model":"Hunyuan","prompt":"Once upon a time"}`, `{"model":"Hunyuan","prompt":"Once upon a time","max_tokens":10}`},
		{"/v1/responses", `{"model":"Hunyuan","input":"Once upon a time"}`, `{"model":"Hunyuan","input":"Once upon a time","max_output_tokens":10}`},
	} {
		resp := s.post(tc.path, tc.body, "x-tenant-id", "acme", fakevllm.HeaderCompletionTokens, "1000")
		require.Equal(t, http.StatusOK, resp.status, "%s: %s", tc.path, resp.body)
		assert.Equal(t, "10", resp.header.Get("x-spendguard-max-tokens"), tc.path)
		reqs := s.vllm.Requests()
		assert.Equal(t, tc.want, string(reqs[len(reqs)-1].Body), tc.path)
	}

	// A stream gets no limit: its reservation grows and it is ended at the
	// cap (TestStreamCutAtTheCap); vLLM is asked for usage on every chunk.
	stream := `{"model":"Hunyuan","stream":true,"messages":[{"role":"user","content":"hi"}]}`
	resp := s.post("/v1/chat/completions", stream, "x-tenant-id", "acme")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Empty(t, resp.header.Values("x-spendguard-max-tokens"))
	reqs := s.vllm.Requests()
	assert.Equal(t, strings.TrimSuffix(stream, "}")+`,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, string(reqs[len(reqs)-1].Body))

	// One that cannot grow (limits.streams.grow: false) gets the limit.
	s = newStack(t, limitConfig+"limits:\n  streams:\n    grow: false\n", fakevllm.Config{})
	resp = s.post("/v1/chat/completions", stream, "x-tenant-id", "acme")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Equal(t, "10", resp.header.Get("x-spendguard-max-tokens"))
	reqs = s.vllm.Requests()
	assert.Equal(t, strings.TrimSuffix(stream, "}")+`,"stream_options":{"include_usage":true},"max_completion_tokens":10}`, string(reqs[len(reqs)-1].Body))
}
