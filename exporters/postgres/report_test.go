package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// at is a report starting at an absolute time.
func at(id, when string, tenant string, cost int64, d spendguardv1.Decision) *spendguardv1.CostReport {
	start, err := time.Parse(time.RFC3339, when)
	if err != nil {
		panic(err)
	}
	r := report(id, 0, map[string]string{"tenant": tenant, "use_case": "rag"})
	r.StartTime, r.EndTime = timestamppb.New(start), timestamppb.New(start.Add(time.Second))
	r.CostNanoUsd, r.Decision = cost, d
	if d == spendguardv1.Decision_DECISION_REJECTED {
		r.PromptTokens, r.CachedPromptTokens, r.CompletionTokens = 0, 0, 0
	}
	return r
}

const (
	allowed   = spendguardv1.Decision_DECISION_ALLOWED
	rejected  = spendguardv1.Decision_DECISION_REJECTED
	unmetered = spendguardv1.Decision_DECISION_UNMETERED
)

// TestSpendAcrossPeriodsAndTimeZones: a request belongs to the month (or
// day) of its start time in the report's zone, so the same rows add up
// differently in UTC, Berlin and Los Angeles, and every total still adds
// up to the whole.
func TestSpendAcrossPeriodsAndTimeZones(t *testing.T) {
	l := openLedger(t)
	ctx := context.Background()
	require.NoError(t, l.Export(ctx, events(
		at("a", "2026-10-31T22:30:00Z", "acme", 1_000, allowed),    // Oct everywhere (Berlin 23:30, LA 15:30)
		at("b", "2026-10-31T23:30:00Z", "acme", 20_000, allowed),   // Oct in UTC and LA, Nov 1 00:30 in Berlin
		at("c", "2026-11-01T06:00:00Z", "acme", 300_000, allowed),  // Nov in UTC and Berlin, Oct 31 23:00 PDT in LA
		at("d", "2026-11-01T09:30:00Z", "initech", 4_000, allowed), // Nov everywhere (LA 01:30 PST)
		at("e", "2026-11-01T09:40:00Z", "initech", 0, rejected),
		at("f", "2026-11-01T09:50:00Z", "initech", 50_000, unmetered),
		at("g", "2026-12-01T00:00:00Z", "acme", 7, allowed), // outside [from, to)
	)))
	from, to := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	month := func(tz string) map[string]int64 {
		loc, err := time.LoadLocation(tz)
		require.NoError(t, err)
		rows, err := l.Spend(ctx, SpendQuery{GroupBy: []string{"tenant"}, Period: "month", Location: loc, From: from, To: to})
		require.NoError(t, err)
		out := map[string]int64{}
		for _, r := range rows {
			assert.Equal(t, loc, r.Period.Location())
			assert.Equal(t, 1, r.Period.Day())
			assert.Zero(t, r.Period.Hour(), "periods start at local midnight")
			out[r.Period.Format("2006-01")+" "+r.Groups[0]] += int64(r.Cost)
		}
		return out
	}
	assert.Equal(t, map[string]int64{"2026-10 acme": 21_000, "2026-11 acme": 300_000, "2026-11 initech": 4_000}, month("UTC"))
	assert.Equal(t, map[string]int64{"2026-10 acme": 1_000, "2026-11 acme": 320_000, "2026-11 initech": 4_000}, month("Europe/Berlin"))
	assert.Equal(t, map[string]int64{"2026-10 acme": 321_000, "2026-11 initech": 4_000}, month("America/Los_Angeles"))

	// Days in Berlin, grouped by two keys; counts and tokens per group.
	berlin, _ := time.LoadLocation("Europe/Berlin")
	rows, err := l.Spend(ctx, SpendQuery{GroupBy: []string{"tenant", "use_case"}, Period: "day", Location: berlin, From: from, To: to})
	require.NoError(t, err)
	require.Len(t, rows, 3)
	assert.Equal(t, "2026-10-31", rows[0].Period.Format(time.DateOnly))
	assert.Equal(t, []string{"acme", "rag"}, rows[0].Groups)
	assert.Equal(t, SpendRow{Period: rows[2].Period, Groups: []string{"initech", "rag"}, Requests: 2, Rejected: 1,
		PromptTokens: 2000, CachedPromptTokens: 400, CompletionTokens: 200, Cost: 4_000, Unmetered: 50_000}, rows[2])

	// Total, by a built-in key and a dimension nobody has.
	rows, err = l.Spend(ctx, SpendQuery{GroupBy: []string{"decision", "team"}, Period: "total", From: from, To: to})
	require.NoError(t, err)
	got := map[string]money.Nano{}
	for _, r := range rows {
		assert.True(t, r.Period.IsZero())
		assert.Equal(t, "", r.Groups[1])
		got[r.Groups[0]] = r.Cost + r.Unmetered
	}
	assert.Equal(t, map[string]money.Nano{"allowed": 325_000, "rejected": 0, "unmetered": 50_000}, got)
}

func TestSpendQueryValidate(t *testing.T) {
	from := time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC)
	err := SpendQuery{GroupBy: []string{"tenant", "tenant", ""}, Period: "fortnight", From: from, To: from}.Validate()
	require.Error(t, err)
	for _, want := range []string{`period "fortnight"`, `"tenant" twice`, "empty key", "is not before"} {
		assert.Contains(t, err.Error(), want)
	}
}

// TestReportOnAnEmptyDatabase: the report says what is missing.
func TestReportOnAnEmptyDatabase(t *testing.T) {
	l := openLedger(t)
	_, err := l.pool.Exec(context.Background(), "DROP TABLE spendguard_ledger")
	require.NoError(t, err)
	_, err = l.Spend(context.Background(), SpendQuery{Period: "total", From: time.Unix(0, 0), To: time.Now()})
	assert.ErrorIs(t, err, ErrNoLedger)
}
