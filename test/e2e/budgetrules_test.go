package e2e

import (
	"encoding/json"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/test/fakevllm"
)

const rulesConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: big-model, input: 1.00, output: 2.00}
    - {match: small-model, input: 0.10, output: 0.20}
    - {match: free-tier-model, input: 0, output: 0}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    soft_usd: 1
    hard_usd: 2
    on_soft:
      downgrade: {big-model: small-model}
    on_hard:
      allow_models: [free-tier-model]
limits:
  max_request_usd: 0.50
`

func chat(model string, maxTokens int) string {
	return `{"model":"` + model + `",  "max_tokens":` + strconv.Itoa(maxTokens) + `,"messages":[{"role":"user","content":"héllo"}],"temperature":0.7}`
}

// TestSoftCapDowngradesAndHardCapAllowsListedModels walks one tenant past
// its soft cap (the upstream then sees the cheaper model, byte-exact
// otherwise and with a correct content-length) and past its hard cap (only
// the allowed free model still goes through).
func TestSoftCapDowngradesAndHardCapAllowsListedModels(t *testing.T) {
	s := newStack(t, rulesConfig, fakevllm.Config{})
	tenant := []string{"x-tenant-id", "acme"}

	// 600,000 output tokens of big-model: 1.20 USD, past the soft cap.
	resp := s.post("/v1/chat/completions", chat("big-model", 100), append(tenant, fakevllm.HeaderCompletionTokens, "600000")...)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Empty(t, resp.header.Get("x-spendguard-downgraded-from"))

	// Past the soft cap: the upstream gets small-model.
	sent := chat("big-model", 100)
	resp = s.post("/v1/chat/completions", sent, append(tenant, fakevllm.HeaderCompletionTokens, "5000000")...)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Equal(t, "big-model", resp.header.Get("x-spendguard-downgraded-from"))
	reqs := s.vllm.Requests()
	got := reqs[len(reqs)-1]
	want := chat("small-model", 100)
	assert.Equal(t, want, string(got.Body), "only the model changed, every other byte kept")
	assert.Equal(t, strconv.Itoa(len(want)), got.Header.Get("Content-Length"))
	var served struct{ Model string }
	require.NoError(t, json.Unmarshal(resp.body, &served))
	assert.Equal(t, "small-model", served.Model)
	reps := s.reports.all()
	last := reps[len(reps)-1]
	assert.Equal(t, "small-model", last.GetServedModel())
	assert.Equal(t, "big-model", last.GetRequestedModel())
	// 5,000,000 × 0.20 USD/M = 1.00 USD, priced at the served model.
	assert.Equal(t, int64(1_000_000_000)+int64(last.GetPromptTokens())*100, last.GetCostNanoUsd())

	// Now past the hard cap (2.20 of 2.00): big-model is refused, the free
	// model still served.
	upstream := s.vllm.Count()
	resp = s.post("/v1/chat/completions", chat("big-model", 100), tenant...)
	assert.Equal(t, http.StatusPaymentRequired, resp.status, "%s", resp.body)
	resp = s.post("/v1/chat/completions", chat("small-model", 100), tenant...)
	assert.Equal(t, http.StatusPaymentRequired, resp.status, "%s", resp.body)
	assert.Equal(t, upstream, s.vllm.Count())
	resp = s.post("/v1/chat/completions", chat("free-tier-model", 100), tenant...)
	assert.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	assert.Equal(t, upstream+1, s.vllm.Count())
}

func TestMaxRequestUSD(t *testing.T) {
	s := newStack(t, rulesConfig, fakevllm.Config{})
	// 300,000 output tokens × 2.00 USD/M = 0.60 USD worst case > 0.50.
	resp := s.post("/v1/chat/completions", chat("big-model", 300000), "x-tenant-id", "acme")
	assert.Equal(t, http.StatusPaymentRequired, resp.status)
	assert.Contains(t, string(resp.body), `"code":"max_request_usd_exceeded"`)
	assert.Contains(t, string(resp.body), "limits.max_request_usd 0.50 USD")
	assert.Zero(t, s.vllm.Count())

	resp = s.post("/v1/chat/completions", chat("big-model", 1000), "x-tenant-id", "acme")
	assert.Equal(t, http.StatusOK, resp.status)
}
