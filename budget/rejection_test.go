package budget

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// specMessage is the 402 message of behaviour.md, character for character.
const specMessage = "budget tenant-monthly exhausted for tenant=acme: spent 1000.02 of 1000.00 USD this month; resets 2026-12-01T00:00:00+01:00"

func TestRejectionFromEngineMatchesSpec(t *testing.T) {
	f := newFixture(t, `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    timezone: Europe/Berlin
    hard_usd: 1000
`, "2026-11-30T23:59:58.5+01:00")
	dims := map[string]string{"tenant": "acme", "team": "search"}
	f.commit(t, dims, usd("1000.02"))
	rej, err := f.eng.Exhausted(context.Background(), f.p.Applicable(dims), "")
	require.NoError(t, err)
	require.NotNil(t, rej)
	assert.Equal(t, specMessage, rej.Message())
	assert.Equal(t, "tenant-monthly", rej.Budget)
	assert.Equal(t, "tenant=acme", rej.Scope)
	secs, ok := rej.RetryAfter(f.clock.now())
	assert.True(t, ok)
	assert.Equal(t, 2, secs)
}

func TestRejectionMessage(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	require.NoError(t, err)
	base := Rejection{
		Budget: "tenant-monthly", Scope: "tenant=acme",
		Spent: usd("1000.02"), Hard: usd("1000"), PeriodWord: "this month",
		ResetsAt: time.Date(2026, 12, 1, 0, 0, 0, 0, berlin),
	}
	tests := []struct {
		name string
		edit func(r *Rejection)
		want string
	}{
		{"spec example", func(*Rejection) {}, specMessage},
		{"reserved counts as spent", func(r *Rejection) { r.Spent, r.Reserved = usd("990"), usd("10.004") },
			"budget tenant-monthly exhausted for tenant=acme: spent 1000.00 of 1000.00 USD this month; resets 2026-12-01T00:00:00+01:00"},
		{"rounds half away from zero", func(r *Rejection) { r.Spent = usd("12.345") },
			"budget tenant-monthly exhausted for tenant=acme: spent 12.35 of 1000.00 USD this month; resets 2026-12-01T00:00:00+01:00"},
		{"utc reset", func(r *Rejection) {
			r.Budget, r.Scope, r.PeriodWord = "fleet-daily", "all", "today"
			r.ResetsAt = time.Date(2026, 11, 16, 0, 0, 0, 0, time.UTC)
		}, "budget fleet-daily exhausted for all: spent 1000.02 of 1000.00 USD today; resets 2026-11-16T00:00:00Z"},
		{"room left, but not for this request", func(r *Rejection) { r.Spent, r.Requested = usd("999.5"), usd("0.8") },
			"budget tenant-monthly cannot cover this request for tenant=acme: spent 999.50 of 1000.00 USD this month and the request may cost up to 0.80; resets 2026-12-01T00:00:00+01:00"},
		{"small caps get 6 decimals", func(r *Rejection) { r.Spent, r.Hard = usd("0.000412"), usd("0.0005") },
			"budget tenant-monthly exhausted for tenant=acme: spent 0.000412 of 0.000500 USD this month; resets 2026-12-01T00:00:00+01:00"},
		{"the request alone exceeds the cap: no reset, and why", func(r *Rejection) { r.Spent, r.Requested = 0, usd("1200") },
			"budget tenant-monthly can never cover this request for tenant=acme: the request alone may cost up to 1200.00 USD, more than the budget's whole cap of 1000.00 USD this month; lower max_tokens or send a smaller prompt"},
		{"a request of exactly the cap could pass on an empty counter", func(r *Rejection) { r.Spent, r.Requested = usd("1"), usd("1000") },
			"budget tenant-monthly cannot cover this request for tenant=acme: spent 1.00 of 1000.00 USD this month and the request may cost up to 1000.00; resets 2026-12-01T00:00:00+01:00"},
		{"total has no reset", func(r *Rejection) { r.PeriodWord, r.ResetsAt = "in total", time.Time{} },
			"budget tenant-monthly exhausted for tenant=acme: spent 1000.02 of 1000.00 USD in total"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := base
			tt.edit(&r)
			assert.Equal(t, tt.want, r.Message())
		})
	}
}

func TestRetryAfter(t *testing.T) {
	reset := mustTime(t, "2026-12-01T00:00:00+01:00")
	tests := []struct {
		name   string
		resets time.Time
		now    string
		req    string // Requested, against a cap of 1 USD
		secs   int
		ok     bool
	}{
		{"rounds up", reset, "2026-11-30T23:59:58.5+01:00", "", 2, true},
		{"whole seconds", reset, "2026-11-30T23:00:00+01:00", "", 3600, true},
		{"one nanosecond", reset, "2026-11-30T23:59:59.999999999+01:00", "", 1, true},
		{"at the reset", reset, "2026-12-01T00:00:00+01:00", "", 0, true},
		{"after the reset", reset, "2026-12-01T00:00:01+01:00", "", 0, true},
		{"total never resets", time.Time{}, "2026-11-30T23:00:00+01:00", "", 0, false},
		{"request of exactly the cap", reset, "2026-11-30T23:00:00+01:00", "1", 3600, true},
		{"request alone over the cap: retrying never helps", reset, "2026-11-30T23:00:00+01:00", "1.000000001", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := Rejection{ResetsAt: tt.resets, Hard: usd("1")}
			if tt.req != "" {
				r.Requested = usd(tt.req)
			}
			secs, ok := r.RetryAfter(mustTime(t, tt.now))
			assert.Equal(t, tt.secs, secs)
			assert.Equal(t, tt.ok, ok)
		})
	}
}
