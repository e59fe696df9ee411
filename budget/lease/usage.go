package lease

import (
	"context"
	"fmt"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// Usage implements budget.Store. A counter this replica synced within
// the last two sync intervals is answered from that sync plus what
// changed here since (the background loop keeps the counters in use that
// fresh); an older one is synced first; one it keeps nothing for is read
// from the backend, without taking a lease.
func (s *Store) Usage(ctx context.Context, items []budget.Item, now time.Time) ([]budget.Counter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := validItems(items); err != nil {
		return nil, err
	}
	w := waiter{parent: ctx, d: s.opts.Wait}
	defer w.done()
	out := make([]budget.Counter, len(items))
	var cold []int
	for synced := false; ; synced = true {
		cold = cold[:0]
		var stale []int
		s.mu.Lock()
		s.expire(now)
		cs := make([]*counter, len(items))
		var wait chan struct{}
		for i, it := range items {
			c, ok := s.counters[it.Key]
			switch {
			case !ok:
				cold = append(cold, i)
			case c.busy != nil:
				wait = c.busy
			case c.viewed && (synced || s.fresh(c, now)):
				c.item = it
				out[i] = s.view(c)
			case !c.viewed && c.held() == 0 && c.unacked == nil:
				cold = append(cold, i)
			default:
				c.item = it
				c.capped = it.Enforce || it.Limit > 0
				cs[i] = c
				stale = append(stale, i)
			}
		}
		if wait != nil {
			s.mu.Unlock()
			if err := waitFor(w.context(), wait); err != nil {
				return nil, err
			}
			continue
		}
		if len(stale) == 0 || synced {
			s.mu.Unlock()
			break
		}
		jobs := s.prepare(cs, stale, 0, now)
		s.mu.Unlock()
		if err := s.runJobs(w.context(), jobs); err != nil {
			return nil, fmt.Errorf("lease usage: %w", err)
		}
	}
	for _, i := range cold {
		// A reader of its own: a read must not take a sequence number of
		// the holder, which a sync of unknown outcome may still need.
		r, err := s.b.Sync(w.context(), SyncRequest{Holder: s.opts.Holder + "/read", Seq: s.seq.Add(1), Item: items[i], TTL: s.opts.LeaseTTL, Now: now})
		s.stats.syncs.Add(1)
		if err != nil {
			s.stats.errors.Add(1)
			return nil, fmt.Errorf("lease usage: %w", err)
		}
		// What this replica holds on the window's buckets (or on a
		// counter created meanwhile) the backend has not seen.
		s.mu.Lock()
		unsent, reserved, reported := s.local(items[i].Key, items[i].Window)
		s.mu.Unlock()
		out[i] = budget.Counter{
			Committed: money.Add(r.Committed, unsent),
			Reserved:  money.Add(max(r.Reserved-min(reported, r.Reserved), 0), reserved),
		}
	}
	return out, nil
}

// fresh reports whether c's view is recent enough to answer Usage: synced
// within two sync intervals (always, without a background loop).
func (s *Store) fresh(c *counter, now time.Time) bool {
	return s.opts.SyncInterval <= 0 || now.Sub(c.syncedAt) < 2*s.opts.SyncInterval
}
