package budget

import (
	"container/heap"
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/spendguard/spendguard/internal/money"
)

// MemoryStore is a Store held in one process: a mutex-protected map of
// counters and a heap of live reservations ordered by expiry. It is exact
// for a single replica; replicas that must share budgets need a shared
// store.
//
// Nothing grows without bound: expired reservations are released lazily
// at the start of every call (in expiry order, O(log n) each), and a
// counter is dropped once MemoryGrace has passed after its Item.Expires
// (checked only when the earliest such deadline has passed). A Settle
// within MemoryGrace after the period end still lands in the counter; one
// even later lands in a counter that the next call drops again, since no
// window reads a period that long over.
type MemoryStore struct {
	mu        sync.Mutex
	counters  map[string]*memCounter
	live      map[string]*memReservation
	queue     reservationHeap
	nextPrune time.Time // earliest Expires+MemoryGrace of any counter; zero: none
}

// MemoryGrace is how long the memory store keeps a counter after its
// period has ended, for late settles and for the admin API.
const MemoryGrace = time.Hour

type memCounter struct {
	Counter
	expires time.Time
}

type memReservation struct {
	id      string
	keys    []string
	amount  money.Nano
	expires time.Time
	index   int // position in the heap
	inline  [inlineItems]string
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	return &MemoryStore{
		counters: map[string]*memCounter{},
		live:     map[string]*memReservation{},
	}
}

var _ Store = (*MemoryStore)(nil)

// Reserve implements Store.
func (m *MemoryStore) Reserve(ctx context.Context, id string, amount money.Nano, items []Item, ttl time.Duration, now time.Time) (Outcome, error) {
	if err := ctx.Err(); err != nil {
		return Outcome{}, err
	}
	if id == "" || amount < 0 || ttl <= 0 {
		return Outcome{}, fmt.Errorf("%w: reserve id %q, amount %v, ttl %v", ErrInvalidArgument, id, amount, ttl)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if _, ok := m.live[id]; ok {
		return Outcome{}, fmt.Errorf("%w: %q", ErrDuplicateReservation, id)
	}
	out := Outcome{Blocked: -1, Counters: make([]Counter, len(items))}
	for i, it := range items {
		out.Counters[i] = m.sum(it)
		if out.Blocked < 0 && blocks(it, out.Counters[i].Used(), amount) {
			out.Blocked = i
		}
	}
	if !out.OK() {
		return out, nil
	}
	r := &memReservation{id: id, amount: amount, expires: now.Add(ttl)}
	r.keys = r.inline[:0]
	if len(items) > len(r.inline) {
		r.keys = make([]string, 0, len(items))
	}
	for i, it := range items {
		c := m.counter(it)
		c.Reserved = money.Add(c.Reserved, amount)
		r.keys = append(r.keys, it.Key)
		out.Counters[i].Reserved = money.Add(out.Counters[i].Reserved, amount)
	}
	m.live[id] = r
	heap.Push(&m.queue, r)
	return out, nil
}

// Settle implements Store.
func (m *MemoryStore) Settle(ctx context.Context, id string, actual money.Nano, items []Item, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if actual < 0 {
		return fmt.Errorf("%w: settle %q with actual %v", ErrInvalidArgument, id, actual)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	if r, ok := m.live[id]; ok {
		heap.Remove(&m.queue, r.index)
		m.release(r)
	}
	if actual == 0 {
		return nil
	}
	for _, it := range items {
		c := m.counter(it)
		c.Committed = money.Add(c.Committed, actual)
	}
	return nil
}

// Usage implements Store.
func (m *MemoryStore) Usage(ctx context.Context, items []Item, now time.Time) ([]Counter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now)
	out := make([]Counter, len(items))
	for i, it := range items {
		out[i] = m.sum(it)
	}
	return out, nil
}

var _ Lister = (*MemoryStore)(nil)

// CounterKeys implements Lister. It holds the store's lock while it walks
// the map (about a millisecond per 100,000 counters), so requests wait
// that long behind a listing.
func (m *MemoryStore) CounterKeys(ctx context.Context, prefix string, limit int) ([]string, bool, error) {
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

// Len returns how many counters and live reservations the store holds
// (as of its last call), for metrics and tests.
func (m *MemoryStore) Len() (counters, reservations int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.counters), len(m.live)
}

// sum adds up the counters of an item's Key and Window.
func (m *MemoryStore) sum(it Item) Counter {
	var s Counter
	add := func(key string) {
		if c := m.counters[key]; c != nil {
			s.Committed = money.Add(s.Committed, c.Committed)
			s.Reserved = money.Add(s.Reserved, c.Reserved)
		}
	}
	add(it.Key)
	for _, k := range it.Window {
		add(k)
	}
	return s
}

// counter returns the counter of it.Key, creating it.
func (m *MemoryStore) counter(it Item) *memCounter {
	c := m.counters[it.Key]
	if c != nil {
		return c
	}
	c = &memCounter{expires: it.Expires}
	m.counters[it.Key] = c
	if !it.Expires.IsZero() {
		if d := it.Expires.Add(MemoryGrace); m.nextPrune.IsZero() || d.Before(m.nextPrune) {
			m.nextPrune = d
		}
	}
	return c
}

// sweep releases the reservations that expired at or before now and drops
// the counters whose grace has passed.
func (m *MemoryStore) sweep(now time.Time) {
	for len(m.queue) > 0 && !now.Before(m.queue[0].expires) {
		m.release(heap.Pop(&m.queue).(*memReservation))
	}
	if m.nextPrune.IsZero() || now.Before(m.nextPrune) {
		return
	}
	m.nextPrune = time.Time{}
	for k, c := range m.counters {
		if c.expires.IsZero() {
			continue
		}
		d := c.expires.Add(MemoryGrace)
		if !now.Before(d) {
			delete(m.counters, k)
		} else if m.nextPrune.IsZero() || d.Before(m.nextPrune) {
			m.nextPrune = d
		}
	}
}

// release takes a reservation's amount off its counters; r must already
// be out of the heap.
func (m *MemoryStore) release(r *memReservation) {
	delete(m.live, r.id)
	for _, k := range r.keys {
		if c := m.counters[k]; c != nil {
			c.Reserved -= r.amount
			if c.Reserved < 0 {
				c.Reserved = 0
			}
		}
	}
}

// reservationHeap orders live reservations by expiry (container/heap).
type reservationHeap []*memReservation

func (h reservationHeap) Len() int           { return len(h) }
func (h reservationHeap) Less(i, j int) bool { return h[i].expires.Before(h[j].expires) }
func (h reservationHeap) Swap(i, j int) {
	h[i], h[j] = h[j], h[i]
	h[i].index, h[j].index = i, j
}

func (h *reservationHeap) Push(x any) {
	r := x.(*memReservation)
	r.index = len(*h)
	*h = append(*h, r)
}

func (h *reservationHeap) Pop() any {
	old := *h
	r := old[len(old)-1]
	old[len(old)-1] = nil
	*h = old[:len(old)-1]
	r.index = -1
	return r
}
