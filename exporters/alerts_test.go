package exporters_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	"github.com/spendguard/spendguard/exporters/webhook"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/processor"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/httpsink"
)

// Must show: 1,000 requests crossing a soft cap send exactly one soft and
// one hard alert per scope. Real budget engine and memory store, real
// HTTP receiver; the requests run concurrently like the processor's
// streams, each reporting its post-settle (or post-rejection) states.
func TestThousandRequestsAcrossCapsSendOneSoftAndOneHardAlertPerScope(t *testing.T) {
	for _, format := range []string{"json", "slack"} {
		t.Run(format, func(t *testing.T) {
			hook := httpsink.New(nil)
			defer hook.Close()
			policies, err := budget.Compile([]budget.Config{
				{Name: "team-daily", Match: map[string]string{"team": "*"}, Period: "day",
					SoftUSD: budget.USDOf(100 * money.PerUSD / 1000), HardUSD: budget.USDOf(200 * money.PerUSD / 1000)},
				{Name: "fleet-daily", Period: "day", SoftUSD: budget.USDOf(money.PerUSD)}, // never crossed
			}, budget.Limits{})
			require.NoError(t, err)
			now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
			engine := budget.NewEngine(memstore.New(), func() time.Time { return now })
			f, err := exporters.New(exporters.Config{
				Webhook: &webhook.Config{URL: hook.URL() + "/alerts", Format: format},
			}, zap.NewNop())
			require.NoError(t, err)
			require.True(t, f.WantsBudgets())

			teams := []string{"search", "ads"}
			var wg sync.WaitGroup
			var mu sync.Mutex
			rejected := 0
			work := make(chan int)
			for range 8 {
				wg.Go(func() {
					for i := range work {
						if request(t, engine, policies, f, i, teams[i%2]) {
							mu.Lock()
							rejected++
							mu.Unlock()
						}
					}
				})
			}
			for i := range 1000 {
				work <- i
			}
			close(work)
			wg.Wait()
			require.NoError(t, f.Shutdown(context.Background()))
			require.Positive(t, rejected, "the hard caps were reached")

			count := map[string]int{}
			for _, r := range hook.Requests() {
				if format == "slack" {
					var m map[string]string
					require.NoError(t, json.Unmarshal(r.Body, &m))
					event := webhook.SoftCapCrossed
					if strings.HasPrefix(m["text"], ":no_entry: ") {
						event = webhook.HardCapReached
					}
					count[event+" "+scopeIn(m["text"])]++
					continue
				}
				var p webhook.Payload
				require.NoError(t, json.Unmarshal(r.Body, &p))
				count[p.Event+" "+p.ScopeText]++
			}
			want := map[string]int{
				"soft_cap_crossed team=search": 1, "hard_cap_reached team=search": 1,
				"soft_cap_crossed team=ads": 1, "hard_cap_reached team=ads": 1,
			}
			assert.Equal(t, want, count)
			s := f.Stats()[0]
			assert.Equal(t, uint64(4), s.Sent)
			assert.Zero(t, s.DroppedFull+s.DroppedFailed+s.DroppedShutdown)
		})
	}
}

// request runs one request through the engine and reports it; it returns
// whether the request was rejected.
func request(t *testing.T, engine *budget.Engine, p *budget.Policies, f *exporters.Fanout, i int, team string) bool {
	ctx := context.Background()
	rep := sinktest.Report(i)
	rep.Scope["team"] = team
	scopes := p.Applicable(rep.Scope)
	estimate := money.Nano(rep.GetCostNanoUsd()) * 2
	res, rej, err := engine.Reserve(ctx, p, scopes, rep.GetServedModel(), estimate, fmt.Sprintf("r%d", i))
	if !assert.NoError(t, err) {
		return false
	}
	if rej != nil {
		rep.Decision = spendguardv1.Decision_DECISION_REJECTED
		rep.CostNanoUsd, rep.InputCostNanoUsd, rep.OutputCostNanoUsd = 0, 0, 0
	} else {
		assert.NoError(t, engine.Settle(ctx, res, money.Nano(rep.GetCostNanoUsd())))
	}
	states, err := engine.Status(ctx, scopes)
	assert.NoError(t, err)
	f.Report(&sink.Event{Report: rep, Budgets: processor.BudgetStates(states, rej)})
	return rej != nil
}

// scopeIn extracts "team=x" from a Slack alert's text.
func scopeIn(text string) string {
	for _, team := range []string{"search", "ads"} {
		if strings.Contains(text, " for team="+team+": ") {
			return "team=" + team
		}
	}
	return "?"
}
