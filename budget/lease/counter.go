package lease

import (
	"context"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// counter is this replica's side of one counter key.
type counter struct {
	key  string
	item budget.Item // as last given by a call (limits follow reloads)
	// capped: the counter has a hard cap (the last call's item was
	// enforced, or has a limit and was only let through for its model),
	// so its syncs are enforced and hold a lease.
	capped bool

	// lease is what the backend granted at the last sync, valid until
	// validTo (the sync's time plus the lease TTL).
	lease   money.Nano
	validTo time.Time

	reserved money.Nano // the live reservations here
	pending  money.Nano // settled here, not sent yet
	inflight money.Nano // settled here, sent in the sync under way (or whose outcome is unknown)

	// busy is closed when the sync under way ends; nil when none is.
	busy chan struct{}
	// unacked is a sync whose outcome is unknown: it is sent again, with
	// its sequence number, before anything else on this counter.
	unacked *SyncRequest

	// The counter's totals at the last sync (this replica's share
	// included in committed, not in othersReserved).
	viewed         bool
	committed      money.Nano
	othersReserved money.Nano
	holders        int
	syncedAt       time.Time

	demand  money.Nano // admitted since the last background sync
	peak    money.Nano // largest single admission since then
	lastUse time.Time
	shrink  bool // the lease holds more than wanted: sync soon
}

// noteDemand records an admission of amount.
func (c *counter) noteDemand(amount money.Nano) {
	c.demand = money.Add(c.demand, amount)
	c.peak = max(c.peak, amount)
}

// windowUnsent is the spend settled here on the older buckets of c's
// rolling window that the backend has not counted yet: c's sync must
// cover it in its lease, since the backend cannot see it.
func (s *Store) windowUnsent(c *counter) money.Nano {
	var sum money.Nano
	for _, w := range c.item.Window {
		if o, ok := s.counters[w]; ok {
			sum = money.Add(sum, money.Add(o.pending, o.inflight))
		}
	}
	return sum
}

// free is what c's lease can still admit at now: the lease less what
// this replica holds on it (negative when a settle went past the
// lease). An expired lease admits nothing.
func (c *counter) free(s *Store, now time.Time) money.Nano {
	if !now.Before(c.validTo) {
		return -money.Add(c.reserved, money.Add(c.pending, c.inflight))
	}
	held := money.Add(money.Add(c.reserved, s.windowUnsent(c)), money.Add(c.pending, c.inflight))
	return c.lease - held
}

// entries returns the counters of items, creating the missing ones.
// Called with s.mu held.
func (s *Store) entries(items []budget.Item, now time.Time) []*counter {
	cs := make([]*counter, len(items))
	for i, it := range items {
		c, ok := s.counters[it.Key]
		if !ok {
			c = &counter{key: it.Key}
			s.counters[it.Key] = c
		}
		c.item = it
		c.capped = it.Enforce || it.Limit > 0
		c.lastUse = now
		cs[i] = c
	}
	return cs
}

// busyOf returns the channel of a sync under way on one of cs, or nil.
func busyOf(cs []*counter) chan struct{} {
	for _, c := range cs {
		if c.busy != nil {
			return c.busy
		}
		if c.unacked != nil {
			// A failed sync must be resolved first: run it as a job.
			return nil
		}
	}
	return nil
}

func waitFor(ctx context.Context, ch chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// short returns the indexes of the enforced items whose lease cannot
// admit amount, and the first of them that a sync for this call already
// failed to fill (-1: none; the call is then refused there).
func (s *Store) short(cs []*counter, items []budget.Item, amount money.Nano, now time.Time, synced []bool) ([]int, int) {
	var short []int
	blocked := -1
	for i, c := range cs {
		if !items[i].Enforce && c.unacked == nil {
			continue
		}
		if items[i].Enforce && c.free(s, now) >= amount && c.unacked == nil {
			continue
		}
		if !items[i].Enforce {
			short = append(short, i) // only to resolve the unknown sync
			continue
		}
		short = append(short, i)
		if synced != nil && synced[i] && blocked < 0 {
			blocked = i
		}
	}
	return short, blocked
}

// view is c's counter as this replica sees it: the backend's totals at
// the last sync plus what changed here since.
func (s *Store) view(c *counter) budget.Counter {
	committed := money.Add(c.committed, money.Add(c.pending, c.inflight))
	for _, w := range c.item.Window {
		if o, ok := s.counters[w]; ok {
			committed = money.Add(committed, money.Add(o.pending, o.inflight))
		}
	}
	return budget.Counter{Committed: committed, Reserved: money.Add(c.othersReserved, c.reserved)}
}

func (s *Store) views(cs []*counter, items []budget.Item) []budget.Counter {
	out := make([]budget.Counter, len(cs))
	for i, c := range cs {
		if !c.viewed && !items[i].Enforce {
			// Never synced (not enforced, so never needed a lease): what
			// this replica knows.
			out[i] = budget.Counter{Committed: money.Add(c.pending, c.inflight), Reserved: c.reserved}
			continue
		}
		out[i] = s.view(c)
	}
	return out
}

// markShrink asks the background loop to give back what cs hold beyond
// their need (a refused call may have been granted part of its ask).
func (s *Store) markShrink(cs []*counter) {
	for _, c := range cs {
		c.shrink = true
	}
}

// headroom is what c asks beyond its need for the requests to come:
// twice what it admitted over the last sync interval, and at least four
// times its largest admission then (or ask, for a counter just used);
// nothing for an idle counter.
func (s *Store) headroom(c *counter, ask money.Nano, now time.Time) money.Nano {
	if ask == 0 && c.demand == 0 {
		return 0
	}
	h := money.Add(c.demand, c.demand)
	big := max(c.peak, ask)
	return max(h, money.Add(money.Add(big, big), money.Add(big, big)))
}
