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
	othersReserved money.Nano // the reservations of other replicas
	reported       money.Nano // this counter's reservations as last reported
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

// held is what this replica holds on c that the backend has not
// counted as committed: its reservations and its unsent spend.
func (c *counter) held() money.Nano {
	return money.Add(c.reserved, money.Add(c.pending, c.inflight))
}

// windowUnsent is what this replica holds on the older buckets of c's
// rolling window beyond its leases there: c's sync must cover it in its
// lease, since the backend cannot see it (the leases it can).
func (s *Store) windowUnsent(c *counter) money.Nano {
	var sum money.Nano
	for _, w := range c.item.Window {
		if o, ok := s.counters[w]; ok && w != c.key {
			sum = money.Add(sum, max(o.held()-o.lease, 0))
		}
	}
	return sum
}

// local sums, over key and window, this replica's unsent spend, its
// live reservations and the reservations it last reported.
func (s *Store) local(key string, window []string) (unsent, reserved, reported money.Nano) {
	add := func(k string) {
		if o, ok := s.counters[k]; ok {
			unsent = money.Add(unsent, money.Add(o.pending, o.inflight))
			reserved = money.Add(reserved, o.reserved)
			reported = money.Add(reported, o.reported)
		}
	}
	add(key)
	for _, w := range window {
		if w != key {
			add(w)
		}
	}
	return unsent, reserved, reported
}

// free is what c's lease can still admit at now: the lease less what
// this replica holds on it (negative when a settle went past the
// lease). An expired lease admits nothing.
func (c *counter) free(s *Store, now time.Time) money.Nano {
	if !now.Before(c.validTo) {
		return -c.held()
	}
	return c.lease - money.Add(c.held(), s.windowUnsent(c))
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

// busyOf returns the channel of a sync under way on one of cs, or nil:
// a counter has one sync at a time (a counter whose last sync has an
// unknown outcome and none under way is resolved by the caller's own
// job, see short).
func busyOf(cs []*counter) chan struct{} {
	for _, c := range cs {
		if c.busy != nil {
			return c.busy
		}
	}
	return nil
}

// waiter bounds, by Options.Wait, the time one call spends waiting for
// the backend. Its context is made when the call first waits, so a call
// decided within the leases starts no timer.
type waiter struct {
	parent context.Context
	d      time.Duration
	ctx    context.Context
	cancel context.CancelFunc
}

func (w *waiter) context() context.Context {
	if w.ctx == nil {
		w.ctx, w.cancel = context.WithTimeout(w.parent, w.d)
	}
	return w.ctx
}

func (w *waiter) done() {
	if w.cancel != nil {
		w.cancel()
	}
}

func waitFor(ctx context.Context, ch chan struct{}) error {
	select {
	case <-ch:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// short returns the indexes of the enforced items whose lease has less
// than need free (and of any item with a sync of unknown outcome), and the first of them that a sync for this call already
// failed to fill (-1: none; the call is then refused there).
func (s *Store) short(cs []*counter, items []budget.Item, need money.Nano, now time.Time, synced []bool) ([]int, int) {
	var short []int
	blocked := -1
	for i, c := range cs {
		if !items[i].Enforce && c.unacked == nil {
			continue
		}
		if items[i].Enforce && c.free(s, now) >= need && c.unacked == nil {
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
	unsent, reserved, _ := s.local(c.key, c.item.Window)
	return budget.Counter{Committed: money.Add(c.committed, unsent), Reserved: money.Add(c.othersReserved, reserved)}
}

func (s *Store) views(cs []*counter, items []budget.Item) []budget.Counter {
	out := make([]budget.Counter, len(cs))
	for i, c := range cs {
		if !c.viewed {
			// Never synced (not enforced, so never needed a lease): what
			// this replica knows.
			unsent, reserved, _ := s.local(c.key, items[i].Window)
			out[i] = budget.Counter{Committed: unsent, Reserved: reserved}
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
// twice what it admitted over the last sync interval, and at least
// eight times its largest admission then (or ask, for a counter just used);
// nothing for an idle counter.
func (s *Store) headroom(c *counter, ask money.Nano) money.Nano {
	if ask == 0 && c.demand == 0 {
		return 0
	}
	h := money.Add(c.demand, c.demand)
	big := max(c.peak, ask)
	four := money.Add(money.Add(big, big), money.Add(big, big))
	return max(h, money.Add(four, four))
}
