package webhook

import (
	"context"
	"encoding/json"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/httpsink"
)

var day1 = time.Date(2026, 11, 25, 0, 0, 0, 0, time.UTC)

// state is team=search in the period starting at start, with used spent.
func state(start time.Time, used string) sink.BudgetState {
	n, err := money.ParseUSD(used)
	if err != nil {
		panic(err)
	}
	return sink.BudgetState{
		Budget: "team-daily", Scope: map[string]string{"team": "search"}, ScopeText: "team=search",
		Key: "team-daily|day|team=search", PeriodWord: "today", PeriodStart: start, ResetsAt: start.AddDate(0, 0, 1),
		Committed: n, Soft: 40 * money.PerUSD, Hard: 50 * money.PerUSD, HasSoft: true, HasHard: true,
	}
}

func events(alerts []Alert) []string {
	out := []string{}
	for _, a := range alerts {
		out = append(out, a.Event)
	}
	return out
}

func newSender(t *testing.T, cfg Config) *Sender {
	t.Helper()
	require.Empty(t, cfg.Validate())
	s := New(cfg)
	s.now = func() time.Time { return day1.Add(12 * time.Hour) }
	return s
}

func TestDetectAlertsOncePerScopePerPeriod(t *testing.T) {
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	assert.Empty(t, s.Detect([]sink.BudgetState{state(day1, "39.99")}))
	assert.Equal(t, []string{SoftCapCrossed}, events(s.Detect([]sink.BudgetState{state(day1, "40")})))
	assert.Empty(t, s.Detect([]sink.BudgetState{state(day1, "45")}))
	assert.Equal(t, []string{HardCapReached}, events(s.Detect([]sink.BudgetState{state(day1, "50")})))
	assert.Empty(t, s.Detect([]sink.BudgetState{state(day1, "51"), state(day1, "40")}))

	day0 := day1.AddDate(0, 0, -1)
	assert.Empty(t, s.Detect([]sink.BudgetState{state(day0, "50")}), "a late state of the previous day")

	day2 := day1.AddDate(0, 0, 1)
	assert.Empty(t, s.Detect([]sink.BudgetState{state(day2, "1")}))
	assert.Equal(t, []string{SoftCapCrossed, HardCapReached}, events(s.Detect([]sink.BudgetState{state(day2, "50")})),
		"a new day alerts afresh, soft first when both are crossed at once")
}

func TestDetectBlockedRequestMeansHardCapReached(t *testing.T) {
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook", Events: []string{HardCapReached}})
	st := state(day1, "49.50")
	assert.Empty(t, s.Detect([]sink.BudgetState{st}), "soft_cap_crossed is not configured")
	st.Blocked = true
	alerts := s.Detect([]sink.BudgetState{st})
	require.Len(t, alerts, 1)
	assert.Equal(t, HardCapReached, alerts[0].Event)
	assert.Equal(t, "spendguard: budget team-daily refused a request for team=search: 49.50 of 50.00 USD today, too little left for it; resets 2026-11-26T00:00:00Z",
		Message(alerts[0]))
}

func TestDetectRollingWindowsRearmBelowNinetyPercent(t *testing.T) {
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	roll := func(used string, bucket int) sink.BudgetState {
		st := state(day1.Add(time.Duration(bucket)*time.Minute), used)
		st.Rolling = true
		return st
	}
	assert.Equal(t, []string{SoftCapCrossed}, events(s.Detect([]sink.BudgetState{roll("41", 0)})))
	assert.Empty(t, s.Detect([]sink.BudgetState{roll("42", 1)}), "the window moved, spend is still over")
	assert.Empty(t, s.Detect([]sink.BudgetState{roll("37", 2)}), "below the cap but above 90% of it")
	assert.Empty(t, s.Detect([]sink.BudgetState{roll("40", 3)}))
	assert.Empty(t, s.Detect([]sink.BudgetState{roll("35.99", 4)}), "re-armed")
	assert.Equal(t, []string{SoftCapCrossed}, events(s.Detect([]sink.BudgetState{roll("40", 5)})))
}

func TestDetectForgetsEndedPeriodsWhenFull(t *testing.T) {
	defer func(n int) { maxTracked = n }(maxTracked)
	maxTracked = 1000
	s := newSender(t, Config{URL: "http://127.0.0.1:1/hook"})
	old := day1.AddDate(0, 0, -2)
	for i := range maxTracked {
		st := state(old, "41")
		st.Key = strconv.Itoa(i)
		s.Detect([]sink.BudgetState{st})
	}
	require.Equal(t, maxTracked, len(s.marks))
	s.Detect([]sink.BudgetState{state(day1, "41")})
	assert.Equal(t, 1, len(s.marks), "every mark of an ended period was dropped")

	for i := range maxTracked + 10 {
		st := state(day1, "41")
		st.Key = "now-" + strconv.Itoa(i)
		s.Detect([]sink.BudgetState{st})
	}
	assert.LessOrEqual(t, len(s.marks), maxTracked, "live periods are evicted too when there is no other room")
}

func TestSendPostsJSONAndSlackBodies(t *testing.T) {
	hook := httpsink.New(nil)
	defer hook.Close()
	st := state(day1, "40.123456789")
	st.Reserved = money.PerUSD
	a := Alert{Event: SoftCapCrossed, State: st, At: day1.Add(time.Hour)}

	s := newSender(t, Config{URL: hook.URL() + "/alerts", Headers: map[string]string{"X-Token": "t"}})
	require.NoError(t, s.Send(context.Background(), []Alert{a}))
	slack := newSender(t, Config{URL: hook.URL() + "/slack", Format: "slack"})
	require.NoError(t, slack.Send(context.Background(), []Alert{a}))

	reqs := hook.Requests()
	require.Len(t, reqs, 2)
	assert.Equal(t, "t", reqs[0].Header.Get("X-Token"))
	var p map[string]any
	require.NoError(t, json.Unmarshal(reqs[0].Body, &p))
	assert.Equal(t, map[string]any{
		"event": "soft_cap_crossed", "budget": "team-daily", "scope": map[string]any{"team": "search"}, "scope_text": "team=search",
		"period_start": "2026-11-25T00:00:00Z", "resets_at": "2026-11-26T00:00:00Z",
		"spent_usd": 40.123457, "reserved_usd": 1.0, "soft_usd": 40.0, "hard_usd": 50.0, "remaining_usd": 8.876543,
		"blocked": false, "at": "2026-11-25T01:00:00Z",
		"message": "spendguard: budget team-daily passed its soft cap for team=search: 41.12 of 40.00 USD today (hard cap 50.00); resets 2026-11-26T00:00:00Z",
	}, p)
	var sl map[string]string
	require.NoError(t, json.Unmarshal(reqs[1].Body, &sl))
	assert.Equal(t, ":warning: "+p["message"].(string), sl["text"])

	hook.SetStatus(http.StatusInternalServerError)
	err := s.Send(context.Background(), []Alert{a})
	require.Error(t, err)
	assert.False(t, sink.IsPermanent(err), "a 500 is retried")
	hook.SetStatus(http.StatusNotFound)
	assert.True(t, sink.IsPermanent(s.Send(context.Background(), []Alert{a})))
}

func TestConfigValidation(t *testing.T) {
	errs := Config{Format: "teams", Events: []string{"soft_cap_crossed", "soft_cap_crossed", "x"}}.Validate()
	fields := []string{}
	for _, e := range errs {
		fields = append(fields, e.Field+": "+e.Msg)
	}
	assert.Equal(t, []string{
		"url: is required (an http or https URL) (is its environment variable set?)",
		`format: "teams" is neither slack nor json`,
		`events: "soft_cap_crossed" is listed twice`,
		`events: "x" is not one of soft_cap_crossed, hard_cap_reached, threshold_crossed`,
	}, fields)
	assert.NotEmpty(t, Config{URL: "https://x", Events: []string{}}.Validate())
}
