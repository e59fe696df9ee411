package e2e

import (
	"fmt"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/test/fakevllm"
)

const capConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: %s
`

const smallChat = `{"model":"Hunyuan","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`

// TestExhaustedBudgetAnswers402FromRequestHeaders spends a tenant's whole
// budget, then checks that the next request is refused by the
// request-headers answer (one ext_proc message, no body read) and never
// reaches the upstream.
func TestExhaustedBudgetAnswers402FromRequestHeaders(t *testing.T) {
	s := newStack(t, fmt.Sprintf(capConfig, "1.00"), fakevllm.Config{})
	// 1,250,000 completion tokens at 0.80/M is exactly 1.00 USD.
	resp := s.post("/v1/chat/completions", smallChat, "x-tenant-id", "acme",
		fakevllm.HeaderPromptTokens, "0", fakevllm.HeaderCompletionTokens, "1250000")
	require.Equal(t, http.StatusOK, resp.status)
	upstreamBefore := s.vllm.Count()
	statsBefore := s.proxy.Proxy().Stats()

	resp = s.post("/v1/chat/completions", smallChat, "x-tenant-id", "acme")
	require.Equal(t, http.StatusPaymentRequired, resp.status)
	stats := s.proxy.Proxy().Stats()
	assert.Equal(t, int64(1), stats.MessagesSent-statsBefore.MessagesSent, "only the request headers were sent to spendguard")
	assert.Equal(t, upstreamBefore, s.vllm.Count(), "the upstream never saw the request")

	now := time.Now().UTC()
	reset := time.Date(now.Year(), now.Month(), now.Day()+1, 0, 0, 0, 0, time.UTC)
	want := `{"error":{"message":"budget tenant-daily exhausted for tenant=acme: spent 1.00 of 1.00 USD today; resets ` +
		reset.Format(time.RFC3339) + `","type":"budget_exceeded","param":null,"code":"budget_exceeded"}}`
	assert.Equal(t, want, string(resp.body))
	assert.Equal(t, "application/json", resp.header.Get("content-type"))
	assert.Equal(t, "tenant-daily", resp.header.Get("x-spendguard-budget"))
	assert.Equal(t, "tenant=acme", resp.header.Get("x-spendguard-scope"))
	var retry int
	_, err := fmt.Sscan(resp.header.Get("retry-after"), &retry)
	require.NoError(t, err)
	assert.InDelta(t, time.Until(reset).Seconds(), float64(retry), 5)

	// Another tenant has its own counter.
	resp = s.post("/v1/chat/completions", smallChat, "x-tenant-id", "globex")
	assert.Equal(t, http.StatusOK, resp.status)
}

// TestConcurrentBurstNeverOvershoots sends 100 requests at once against a
// cap that fits exactly 10 worst-case requests; the upstream reports the
// worst case as the actual usage, so no settlement frees room for more.
func TestConcurrentBurstNeverOvershoots(t *testing.T) {
	req, err := pricing.ParseRequest(pricing.ChatCompletions, []byte(smallChat))
	require.NoError(t, err)
	worst := req.WorstCase(pricing.DefaultMaxOutputTokens)
	perRequest := money.Nano(worst.Prompt*600 + worst.Completion*800)
	limit := 10 * perRequest

	s := newStack(t, fmt.Sprintf(capConfig, limit.Fixed(9)), fakevllm.Config{
		PromptTokens: int(worst.Prompt), CompletionTokens: int(worst.Completion), Latency: 20 * time.Millisecond,
	})
	const n = 100
	statuses := make([]int, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			statuses[i] = s.post("/v1/chat/completions", smallChat, "x-tenant-id", "acme").status
		}()
	}
	close(start)
	wg.Wait()

	count := map[int]int{}
	for _, st := range statuses {
		count[st]++
	}
	assert.Equal(t, 10, count[http.StatusOK], "statuses: %v", count)
	assert.Equal(t, n-10, count[http.StatusPaymentRequired], "statuses: %v", count)
	assert.LessOrEqual(t, s.vllm.Count(), 10, "at most 10 reached the upstream")
	st := s.counters(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	assert.LessOrEqual(t, st[0].Committed, limit, "recorded spend never exceeds the cap")
	assert.Equal(t, limit, st[0].Committed)
	assert.Zero(t, st[0].Reserved)
}

func TestBadRequestsAre400AndChargeNothing(t *testing.T) {
	s := newStack(t, fmt.Sprintf(capConfig, "1.00"), fakevllm.Config{})
	cases := []struct{ name, body, code string }{
		{"invalid json", `{"model":"Hunyuan","messages":[`, "invalid_json"},
		{"model missing", `{"messages":[]}`, "invalid_json"},
		{"unknown model, no default", `{"model":"gpt-9","messages":[]}`, "model_not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp := s.post("/v1/chat/completions", tc.body, "x-tenant-id", "acme")
			assert.Equal(t, http.StatusBadRequest, resp.status)
			assert.Contains(t, string(resp.body), `"type":"invalid_request_error","param":null,"code":"`+tc.code+`"`)
			assert.Equal(t, "application/json", resp.header.Get("content-type"))
		})
	}
	assert.Zero(t, s.vllm.Count(), "nothing reached the upstream")
	st := s.counters(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	assert.Equal(t, money.Nano(0), st[0].Committed)
	assert.Equal(t, money.Nano(0), st[0].Reserved)
}

func TestMissingTenantIs401(t *testing.T) {
	s := newStack(t, fmt.Sprintf(capConfig, "1.00"), fakevllm.Config{})
	resp := s.post("/v1/chat/completions", smallChat)
	assert.Equal(t, http.StatusUnauthorized, resp.status)
	assert.Contains(t, string(resp.body), `"type":"unauthorized"`)
	assert.Zero(t, s.vllm.Count())
}
