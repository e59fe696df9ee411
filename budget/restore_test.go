package budget

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
)

const restoreBudgets = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    timezone: Europe/Berlin
    hard_usd: 1000
  - name: team-hourly-kolkata
    match: {team: "*"}
    period: hour
    timezone: Asia/Kolkata
    hard_usd: 100
  - name: user-guard
    match: {user: "*"}
    rolling: 10m
    hard_usd: 5
  - name: model-total
    match: {model: "*"}
    period: total
    hard_usd: 100
`

// TestCurrentItemsRebuildTheCounters: spend recorded over two months and
// replayed into an empty store with CurrentItems + RestoreCommitted gives
// exactly the counters the live store holds, for calendar periods in two
// time zones (one with a half-hour offset), a rolling window and a total.
func TestCurrentItemsRebuildTheCounters(t *testing.T) {
	f := newFixture(t, restoreBudgets, "2026-10-31T22:50:00Z") // 23:50 in Berlin, still October
	type spent struct {
		dims   map[string]string
		at     time.Time
		amount money.Nano
	}
	var record []spent
	step := func(d time.Duration, dims map[string]string, amount string) {
		f.clock.add(d)
		dims = withModel(dims, "m1")
		f.spend(t, dims, "m1", usd(amount))
		record = append(record, spent{dims, f.clock.now(), usd(amount)})
	}
	bob := map[string]string{"tenant": "acme", "team": "search", "user": "bob"}
	eve := map[string]string{"tenant": "initech", "team": "ops", "user": "eve"}
	step(0, bob, "1")                // October in Berlin: not this month's
	step(5*time.Minute, bob, "0.25") // 23:55 Berlin, October
	step(10*time.Minute, eve, "2")   // 00:05 Berlin, November
	step(40*time.Minute, bob, "0.5") // 23:45Z: the 05:00+05:30 Kolkata hour started 23:30Z
	step(20*time.Minute, eve, "0.125")
	step(3*time.Minute, bob, "0.0625")
	now := f.clock.now()

	rebuilt := NewTestStore()
	sums := map[string]money.Nano{}
	items := map[string]Item{}
	since, all := f.p.RecoverySince(now)
	require.True(t, all, "a total budget needs every record")
	assert.True(t, since.IsZero())
	for _, r := range record {
		for _, it := range f.p.CurrentItems(r.dims, r.at, now) {
			sums[it.Key] += r.amount
			items[it.Key] = it
		}
	}
	for k, it := range items {
		rebuilt.RestoreCommitted(it, sums[k])
	}
	for _, dims := range []map[string]string{bob, eve} {
		scopes := f.p.Applicable(withModel(dims, "m1"))
		want, err := f.eng.Status(context.Background(), scopes)
		require.NoError(t, err)
		got, err := NewEngine(rebuilt, f.clock.now).Status(context.Background(), scopes)
		require.NoError(t, err)
		for i := range want {
			assert.Equal(t, want[i].Counter, got[i].Counter, "%s %s", want[i].Scope.Budget.Name(), want[i].Scope)
		}
	}
	// What each budget holds, to be sure the record was not just empty.
	st, err := f.eng.Status(context.Background(), f.p.Applicable(withModel(bob, "m1")))
	require.NoError(t, err)
	assert.Equal(t, usd("0.5625"), st[0].Committed, "bob's tenant this month (Berlin): 0.5 + 0.0625")
	assert.Equal(t, usd("0.5625"), st[1].Committed, "team search this Kolkata hour: 05:00 IST is 23:30Z")
	assert.Equal(t, usd("0.0625"), st[2].Committed, "bob in the last 10 minutes")
	assert.Equal(t, usd("3.9375"), st[3].Committed, "model total")
}

func withModel(dims map[string]string, model string) map[string]string {
	out := map[string]string{"model": model}
	for k, v := range dims {
		out[k] = v
	}
	return out
}

func TestRecoverySince(t *testing.T) {
	p, err := compileYAML(t, `
budgets:
  - {name: d, period: day, timezone: America/New_York, hard_usd: 1}
  - {name: w, period: week, hard_usd: 1}
  - {name: r, rolling: 2h, hard_usd: 1}
`)
	require.NoError(t, err)
	now := mustTime(t, "2026-11-25T10:30:00Z") // a Wednesday
	since, all := p.RecoverySince(now)
	assert.False(t, all)
	assert.Equal(t, mustTime(t, "2026-11-23T00:00:00Z"), since.UTC(), "the week's Monday")
	rs, ok := p.RollingSince(now)
	require.True(t, ok)
	assert.Equal(t, mustTime(t, "2026-11-25T08:24:00Z"), rs.UTC(), "two hours back, to the 12-minute bucket")

	none, err := compileYAML(t, "budgets: []\n")
	require.NoError(t, err)
	since, all = none.RecoverySince(now)
	assert.Equal(t, now, since)
	assert.False(t, all)
	_, ok = none.RollingSince(now)
	assert.False(t, ok)
}
