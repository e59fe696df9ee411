package postgres

import (
	"context"
	"fmt"
	"maps"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"
	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/pgtest"
)

const recoverBudgets = `
- {name: tenant-monthly, match: {tenant: "*"}, period: month, timezone: Europe/Berlin, hard_usd: 1000}
- {name: team-hourly, match: {team: "*"}, period: hour, timezone: Asia/Kathmandu, hard_usd: 1000}
- {name: user-guard, match: {user: "*"}, rolling: 10m, hard_usd: 1000}
- {name: model-total, match: {model: "*"}, period: total, hard_usd: 1000}
`

func policies(t *testing.T, src string) *budget.Policies {
	t.Helper()
	var cfgs []budget.Config
	require.NoError(t, yaml.Unmarshal([]byte(src), &cfgs))
	p, err := budget.Compile(cfgs, budget.Limits{})
	require.NoError(t, err)
	return p
}

// TestRecoverRebuildsTheCounters: requests settled over six weeks by a
// live engine, and written to the ledger, are rebuilt into an empty
// memory store with the same counters, for calendar periods (one zone at
// +05:45), a rolling window, a total and a downgraded model; rejected and
// unmetered requests count nothing.
func TestRecoverRebuildsTheCounters(t *testing.T) {
	l := openLedger(t)
	ctx := context.Background()
	p := policies(t, recoverBudgets)
	clock := time.Date(2026, 10, 20, 8, 0, 0, 0, time.UTC)
	live := memstore.New()
	eng := budget.NewEngine(live, func() time.Time { return clock })

	users := []string{"bob", "eve", "mallory"}
	var reps []*spendguardv1.CostReport
	for i := range 400 {
		// Irregular steps: 2h57m13s, then a burst of seconds near the end.
		step := 2*time.Hour + 57*time.Minute + 13*time.Second
		if i > 380 {
			step = time.Duration(7+i%11) * time.Second
		}
		clock = clock.Add(step)
		scope := map[string]string{"tenant": []string{"acme", "initech"}[i%2], "team": []string{"search", "ops", "ml"}[i%3], "user": users[i%3]}
		served := []string{"m-large", "m-small"}[i%2]
		d := spendguardv1.Decision_DECISION_ALLOWED
		switch i % 7 {
		case 3:
			d = spendguardv1.Decision_DECISION_DOWNGRADED
			served = "m-tiny"
		case 5:
			d = spendguardv1.Decision_DECISION_REJECTED
		case 6:
			d = spendguardv1.Decision_DECISION_UNMETERED
		}
		cost := money.Nano(1_000 + i*37)
		dims := maps.Clone(scope)
		dims["model"] = served
		if d == spendguardv1.Decision_DECISION_ALLOWED || d == spendguardv1.Decision_DECISION_DOWNGRADED {
			res, rej, err := eng.Reserve(ctx, p, p.Applicable(dims), served, cost, fmt.Sprint("r", i))
			require.NoError(t, err)
			require.Nil(t, rej)
			require.NoError(t, eng.Settle(ctx, res, cost))
		}
		r := report(fmt.Sprint("req-", i), 0, scope)
		r.StartTime, r.EndTime = timestamppb.New(clock), timestamppb.New(clock.Add(time.Second))
		r.RequestedModel, r.ServedModel, r.Decision, r.CostNanoUsd = "m-large", served, d, int64(cost)
		if d == spendguardv1.Decision_DECISION_REJECTED {
			r.CostNanoUsd = 0
		}
		reps = append(reps, r)
	}
	for i := 0; i < len(reps); i += 64 {
		require.NoError(t, l.Export(ctx, events(reps[i:min(i+64, len(reps))]...)))
	}

	rebuilt := memstore.New()
	st, err := l.Recover(ctx, p, rebuilt, clock)
	require.NoError(t, err)
	assert.True(t, st.Since.IsZero(), "a total budget reads the whole ledger")
	assert.Positive(t, st.Counters)

	after := budget.NewEngine(rebuilt, func() time.Time { return clock })
	checked := 0
	for _, tenant := range []string{"acme", "initech"} {
		for _, team := range []string{"search", "ops", "ml"} {
			for _, user := range users {
				for _, model := range []string{"m-large", "m-small", "m-tiny"} {
					scopes := p.Applicable(map[string]string{"tenant": tenant, "team": team, "user": user, "model": model})
					want, err := eng.Status(ctx, scopes)
					require.NoError(t, err)
					got, err := after.Status(ctx, scopes)
					require.NoError(t, err)
					for i := range want {
						assert.Equal(t, want[i].Committed, got[i].Committed, "%s %s", want[i].Scope.Budget.Name(), want[i].Scope)
						if want[i].Committed > 0 {
							checked++
						}
					}
				}
			}
		}
	}
	assert.Greater(t, checked, 20, "the comparison saw real spend")

	// Recovering again (or over a snapshot that holds the same spend)
	// changes nothing: counters are raised, never added to.
	_, err = l.Recover(ctx, p, rebuilt, clock)
	require.NoError(t, err)
	scopes := p.Applicable(map[string]string{"tenant": "acme", "team": "search", "user": "bob", "model": "m-large"})
	want, _ := eng.Status(ctx, scopes)
	got, _ := after.Status(ctx, scopes)
	for i := range want {
		assert.Equal(t, want[i].Committed, got[i].Committed)
	}
}

// TestRecoverReadsOnlyCurrentPeriods: without a total budget only rows
// since the oldest current period are read.
func TestRecoverReadsOnlyCurrentPeriods(t *testing.T) {
	l := openLedger(t)
	ctx := context.Background()
	p := policies(t, `[{name: d, match: {tenant: "*"}, period: day, hard_usd: 1}]`)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	old := at("old", "2026-11-24T23:59:59Z", "acme", 5, allowed)
	cur := at("cur", "2026-11-25T00:00:00Z", "acme", 7, allowed)
	require.NoError(t, l.Export(ctx, events(old, cur)))
	m := memstore.New()
	st, err := l.Recover(ctx, p, m, now)
	require.NoError(t, err)
	assert.Equal(t, 1, st.Groups)
	assert.Equal(t, 1, st.Counters)
	states, err := budget.NewEngine(m, func() time.Time { return now }).Status(ctx, p.Applicable(map[string]string{"tenant": "acme"}))
	require.NoError(t, err)
	assert.Equal(t, money.Nano(7), states[0].Committed)
}

// TestSaturatedRowsAddUpToTheLimit: two rows charged the saturated
// maximum (an absurd usage, docs/store.md) sum past int64 in PostgreSQL;
// recovery and the spend report clamp the sum at the limit, as the stores
// do, instead of failing with "bigint out of range".
func TestSaturatedRowsAddUpToTheLimit(t *testing.T) {
	l := openLedger(t)
	ctx := context.Background()
	p := policies(t, `[{name: d, match: {tenant: "*"}, period: day, hard_usd: 1}]`)
	now := time.Date(2026, 11, 25, 12, 0, 0, 0, time.UTC)
	const maxNano = int64(math.MaxInt64)
	one := at("one", "2026-11-25T01:00:00Z", "acme", maxNano, allowed)
	two := at("two", "2026-11-25T02:00:00Z", "acme", maxNano, allowed)
	one.PromptTokens, two.PromptTokens = maxNano, maxNano
	require.NoError(t, l.Export(ctx, events(one, two)))

	m := memstore.New()
	_, err := l.Recover(ctx, p, m, now)
	require.NoError(t, err)
	states, err := budget.NewEngine(m, func() time.Time { return now }).Status(ctx, p.Applicable(map[string]string{"tenant": "acme"}))
	require.NoError(t, err)
	assert.Equal(t, money.Nano(maxNano), states[0].Committed)

	rows, err := l.Spend(ctx, SpendQuery{GroupBy: []string{"tenant"}, Period: "total", From: now.Add(-24 * time.Hour), To: now})
	require.NoError(t, err)
	require.Len(t, rows, 1)
	assert.Equal(t, money.Nano(maxNano), rows[0].Cost)
	assert.Equal(t, maxNano, rows[0].PromptTokens)
}

// InstanceSpend sums one instance's rows only, per counter, as Recover
// places them.
func TestInstanceSpendCountsOneInstancesRows(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ctx := context.Background()
	a, err := Open(Config{DSN: dsn, Instance: "a"}, nil, nil)
	require.NoError(t, err)
	defer a.Close(ctx)
	b, err := Open(Config{DSN: dsn, Instance: "b"}, nil, nil)
	require.NoError(t, err)
	defer b.Close(ctx)
	p := policies(t, `
- {name: tenant-daily, match: {tenant: "*"}, period: day, hard_usd: 1000}
`)
	now := t0.Add(time.Hour)
	require.NoError(t, a.Export(ctx, events(report("a1", 0, map[string]string{"tenant": "acme"}), report("a2", time.Minute, map[string]string{"tenant": "acme"}))))
	require.NoError(t, b.Export(ctx, events(report("b1", 0, map[string]string{"tenant": "acme"}))))

	got, err := a.InstanceSpend(ctx, p, "a", now)
	require.NoError(t, err)
	require.Len(t, got, 1)
	assert.EqualValues(t, 2*620000, got[0].Spent, "a's two rows, not b's")
	assert.Contains(t, got[0].Item.Key, "acme")
	none, err := a.InstanceSpend(ctx, p, "nobody", now)
	require.NoError(t, err)
	assert.Empty(t, none)
}
