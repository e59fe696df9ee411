package e2e

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/config/configmaptest"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// reloadConfig has the output price (USD per million tokens) and the
// tenant-daily hard cap as parameters.
const reloadConfig = `version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: %s}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: %s
`

func reloadYAML(output, hard string) map[string]string {
	return map[string]string{"spendguard.yaml": fmt.Sprintf(reloadConfig, output, hard)}
}

// spendOneDollar is a request for tenant acme that costs exactly 1.00 USD
// at output 0.80: 1,250,000 completion tokens and no prompt tokens.
func (s *liveStack) spendOneDollar() response {
	return s.post("/v1/chat/completions", smallChat, "x-tenant-id", "acme",
		fakevllm.HeaderPromptTokens, "0", fakevllm.HeaderCompletionTokens, "1250000")
}

func (s *liveStack) waitReloads(n int64) {
	s.t.Helper()
	require.Eventually(s.t, func() bool {
		st, _ := s.sg.ReloadStatus()
		return st.Reloads == n
	}, liveWait, reloadDebounce, "reload %d never happened", n)
}

var acmeTenant = map[string]string{"tenant": "acme"}

// TestConfigMapUpdatesTakeEffectWithoutRestart drives the whole stack
// (envoysim → spendguard → fake vLLM) while the configuration's ConfigMap
// volume is updated as kubelet does: a raised cap lets the tenant spend
// again with the spend so far kept, a broken update is refused with its
// reasons while the configuration in force keeps serving, and a fixed
// update is installed.
func TestConfigMapUpdatesTakeEffectWithoutRestart(t *testing.T) {
	cm := configmaptest.New(t, reloadYAML("0.80", "1.00"))
	s := startLive(t, cm.Path("spendguard.yaml"))

	require.Equal(t, http.StatusOK, s.spendOneDollar().status)
	require.Equal(t, http.StatusPaymentRequired, s.spendOneDollar().status, "the 1.00 cap is spent")

	// A higher cap: the same counter, so 1.00 USD of room is left.
	cm.Update(reloadYAML("0.80", "2.00"))
	s.waitReloads(1)
	assert.Equal(t, money.Nano(1e9), s.spent("tenant-daily", acmeTenant), "the spend survived the reload")
	require.Equal(t, http.StatusOK, s.spendOneDollar().status)
	assert.Equal(t, http.StatusPaymentRequired, s.spendOneDollar().status, "the 2.00 cap is spent")

	// A broken update is refused; the 2.00 cap still applies.
	broken := reloadYAML("0.80", "3.00")
	broken["spendguard.yaml"] = strings.Replace(broken["spendguard.yaml"], "period: day", "period: fortnight", 1) +
		"limits:\n  max_reqest_usd: 1\n"
	cm.Update(broken)
	require.Eventually(t, func() bool {
		st, _ := s.sg.ReloadStatus()
		return st.Failures == 1
	}, liveWait, reloadDebounce)
	st, ok := s.sg.ReloadStatus()
	require.True(t, ok)
	assert.Equal(t, int64(1), st.Reloads)
	assert.Equal(t, `line 12: budget "tenant-daily": unknown period "fortnight" (use hour, day, week, month or total)
line 15: limits.max_reqest_usd: unknown key; did you mean "max_request_usd"? (allowed: max_request_usd, reservation_ttl, background_ttl, streams)`, st.LastError)
	assert.Contains(t, s.logs.String(), "configuration change refused; still serving the previous configuration")
	assert.Equal(t, http.StatusPaymentRequired, s.spendOneDollar().status, "still the 2.00 cap")
	resp := s.post("/v1/chat/completions", smallChat, "x-tenant-id", "globex",
		fakevllm.HeaderPromptTokens, "0", fakevllm.HeaderCompletionTokens, "1000")
	assert.Equal(t, http.StatusOK, resp.status, "and still serving")

	// Fixed: installed, and the error is gone.
	cm.Update(reloadYAML("0.80", "3.00"))
	s.waitReloads(2)
	st, _ = s.sg.ReloadStatus()
	assert.Empty(t, st.LastError)
	assert.Equal(t, http.StatusOK, s.spendOneDollar().status)
	assert.Equal(t, money.Nano(3e9), s.spent("tenant-daily", acmeTenant))
}

// TestInFlightRequestFinishesUnderItsConfiguration holds a request at the
// upstream while a reload raises the price tenfold: it is charged at the
// price it started with, and a request after the reload at the new one.
func TestInFlightRequestFinishesUnderItsConfiguration(t *testing.T) {
	cm := configmaptest.New(t, reloadYAML("0.80", "100"))
	s := startLive(t, cm.Path("spendguard.yaml"))

	held := make(chan response, 1)
	go func() {
		held <- s.post("/v1/chat/completions", smallChat, "x-tenant-id", "acme", holdHeader, "1",
			fakevllm.HeaderPromptTokens, "0", fakevllm.HeaderCompletionTokens, "1000")
	}()
	<-s.gate.entered

	cm.Update(reloadYAML("8.00", "100"))
	s.waitReloads(1)
	resp := s.post("/v1/chat/completions", smallChat, "x-tenant-id", "acme",
		fakevllm.HeaderPromptTokens, "0", fakevllm.HeaderCompletionTokens, "1000")
	require.Equal(t, http.StatusOK, resp.status)

	close(s.gate.release)
	require.Equal(t, http.StatusOK, (<-held).status)
	// 1000 tokens at 0.80/M and at 8.00/M.
	assert.Equal(t, money.Nano(800_000+8_000_000), s.spent("tenant-daily", acmeTenant))
	require.Eventually(t, func() bool { return len(s.reports.all()) == 2 }, liveWait, reloadDebounce)
	var costs []int64
	for _, r := range s.reports.all() {
		costs = append(costs, r.GetCostNanoUsd())
	}
	assert.ElementsMatch(t, []int64{800_000, 8_000_000}, costs)
}
