package lease

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// job is one sync of one counter.
type job struct {
	c      *counter
	idx    int // the item index of the call that asked for it
	req    SyncRequest
	resend bool // req is the counter's unacked sync sent again
	gen    uint64
}

// stats count the backend calls.
type stats struct {
	syncs, errors, forfeits atomic.Uint64
}

// Stats are a Store's counts since New.
type Stats struct {
	// Syncs is the number of Backend calls (round trips), SyncErrors
	// those that failed.
	Syncs, SyncErrors uint64
	// Forfeits counts syncs that found a lease of this replica forfeited
	// (it expired before the replica synced it).
	Forfeits uint64
	// Counters is the number of counters this replica keeps state for.
	Counters int
}

// Stats returns the Store's counts.
func (s *Store) Stats() Stats {
	s.mu.Lock()
	n := len(s.counters)
	s.mu.Unlock()
	return Stats{Syncs: s.stats.syncs.Load(), SyncErrors: s.stats.errors.Load(), Forfeits: s.stats.forfeits.Load(), Counters: n}
}

// prepare marks the counters cs[i], i in idx, busy and builds their
// syncs, each asking for ask. Called with s.mu held.
func (s *Store) prepare(cs []*counter, idx []int, ask money.Nano, now time.Time) []*job {
	jobs := make([]*job, 0, len(idx))
	for _, i := range idx {
		j := s.newJob(cs[i], ask, now)
		j.idx = i
		jobs = append(jobs, j)
	}
	return jobs
}

// newJob marks c busy and builds its next sync: the unknown one again if
// there is one, else one sending c's pending spend and asking ask plus
// headroom. Called with s.mu held.
func (s *Store) newJob(c *counter, ask money.Nano, now time.Time) *job {
	c.busy = make(chan struct{})
	j := &job{c: c, gen: s.gen}
	if c.unacked != nil {
		j.req, j.resend = *c.unacked, true
		return j
	}
	item := c.item
	item.Enforce = c.capped
	j.req = SyncRequest{
		Holder: s.opts.Holder, Seq: s.seq.Add(1), Item: item,
		Commit: c.pending, Reserved: c.reserved, TTL: s.opts.LeaseTTL, Now: now,
	}
	if c.capped {
		j.req.Need = money.Add(c.reserved, s.windowUnsent(c))
		j.req.Ask = ask
		j.req.Extra = s.headroom(c, ask)
	}
	c.inflight = money.Add(c.inflight, c.pending)
	c.pending = 0
	return j
}

// runJobs runs jobs one after the other (a call rarely has more than
// one short counter) and returns the first error; every job is finished
// either way.
func (s *Store) runJobs(ctx context.Context, jobs []*job) error {
	var first error
	for _, j := range jobs {
		if err := s.run(ctx, j); err != nil && first == nil {
			first = err
		}
	}
	return first
}

// run sends j and applies its reply (or its failure) to its counter.
func (s *Store) run(ctx context.Context, j *job) error {
	r, err := s.b.Sync(ctx, j.req)
	s.stats.syncs.Add(1)
	s.mu.Lock()
	defer s.mu.Unlock()
	c := j.c
	close(c.busy)
	c.busy = nil
	if err != nil {
		s.stats.errors.Add(1)
		if errors.Is(err, ErrInvalid) || errors.Is(err, budget.ErrInvalidArgument) ||
			errors.Is(err, budget.ErrStoreLost) || j.gen != s.gen {
			// Refused before anything was applied, or sent to a backend
			// that has lost its data since (Forget): the spend is still
			// to send.
			c.inflight = max(c.inflight-j.req.Commit, 0)
			c.pending = money.Add(c.pending, j.req.Commit)
			c.unacked = nil
		} else {
			req := j.req
			c.unacked = &req
		}
		return fmt.Errorf("sync %q: %w", c.key, err)
	}
	c.unacked = nil
	c.inflight = max(c.inflight-j.req.Commit, 0)
	if j.gen != s.gen {
		// The backend lost its data after this sync was sent (Forget):
		// what it answered is of the old data, and its commit is lost
		// with it, so it is sent again.
		c.pending = money.Add(c.pending, j.req.Commit)
		return nil
	}
	c.lease = r.Lease
	c.validTo = j.req.Now.Add(j.req.TTL)
	c.viewed = true
	c.committed = r.Committed
	if r.Applied {
		c.reported = j.req.Reserved
	}
	_, _, reported := s.local(c.key, c.item.Window)
	c.othersReserved = max(r.Reserved-min(reported, r.Reserved), 0)
	c.holders = r.Holders
	c.syncedAt = j.req.Now
	if r.Forfeited > 0 {
		s.stats.forfeits.Add(1)
		if s.opts.OnError != nil {
			s.opts.OnError(c.key, fmt.Errorf("a lease of this replica expired before it was renewed; the backend counted %v of it as spent", r.Forfeited))
		}
	}
	return nil
}

// loop syncs the counters that need it every SyncInterval until Close.
func (s *Store) loop() {
	defer close(s.done)
	t := time.NewTicker(s.opts.SyncInterval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.Flush(context.Background()); err != nil && s.opts.OnError != nil {
				s.opts.OnError("", err)
			}
		}
	}
}

// Flush syncs, at the time of Options.Now, every counter that has spend
// to send, a lease to renew or resize, or a view older than the sync
// interval while in use, and forgets the counters idle for longer than
// a lease TTL that hold nothing. The background loop calls it every
// SyncInterval.
func (s *Store) Flush(ctx context.Context) error {
	return s.flush(ctx, s.opts.Now(), false)
}

func (s *Store) flush(ctx context.Context, now time.Time, final bool) error {
	s.mu.Lock()
	s.expire(now)
	var jobs []*job
	for k, c := range s.counters {
		if c.busy != nil {
			continue
		}
		if !final && !s.due(c, now) {
			if c.lease == 0 && c.reserved == 0 && c.pending == 0 && c.inflight == 0 && c.unacked == nil &&
				now.Sub(c.lastUse) > s.opts.LeaseTTL {
				delete(s.counters, k)
			}
			continue
		}
		if final && c.lease == 0 && c.pending == 0 && c.unacked == nil && c.reserved == 0 {
			continue
		}
		j := s.newJob(c, 0, now)
		if final && !j.resend {
			j.req.Extra = 0
		}
		c.demand, c.peak, c.shrink = 0, 0, false
		jobs = append(jobs, j)
	}
	s.mu.Unlock()

	sem := make(chan struct{}, s.opts.Workers)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []error
	for _, j := range jobs {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := s.run(ctx, j); err != nil {
				mu.Lock()
				errs = append(errs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		return fmt.Errorf("lease flush: %d of %d syncs failed: %w", len(errs), len(jobs), errs[0])
	}
	return nil
}

// due reports whether the background loop syncs c now.
func (s *Store) due(c *counter, now time.Time) bool {
	switch {
	case c.unacked != nil, c.pending > 0, c.shrink, c.reserved != c.reported:
		return true
	case c.lease > 0 && now.Sub(c.syncedAt) >= s.opts.LeaseTTL/3:
		return true // renew before it expires
	case c.viewed && c.lastUse.After(c.syncedAt) && now.Sub(c.syncedAt) >= s.opts.SyncInterval:
		return true // in use: keep the view and the lease's size current
	case c.capped && c.demand == 0 && c.lease > money.Add(c.reserved, s.windowUnsent(c)) &&
		now.Sub(c.lastUse) >= 2*s.opts.SyncInterval:
		return true // idle: give the headroom back
	}
	return false
}

// Close stops the background loop and syncs every counter one last time,
// sending the spend settled here and giving every lease back but what
// live reservations hold (none once the requests have drained). ctx
// bounds it. It is idempotent; the Store must not be used afterwards.
func (s *Store) Close(ctx context.Context) error {
	s.closeMu.Lock()
	defer s.closeMu.Unlock()
	if s.closed {
		return s.closeErr
	}
	s.closed = true
	select {
	case <-s.done:
	default:
		close(s.stop)
		<-s.done
	}
	// Until a pass finds nothing left to send (a pass may only resolve
	// syncs of unknown outcome), retrying failed passes until ctx is done:
	// a Redis that blinks at shutdown (a failover) costs no spend.
	var err error
	for wait := 50 * time.Millisecond; ; wait = min(2*wait, time.Second) {
		if err = s.flush(ctx, s.opts.Now(), true); err == nil && s.settled() {
			break
		}
		select {
		case <-ctx.Done():
			if err == nil {
				err = ctx.Err()
			}
			s.closeErr = err
			return err
		case <-time.After(wait):
		}
	}
	s.closeErr = nil
	return nil
}

// settled reports whether every counter has sent what it had: no spend
// pending or in flight and no lease beyond what it must keep (the live
// reservations, and what is held on its window's buckets).
func (s *Store) settled() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, c := range s.counters {
		if c.pending != 0 || c.inflight != 0 || c.unacked != nil || c.busy != nil ||
			c.lease > money.Add(c.reserved, s.windowUnsent(c)) {
			return false
		}
	}
	return true
}

// Forget drops every lease this replica holds, for a backend that lost
// its data (the leases it granted are gone with it): the next call on
// each counter syncs again, asking for what it holds. Spend settled here
// and not yet confirmed is sent again.
func (s *Store) Forget() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.gen++
	for _, c := range s.counters {
		c.lease, c.validTo, c.viewed = 0, time.Time{}, false
		if c.unacked != nil {
			c.pending = money.Add(c.pending, c.unacked.Commit)
			c.inflight = max(c.inflight-c.unacked.Commit, 0)
			c.unacked = nil
		}
	}
}
