package admin

import (
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// BurnSpan is the window burn rates are measured over: the last hour.
const BurnSpan = time.Hour

// Defaults of History.
const (
	DefaultSampleEvery = time.Minute
	DefaultMaxTracked  = budget.DefaultListScopes
)

// Burn is a scope's spending rate and where it leads.
type Burn struct {
	// PerHour is committed spend per hour over Window; OK is false when
	// there is no rate to give yet (see History).
	PerHour money.Nano
	Window  time.Duration
	OK      bool
	// ExhaustsAt is when the hard cap is reached at that rate, if that is
	// before the period resets; zero otherwise.
	ExhaustsAt time.Time
}

// History keeps, per scope and period, a ring of committed-spend samples
// over the last BurnSpan, at most one per SampleEvery, so that a burn
// rate can be given where the store alone cannot say it. It holds at
// most MaxTracked scopes (about 60 samples each); a scope not sampled for
// BurnSpan is forgotten. It is safe for concurrent use.
//
// The rate of a scope (Rate) is exact, from the store's numbers alone,
// when the spend counted started less than an hour ago: a rolling window
// (its spend over the window, which is at most the window plus one
// sub-bucket long) or a calendar period that began within the hour (its
// spend since the start). Otherwise it is the increase of committed spend
// since the oldest sample of the last hour. Samples are this replica's:
// a replica that started a minute ago has no rate for a monthly budget
// until it has sampled for a while. With Redis every replica samples the
// same shared counters, so replicas agree up to when they sampled; with
// the memory store each replica's counters are its own anyway.
type History struct {
	SampleEvery time.Duration // DefaultSampleEvery when 0
	MaxTracked  int           // DefaultMaxTracked when 0

	mu        sync.Mutex
	rings     map[string][]sample
	lastPrune time.Time
}

type sample struct {
	at        time.Time
	committed money.Nano
}

func (h *History) every() time.Duration {
	if h.SampleEvery > 0 {
		return h.SampleEvery
	}
	return DefaultSampleEvery
}

// ringKey is a scope's counter identity in one period.
func ringKey(s budget.State) string {
	return s.Scope.Key + "@" + strconv.FormatInt(s.Start.Unix(), 10)
}

// Observe records the committed spend of states at now (at most one
// sample per scope per SampleEvery). Rolling windows need no samples.
func (h *History) Observe(now time.Time, states []budget.State) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.rings == nil {
		h.rings = map[string][]sample{}
	}
	limit := h.MaxTracked
	if limit <= 0 {
		limit = DefaultMaxTracked
	}
	for _, s := range states {
		if s.Scope.Budget.Period() == budget.PeriodRolling {
			continue
		}
		k := ringKey(s)
		r, ok := h.rings[k]
		if !ok && len(h.rings) >= limit {
			continue
		}
		if n := len(r); n > 0 && now.Sub(r[n-1].at) < h.every() {
			continue
		}
		r = append(r, sample{at: now, committed: s.Committed})
		for len(r) > 1 && now.Sub(r[1].at) >= BurnSpan { // keep one sample at least an hour old
			r = r[1:]
		}
		h.rings[k] = r
	}
	if now.Sub(h.lastPrune) >= h.every() {
		h.lastPrune = now
		for k, r := range h.rings {
			if now.Sub(r[len(r)-1].at) > BurnSpan {
				delete(h.rings, k)
			}
		}
	}
}

// Rate returns s's burn rate at now (see History).
func (h *History) Rate(s budget.State, now time.Time) Burn {
	var b Burn
	switch since := now.Sub(s.Start); {
	case s.Scope.Budget.Period() == budget.PeriodRolling, !s.Start.IsZero() && since <= BurnSpan:
		b = rate(s.Committed, since)
	default:
		h.mu.Lock()
		r := h.rings[ringKey(s)]
		var from sample
		found := false
		for _, x := range r {
			if now.Sub(x.at) <= BurnSpan && now.Sub(x.at) >= h.every() {
				from, found = x, true
				break
			}
		}
		h.mu.Unlock()
		if found {
			b = rate(max(s.Committed-from.committed, 0), now.Sub(from.at))
		}
	}
	if !b.OK || b.PerHour <= 0 {
		return b
	}
	if _, ok := s.Scope.Budget.Hard(); !ok || s.Level == "hard" || s.Remaining <= 0 {
		return b
	}
	d := money.MulDivCeil(int64(s.Remaining), int64(time.Hour), int64(b.PerHour))
	at := now.Add(time.Duration(d))
	if d < math.MaxInt64 && (s.ResetsAt.IsZero() || at.Before(s.ResetsAt)) {
		b.ExhaustsAt = at
	}
	return b
}

// rate is spent over d, per hour; no rate for a window under a second.
func rate(spent money.Nano, d time.Duration) Burn {
	if d < time.Second {
		return Burn{}
	}
	perHour := money.Nano(money.MulDivCeil(int64(spent), int64(time.Hour), int64(d)))
	return Burn{PerHour: perHour, Window: d, OK: true}
}

// Tracked is how many scopes have samples, for tests.
func (h *History) Tracked() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return len(h.rings)
}
