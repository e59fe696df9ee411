// Package memstore is a budget.Store held in the memory of one process,
// beside budget/redisstore (the store replicas share). It is exact for a
// single replica and never grows without bound (see Store). Its state can
// be written to a snapshot file and read back at start (WriteSnapshot,
// Load), and counters can be rebuilt from a durable record of spend
// (RestoreCommitted, with budget.Policies.CurrentItems). budget/storetest
// checks it against the budget.Store and budget.Lister contracts, as it
// does the Redis store.
package memstore

import (
	"container/heap"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// Store is a budget.Store held in one process: a mutex-protected map of
// counters and a heap of live reservations ordered by expiry. It is exact
// for a single replica; replicas that must share budgets need a shared
// store.
//
// Nothing grows without bound: expired reservations are released lazily
// at the start of every call (in expiry order, O(log n) each), and a
// counter is dropped once Grace has passed after its budget.Item.Expires
// (checked only when the earliest such deadline has passed). A Settle
// within Grace after the period end still lands in the counter; one
// even later lands in a counter that the next call drops again, since no
// window reads a period that long over.
type Store struct {
	mu        sync.Mutex
	counters  map[string]*memCounter
	live      map[string]*memReservation
	queue     reservationHeap
	nextPrune time.Time // earliest Expires+Grace of any counter; zero: none
	// gen changes whenever a counter is created or dropped: while it has
	// not, every key resolves to the counter it resolved to before.
	gen  uint64
	free []*memReservation // released reservations, for reuse

	parking parking // budget.Parker (park.go)
	samples samples // estimate.Samples (samples.go)
}

// Grace is how long the memory store keeps a counter after its
// period has ended, for late settles and for the admin API.
const Grace = time.Hour

type memCounter struct {
	budget.Counter
	expires time.Time
	dropped bool // no longer in the map (a later counter may have its key)
	// window caches the counters of the Window of the items whose Key
	// this counter is (the older buckets of a rolling window).
	window *windowCache
}

// windowCache is what the keys of a Window resolved to (nil: no counter)
// while the store's gen was gen; the keys are a copy, compared on use.
type windowCache struct {
	gen      uint64
	keys     []string
	counters []*memCounter
}

type memReservation struct {
	id       string
	keys     []string
	counters []*memCounter // counters[i] is the counter of keys[i] when reserved
	amount   money.Nano
	expires  time.Time
	index    int // position in the heap
	inline   [inlineItems]string
	inlineC  [inlineItems]*memCounter
}

// inlineItems is how many keys a reservation holds without a second
// allocation: as many as the engine keeps inline in a budget.Reservation.
const inlineItems = 4

// maxFreeReservations bounds the store's list of reservations to reuse.
const maxFreeReservations = 1024

// New returns an empty Store.
func New() *Store {
	return &Store{
		counters: map[string]*memCounter{},
		live:     map[string]*memReservation{},
	}
}

var _ budget.Store = (*Store)(nil)

// Reserve implements budget.Store. Its outcome is never unknown: it
// fails before changing anything (a cancelled context, a refusal) or
// answers what it did, so the engine's background release of a Reserve
// that timed out (budget/release.go) has nothing to do here, and the
// memory store, not an IdempotentSettler, never gets one.
func (m *Store) Reserve(ctx context.Context, id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (budget.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return budget.Outcome{}, err
	}
	if id == "" || amount < 0 || ttl <= 0 {
		return budget.Outcome{}, fmt.Errorf("%w: reserve id %q, amount %v, ttl %v", budget.ErrInvalidArgument, id, amount, ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if _, ok := m.live[id]; ok {
		return budget.Outcome{}, fmt.Errorf("%w: %q", budget.ErrDuplicateReservation, id)
	}
	r := m.newReservation(len(items))
	r.counters = r.counters[:len(items)]
	out := budget.Outcome{Blocked: -1, Counters: make([]budget.Counter, len(items))}
	for i, it := range items {
		out.Counters[i], r.counters[i] = m.sum(it)
		if out.Blocked < 0 && it.Blocks(out.Counters[i].Used(), amount) {
			out.Blocked = i
		}
	}
	if !out.OK() {
		m.recycle(r)
		return out, nil
	}
	r.id, r.amount, r.expires = id, amount, now.Add(ttl)
	for i, it := range items {
		c := r.counters[i] // the counter of it.Key, if sum found one
		if c == nil {
			c = m.counter(it)
			r.counters[i] = c
		}
		c.Reserved = money.Add(c.Reserved, amount)
		r.keys = append(r.keys, it.Key)
		out.Counters[i].Reserved = money.Add(out.Counters[i].Reserved, amount)
	}
	m.live[id] = r
	heap.Push(&m.queue, r)
	return out, nil
}

// Settle implements budget.Store.
func (m *Store) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if actual < 0 {
		return fmt.Errorf("%w: settle %q with actual %v", budget.ErrInvalidArgument, id, actual)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	r := m.live[id]
	if r != nil {
		heap.Remove(&m.queue, r.index)
		m.release(r)
	}
	if actual > 0 {
		for i, it := range items {
			var c *memCounter
			if r != nil && i < len(r.keys) && r.keys[i] == it.Key && !r.counters[i].dropped {
				c = r.counters[i] // still the counter of it.Key: no lookup
			} else {
				c = m.counter(it)
			}
			c.Committed = money.Add(c.Committed, actual)
		}
	}
	if r != nil {
		m.recycle(r)
	}
	return nil
}

// Extend implements budget.Store. A live reservation must be extended
// with the items it was reserved with (the same Keys in the same order):
// others are refused with budget.ErrInvalidArgument, since the store
// keeps one amount per reservation.
func (m *Store) Extend(ctx context.Context, id string, want money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (money.Nano, budget.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, budget.Outcome{}, err
	}
	if id == "" || want < 0 || ttl <= 0 {
		return 0, budget.Outcome{}, fmt.Errorf("%w: extend id %q, want %v, ttl %v", budget.ErrInvalidArgument, id, want, ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	r := m.live[id]
	if r != nil && !sameKeys(r.keys, items) {
		return 0, budget.Outcome{}, fmt.Errorf("%w: extend %q with other budgets than it was reserved on", budget.ErrInvalidArgument, id)
	}
	fresh := r == nil
	if fresh {
		r = m.newReservation(len(items))
		r.counters = r.counters[:len(items)]
	}
	granted := want
	out := budget.Outcome{Blocked: -1, Counters: make([]budget.Counter, len(items))}
	for i, it := range items {
		var c *memCounter
		out.Counters[i], c = m.sum(it)
		if fresh || r.counters[i].dropped {
			// The key's counter now (nil: none yet). A dropped one (its
			// period over, and Grace, while r was renewed) took r's hold
			// with it; r is released from the key's counter then, as
			// release does.
			r.counters[i] = c
		}
		if room := it.Room(out.Counters[i].Used()); room < granted {
			granted, out.Blocked = room, i
		}
	}
	for i, it := range items {
		c := r.counters[i]
		if c == nil {
			c = m.counter(it)
			r.counters[i] = c
		}
		c.Reserved = money.Add(c.Reserved, granted)
		out.Counters[i].Reserved = money.Add(out.Counters[i].Reserved, granted)
		if fresh {
			r.keys = append(r.keys, it.Key)
		}
	}
	r.amount, r.expires = money.Add(r.amount, granted), now.Add(ttl)
	if fresh {
		r.id = id
		m.live[id] = r
		heap.Push(&m.queue, r)
	} else {
		heap.Fix(&m.queue, r.index)
	}
	return granted, out, nil
}

// sameKeys reports whether items are, in order, on the counter keys keys.
func sameKeys(keys []string, items []budget.Item) bool {
	if len(keys) != len(items) {
		return false
	}
	for i, it := range items {
		if keys[i] != it.Key {
			return false
		}
	}
	return true
}

// Usage implements budget.Store.
func (m *Store) Usage(ctx context.Context, items []budget.Item, now time.Time) ([]budget.Counter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	out := make([]budget.Counter, len(items))
	for i, it := range items {
		out[i], _ = m.sum(it)
	}
	return out, nil
}

var _ budget.Lister = (*Store)(nil)

// CounterKeys implements budget.Lister. It holds the store's lock while it walks
// the map (about a millisecond per 100,000 counters), so requests wait
// that long behind a listing.
func (m *Store) CounterKeys(ctx context.Context, prefix string, limit int) ([]string, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	var keys []string
	for k := range m.counters {
		if !strings.HasPrefix(k, prefix) {
			continue
		}
		if len(keys) == limit {
			return keys, true, nil
		}
		keys = append(keys, k)
	}
	return keys, false, nil
}

// RestoreCommitted raises the committed amount of counter it.Key to at
// least committed, creating the counter (which then expires as one made
// by a Reserve of it would). It never adds to what the counter holds:
// restoring the same spend from two records (a snapshot and a ledger)
// counts it once, and the more complete record wins per counter. Meant
// for start-up, before the store serves requests; safe at any time.
func (m *Store) RestoreCommitted(it budget.Item, committed money.Nano) {
	if committed <= 0 {
		return
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counter(it)
	c.Committed = max(c.Committed, committed)
}

// Len returns how many counters and live reservations the store holds
// (as of its last call), for metrics and tests.
func (m *Store) Len() (counters, reservations int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.counters), len(m.live)
}

// sum adds up the counters of an item's Key and Window, and returns the
// counter of Key (nil if none).
func (m *Store) sum(it budget.Item) (budget.Counter, *memCounter) {
	c := m.counters[it.Key]
	if c == nil {
		var s budget.Counter
		for _, k := range it.Window {
			if w := m.counters[k]; w != nil {
				s.Committed = money.Add(s.Committed, w.Committed)
				s.Reserved = money.Add(s.Reserved, w.Reserved)
			}
		}
		return s, nil
	}
	s := c.Counter
	if len(it.Window) == 0 {
		return s, c
	}
	for _, w := range m.resolveWindow(c, it.Window) {
		if w != nil {
			s.Committed = money.Add(s.Committed, w.Committed)
			s.Reserved = money.Add(s.Reserved, w.Reserved)
		}
	}
	return s, c
}

// resolveWindow returns the counters of the keys of window (nil where
// none), cached on c, the counter of the item's Key: a rolling window's
// older buckets are looked up again only after a counter was created or
// dropped. The cache is used only for the same keys, so it is exact
// whatever window comes with c's key.
func (m *Store) resolveWindow(c *memCounter, window []string) []*memCounter {
	w := c.window
	if w != nil && w.gen == m.gen && len(w.keys) == len(window) {
		hit := true
		for i, k := range window {
			if w.keys[i] != k { // the same string: compares pointers only
				hit = false
				break
			}
		}
		if hit {
			return w.counters
		}
	}
	if w == nil || cap(w.keys) < len(window) {
		w = &windowCache{keys: make([]string, len(window)), counters: make([]*memCounter, len(window))}
		c.window = w
	}
	w.gen = m.gen
	w.keys, w.counters = w.keys[:len(window)], w.counters[:len(window)]
	copy(w.keys, window)
	for i, k := range window {
		w.counters[i] = m.counters[k]
	}
	return w.counters
}

// counter returns the counter of it.Key, creating it.
func (m *Store) counter(it budget.Item) *memCounter {
	c := m.counters[it.Key]
	if c != nil {
		return c
	}
	c = &memCounter{expires: it.Expires}
	m.counters[it.Key] = c
	m.gen++
	if !it.Expires.IsZero() {
		if d := it.Expires.Add(Grace); m.nextPrune.IsZero() || d.Before(m.nextPrune) {
			m.nextPrune = d
		}
	}
	return c
}
