package processor_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/exporters/webhook"
	"github.com/spendguard/spendguard/processor"
	"github.com/spendguard/spendguard/test/httpsink"
)

// A request through the processor that takes its scope past 50% of the
// hard cap makes the webhook exporter POST exactly one threshold_crossed
// alert, for 0.5: the thresholds travel from the configuration with the
// post-settle budget states to the real fan-out and a real HTTP receiver.
func TestARequestCrossingHalfTheCapPostsOneThresholdAlert(t *testing.T) {
	// The request costs 12 × 0.60 + 100 × 0.80 per million tokens =
	// 0.0000872 USD: 54.5% of 0.00016.
	src := strings.Replace(testConfig, "    hard_usd: 1\n",
		"    hard_usd: 0.00016\n    alerts: {thresholds: [80%, 0.5]}\n", 1)
	cfg, err := config.Parse([]byte(src))
	require.NoError(t, err)
	hook := httpsink.New(nil)
	defer hook.Close()
	fan, err := exporters.New(exporters.Config{Webhook: &webhook.Config{URL: hook.URL() + "/alerts"}}, zap.NewNop())
	require.NoError(t, err)
	h := serveHarness(t, cfg, cfg.Snapshot, memstore.New(), func(o *processor.Options) {
		o.Reporter, o.Gather = fan, processor.Gather{Budgets: fan.WantsBudgets()}
	})

	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("200"))
	h.roundTrip(s, respBody(fixture(t, "vllm-chat.json"), true))
	require.EqualValues(t, 87_200, h.spend("acme").Committed, "the request was charged")

	h.eventually(func() bool { return len(hook.Requests()) > 0 })
	require.NoError(t, fan.Shutdown(context.Background()))
	reqs := hook.Requests()
	require.Len(t, reqs, 1, "one alert, for 50% only")
	var p webhook.Payload
	require.NoError(t, json.Unmarshal(reqs[0].Body, &p))
	assert.Equal(t, webhook.ThresholdCrossed, p.Event)
	require.NotNil(t, p.Threshold)
	assert.Equal(t, 0.5, *p.Threshold)
	assert.Equal(t, "tenant=acme", p.ScopeText)
	assert.Equal(t, "0.000087", p.SpentUSD.String())
	assert.True(t, strings.HasPrefix(p.Message, "spendguard: tenant=acme has used 50% of budget tenant-daily ("), p.Message)
}

// BudgetStates passes the budget's own thresholds slice along: nothing is
// copied per request.
func TestBudgetStatesShareTheBudgetsThresholds(t *testing.T) {
	src := strings.Replace(testConfig, "    hard_usd: 1\n", "    hard_usd: 1\n    alerts: {thresholds: [0.9, 0.5]}\n", 1)
	cfg, err := config.Parse([]byte(src))
	require.NoError(t, err)
	p := cfg.Snapshot.Budgets
	scopes := p.Applicable(map[string]string{"tenant": "acme"})
	require.Len(t, scopes, 1)
	states := processor.BudgetStates([]budget.State{{Scope: scopes[0]}}, nil)
	require.Len(t, states, 1)
	assert.Equal(t, []float64{0.5, 0.9}, states[0].Thresholds)
	assert.Same(t, &scopes[0].Budget.Thresholds()[0], &states[0].Thresholds[0])
}
