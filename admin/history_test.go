package admin_test

import (
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/budget"
)

// monthly is tenant-monthly's state for tenant at now with committed
// spend.
func monthly(t *testing.T, g *rig, tenant string, now time.Time, committed string) budget.State {
	t.Helper()
	b, ok := g.p.Budget("tenant-monthly")
	require.True(t, ok)
	s, ok := b.ScopeOf(map[string]string{"tenant": tenant})
	require.True(t, ok)
	st := budget.State{Scope: s, Counter: budget.Counter{Committed: usd(committed)}, Level: "ok"}
	st.Start, st.ResetsAt = b.Window(now)
	hard, _ := b.Hard()
	st.Remaining = max(hard-st.Committed, 0)
	return st
}

func TestHistoryBurnRate(t *testing.T) {
	g := newRig(t, "")
	h := &admin.History{SampleEvery: time.Minute}
	t0 := time.Date(2026, 11, 15, 10, 0, 0, 0, time.UTC)
	at := func(m int) time.Time { return t0.Add(time.Duration(m) * time.Minute) }

	assert.False(t, h.Rate(monthly(t, g, "acme", t0, "100"), t0).OK, "no samples, no rate")
	h.Observe(at(0), []budget.State{monthly(t, g, "acme", at(0), "100")})
	h.Observe(at(0).Add(30*time.Second), []budget.State{monthly(t, g, "acme", at(0), "999")}) // within SampleEvery: ignored
	assert.False(t, h.Rate(monthly(t, g, "acme", at(0), "100"), at(0).Add(59*time.Second)).OK, "a window under SampleEvery gives no rate")

	for m := 1; m <= 90; m++ { // $1 a minute for 90 minutes
		h.Observe(at(m), []budget.State{monthly(t, g, "acme", at(m), usd100(m))})
	}
	b := h.Rate(monthly(t, g, "acme", at(90), usd100(90)), at(90))
	require.True(t, b.OK)
	assert.Equal(t, usd("60"), b.PerHour, "the last hour only")
	assert.Equal(t, time.Hour, b.Window)
	// 1000 - 190 = 810 left at 60/h: 13.5 hours.
	assert.Equal(t, at(90).Add(13*time.Hour+30*time.Minute), b.ExhaustsAt)

	// Spend falling (it cannot within a period, but a counter lost with a
	// Redis restart can) gives 0, not a negative rate.
	b = h.Rate(monthly(t, g, "acme", at(90), "0"), at(90))
	assert.True(t, b.OK)
	assert.Zero(t, b.PerHour)
	assert.True(t, b.ExhaustsAt.IsZero())

	// A projection past the reset is no exhaustion: $1/h with 899 left.
	slow := &admin.History{}
	slow.Observe(at(0), []budget.State{monthly(t, g, "acme", at(0), "100")})
	b = slow.Rate(monthly(t, g, "acme", at(60), "101"), at(60))
	require.True(t, b.OK)
	assert.Equal(t, usd("1"), b.PerHour)
	assert.True(t, b.ExhaustsAt.IsZero())
	assert.False(t, slow.Rate(monthly(t, g, "acme", at(61), "101"), at(61)).OK, "the only sample is older than an hour")

	// Scopes unseen for an hour are forgotten; MaxTracked bounds the rest.
	assert.Equal(t, 1, h.Tracked())
	h.Observe(at(200), []budget.State{monthly(t, g, "globex", at(200), "1")})
	assert.Equal(t, 1, h.Tracked(), "acme was forgotten")
	small := &admin.History{MaxTracked: 2}
	small.Observe(t0, []budget.State{monthly(t, g, "a", t0, "1"), monthly(t, g, "b", t0, "1"), monthly(t, g, "c", t0, "1")})
	assert.Equal(t, 2, small.Tracked())
}

func TestHistoryRateWithoutSamples(t *testing.T) {
	g := newRig(t, "")
	h := &admin.History{}
	now := time.Date(2026, 11, 1, 0, 20, 0, 0, time.UTC) // 01:20 in Berlin: the month began 80 minutes ago
	assert.False(t, h.Rate(monthly(t, g, "acme", now, "8"), now).OK)
	now = time.Date(2026, 10, 31, 23, 30, 0, 0, time.UTC) // 00:30 in Berlin: 30 minutes into the month
	b := h.Rate(monthly(t, g, "acme", now, "8"), now)
	require.True(t, b.OK, "a period that began within the hour needs no samples")
	assert.Equal(t, usd("16"), b.PerHour)
	assert.Equal(t, 30*time.Minute, b.Window)
}

// usd100 is 100 + m dollars.
func usd100(m int) string { return strconv.Itoa(100 + m) }
