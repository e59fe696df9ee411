package webhook

import (
	"context"
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/httpsink"
)

// tstate is state() of a budget with a 10 USD hard cap, no soft cap, and
// thresholds at 50% and 80%.
func tstate(start time.Time, used string) sink.BudgetState {
	s := state(start, used)
	s.HasSoft, s.Soft = false, 0
	s.Hard = 10 * money.PerUSD
	s.Thresholds = []float64{0.5, 0.8}
	return s
}

// crossings names the alerts as "event fraction".
func crossings(alerts []Alert) []string {
	out := []string{}
	for _, a := range alerts {
		if a.Event == ThresholdCrossed {
			out = append(out, a.Event+" "+percent(a.Threshold)+"%")
		} else {
			out = append(out, a.Event)
		}
	}
	return out
}

func TestDetectThresholdsOncePerScopePerPeriod(t *testing.T) {
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	assert.Empty(t, s.Detect([]sink.BudgetState{tstate(day1, "4.999999999")}))
	assert.Equal(t, []string{"threshold_crossed 50%"}, crossings(s.Detect([]sink.BudgetState{tstate(day1, "5")})))
	assert.Empty(t, s.Detect([]sink.BudgetState{tstate(day1, "7.99")}))
	assert.Equal(t, []string{"threshold_crossed 80%"}, crossings(s.Detect([]sink.BudgetState{tstate(day1, "8")})))
	assert.Empty(t, s.Detect([]sink.BudgetState{tstate(day1, "9"), tstate(day1, "5")}), "both sent in this period")
	assert.Empty(t, s.Detect([]sink.BudgetState{tstate(day1.AddDate(0, 0, -1), "9")}), "a late state of the previous day")

	day2 := day1.AddDate(0, 0, 1)
	assert.Empty(t, s.Detect([]sink.BudgetState{tstate(day2, "1")}))
	assert.Equal(t, []string{"threshold_crossed 50%"}, crossings(s.Detect([]sink.BudgetState{tstate(day2, "6")})), "a new day alerts afresh")
	assert.Equal(t, []string{"threshold_crossed 80%"}, crossings(s.Detect([]sink.BudgetState{tstate(day2, "8.5")})))

	other := tstate(day1, "5")
	other.Key = "team-daily|day|team=ads"
	assert.Equal(t, []string{"threshold_crossed 50%"}, crossings(s.Detect([]sink.BudgetState{other})), "another scope has its own")
}

func TestDetectOneRequestOverSeveralThresholds(t *testing.T) {
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	assert.Equal(t, []string{"threshold_crossed 50%", "threshold_crossed 80%"},
		crossings(s.Detect([]sink.BudgetState{tstate(day1, "8.5")})), "both, ascending")

	// With the caps: in the order of the amounts, hard last.
	s = newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	st := tstate(day1, "10")
	st.Soft, st.HasSoft = 6*money.PerUSD, true
	st.Thresholds = []float64{0.5, 0.6, 0.95, 1}
	assert.Equal(t, []string{"threshold_crossed 50%", "threshold_crossed 60%", "soft_cap_crossed", "threshold_crossed 95%",
		"threshold_crossed 100%", "hard_cap_reached"}, crossings(s.Detect([]sink.BudgetState{st})))
}

func TestDetectThresholdsNeedTheirEvent(t *testing.T) {
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook", Events: []string{HardCapReached}})
	assert.Empty(t, s.Detect([]sink.BudgetState{tstate(day1, "9")}), "threshold_crossed is not listed")
	s = newSender(t, Config{URL: "http://127.0.0.1:1/hook", Events: []string{ThresholdCrossed}})
	assert.Equal(t, []string{"threshold_crossed 50%", "threshold_crossed 80%"}, crossings(s.Detect([]sink.BudgetState{tstate(day1, "10")})),
		"hard_cap_reached is not listed")
	s = newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	st := tstate(day1, "9")
	st.Thresholds = nil
	assert.Empty(t, s.Detect([]sink.BudgetState{st}), "no thresholds configured")
}

func TestDetectRollingThresholdsRearmBelowNinetyPercentOfTheirAmount(t *testing.T) {
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	roll := func(used string, bucket int) sink.BudgetState {
		st := tstate(day1.Add(time.Duration(bucket)*time.Minute), used)
		st.Rolling = true
		return st
	}
	assert.Equal(t, []string{"threshold_crossed 50%", "threshold_crossed 80%"}, crossings(s.Detect([]sink.BudgetState{roll("8", 0)})))
	assert.Empty(t, s.Detect([]sink.BudgetState{roll("8.1", 1)}), "the window moved, spend is still over")
	assert.Empty(t, s.Detect([]sink.BudgetState{roll("7.2", 2), roll("8", 3)}), "below 8 but not below 90% of it: not re-armed")
	assert.Equal(t, []string{"threshold_crossed 80%"}, crossings(s.Detect([]sink.BudgetState{roll("7.19", 4), roll("8", 5)})),
		"80% re-armed below 7.20; 50% did not (4.50)")
	assert.Empty(t, s.Detect([]sink.BudgetState{roll("4.5", 6), roll("5", 7)}), "50% not re-armed at 4.50")
	assert.Empty(t, s.Detect([]sink.BudgetState{roll("4.49", 8)}), "both re-armed")
	assert.Equal(t, []string{"threshold_crossed 50%"}, crossings(s.Detect([]sink.BudgetState{roll("5", 9)})))
}

func TestThresholdAmountIsExact(t *testing.T) {
	st := tstate(day1, "0")
	assert.Equal(t, 8*money.PerUSD, st.ThresholdAmount(0.8))
	st.Hard = 3 // nano-USD: 0.5 × 3 = 1.5, reached at 2
	assert.Equal(t, money.Nano(2), st.ThresholdAmount(0.5))
	st.Hard = money.Nano(1 << 62)
	assert.Equal(t, st.Hard, st.ThresholdAmount(1), "no overflow")
	assert.Equal(t, money.Nano(1<<62/1_000_000*999_999+1<<62%1_000_000*999_999/1_000_000+1), st.ThresholdAmount(0.999999))
	st.HasHard = false
	assert.Zero(t, st.ThresholdAmount(0.5))
}

func TestSendPostsThresholdAlerts(t *testing.T) {
	hook := httpsink.New(nil)
	defer hook.Close()
	st := state(day1, "8.004")
	st.Budget, st.Scope, st.ScopeText = "tenant-monthly", map[string]string{"tenant": "acme"}, "tenant=acme"
	st.Key, st.PeriodWord = "tenant-monthly|month|tenant=acme", "this month"
	st.Hard, st.HasSoft, st.Soft = 10*money.PerUSD, false, 0
	st.Thresholds = []float64{0.5, 0.8}
	a := Alert{Event: ThresholdCrossed, State: st, Threshold: 0.8, At: day1.Add(time.Hour)}

	require.NoError(t, newSender(t, Config{URL: hook.URL() + "/alerts"}).Send(context.Background(), []Alert{a}))
	require.NoError(t, newSender(t, Config{URL: hook.URL() + "/slack", Format: "slack"}).Send(context.Background(), []Alert{a}))
	reqs := hook.Requests()
	require.Len(t, reqs, 2)
	const message = "spendguard: tenant=acme has used 80% of budget tenant-monthly (8.00 of 10.00 USD) this month; resets 2026-11-26T00:00:00Z"
	assert.JSONEq(t, `{"event": "threshold_crossed", "threshold": 0.8, "budget": "tenant-monthly", "scope": {"tenant": "acme"},
		"scope_text": "tenant=acme", "period_start": "2026-11-25T00:00:00Z", "resets_at": "2026-11-26T00:00:00Z",
		"spent_usd": 8.004000, "reserved_usd": 0.000000, "hard_usd": 10.000000, "remaining_usd": 1.996000,
		"blocked": false, "at": "2026-11-25T01:00:00Z", "message": "`+message+`"}`, string(reqs[0].Body))
	assert.JSONEq(t, `{"text": ":bell: `+message+`"}`, string(reqs[1].Body))
	assert.Contains(t, string(reqs[0].Body), `{"event":"threshold_crossed","threshold":0.8,"budget":"tenant-monthly",`,
		"the fraction as written, right after the event")
	assert.Contains(t, string(reqs[0].Body), `"spent_usd":8.004000,"reserved_usd":0.000000,"hard_usd":10.000000,"remaining_usd":1.996000,`)

	var p map[string]any
	b, err := Body(Alert{Event: SoftCapCrossed, State: state(day1, "41"), At: day1}, "json")
	require.NoError(t, err)
	require.NoError(t, json.Unmarshal(b, &p))
	assert.NotContains(t, p, "threshold", "only threshold_crossed carries it")

	all := a
	all.State.ScopeText, all.Threshold = "all", 0.995
	assert.Equal(t, "spendguard: all traffic has used 99.5% of budget tenant-monthly (8.00 of 10.00 USD) this month; resets 2026-11-26T00:00:00Z", Message(all))
}

// Thresholds cost no allocation when they do not alert: a state with
// thresholds (all already sent) allocates what one without them does.
func TestDetectThresholdsAllocateNothingWhenQuiet(t *testing.T) {
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	with := []sink.BudgetState{tstate(day1, "9")}
	without := []sink.BudgetState{tstate(day1, "9")}
	without[0].Thresholds, without[0].Key = nil, "other"
	require.Len(t, s.Detect(with), 2)
	base := testing.AllocsPerRun(100, func() { s.Detect(without) })
	assert.Equal(t, base, testing.AllocsPerRun(100, func() { s.Detect(with) }))
}
