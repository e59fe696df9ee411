package budget

import (
	"slices"
	"time"
)

// Rebuilding counters from a durable record of spend (the PostgreSQL
// ledger, exporters/postgres) when a memory store (budget/memstore) starts
// empty or from an older snapshot. The record says, per request, the
// dimensions, the served model, when it ran and what it cost; these
// functions say which counters that spend belongs to now; the memory
// store's RestoreCommitted puts it there.

// RecoverySince returns the earliest instant whose spend still counts
// against a budget of p at now: the start of the oldest current calendar
// period, or of the oldest sub-bucket of a rolling window. all is true
// when a budget has period total, for which every spend ever counts.
// With no budgets, since is now.
func (p *Policies) RecoverySince(now time.Time) (since time.Time, all bool) {
	since = now
	for _, b := range p.budgets {
		if b.period == PeriodTotal {
			return time.Time{}, true
		}
		if start, _ := b.Window(now); start.Before(since) {
			since = start
		}
	}
	return since, false
}

// RollingSince returns the start of the oldest sub-bucket any rolling
// window of p counts at now, and false when p has no rolling window.
// Spend since then must be placed at its exact second: rolling buckets
// are whole seconds, while calendar periods start at quarter-hours in
// every time zone in use.
func (p *Policies) RollingSince(now time.Time) (time.Time, bool) {
	var since time.Time
	found := false
	for _, b := range p.budgets {
		if b.period != PeriodRolling {
			continue
		}
		if start, _ := b.Window(now); !found || start.Before(since) {
			since, found = start, true
		}
	}
	return since, found
}

// CurrentItems returns the counters that a request with dims (the model
// dimension included: the served model) committed its spend to when it
// was settled at at, keeping those that still count at now: its calendar
// period is the current one, its sub-bucket is within the rolling window,
// or its budget is a total. Budgets apply as configured in p, so a
// renamed or re-matched budget is rebuilt under its new name and match.
// The items' Expires are those of the counters at, as a Reserve at at
// would have created them.
func (p *Policies) CurrentItems(dims map[string]string, at, now time.Time) []Item {
	var out []Item
	for _, s := range p.Applicable(dims) {
		then, cur := itemFor(s, "", at), itemFor(s, "", now)
		if then.Key == cur.Key || slices.Contains(cur.Window, then.Key) {
			out = append(out, then)
		}
	}
	return out
}
