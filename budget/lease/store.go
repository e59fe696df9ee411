package lease

import (
	"container/heap"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// Defaults of Options.
const (
	DefaultSyncInterval = 500 * time.Millisecond
	DefaultLeaseTTL     = 10 * time.Second
	// DefaultSyncWorkers is how many counters the background loop syncs
	// at once.
	DefaultSyncWorkers = 8
	// DefaultWait is Options.Wait's default.
	DefaultWait = time.Second
)

// Options configure a Store.
type Options struct {
	// Holder names this process in the backend; it must never be reused
	// (default: host name, process id and random bytes).
	Holder string
	// SyncInterval is the most time settled spend waits before it is sent
	// to the backend, and how often active counters are synced (default
	// DefaultSyncInterval). A negative value starts no background loop
	// (tests call Flush).
	SyncInterval time.Duration
	// LeaseTTL is how long a lease lasts without a sync (default
	// DefaultLeaseTTL): a crashed replica's leases are counted as spent
	// after it.
	LeaseTTL time.Duration
	// Workers bounds the background syncs run at once (default
	// DefaultSyncWorkers).
	Workers int
	// Wait bounds how long a Reserve, Extend or Usage waits for the
	// backend, syncs of other calls it queues behind included (default
	// DefaultWait): a backend that hangs fails the call rather than the
	// request's deadline.
	Wait time.Duration
	// Now is the clock of the background loop (default time.Now).
	Now func() time.Time
	// OnError is told of background sync failures (optional; it must
	// not block).
	OnError func(key string, err error)
}

// Store is a budget.Store deciding locally within leases of a Backend.
// It is safe for concurrent use. Close returns the leases.
type Store struct {
	b    Backend
	opts Options
	seq  atomic.Uint64

	mu       sync.Mutex
	counters map[string]*counter
	res      map[string]*reservation
	expiry   expiryHeap
	gen      uint64 // bumped by Forget

	stats stats

	stop     chan struct{}
	done     chan struct{}
	closeMu  sync.Mutex
	closed   bool
	closeErr error
}

var _ budget.Store = (*Store)(nil)

// reservation is a live reservation of this replica.
type reservation struct {
	id      string
	amount  money.Nano
	keys    []string // the counter keys it holds amount on
	expires time.Time
}

// New returns a Store on b and starts its background loop.
func New(b Backend, opts Options) *Store {
	if opts.Holder == "" {
		opts.Holder = NewHolder()
	}
	if opts.SyncInterval == 0 {
		opts.SyncInterval = DefaultSyncInterval
	}
	if opts.LeaseTTL <= 0 {
		opts.LeaseTTL = DefaultLeaseTTL
	}
	if opts.Workers <= 0 {
		opts.Workers = DefaultSyncWorkers
	}
	if opts.Wait <= 0 {
		opts.Wait = DefaultWait
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Store{
		b: b, opts: opts,
		counters: map[string]*counter{},
		res:      map[string]*reservation{},
		stop:     make(chan struct{}),
		done:     make(chan struct{}),
	}
	if opts.SyncInterval > 0 {
		go s.loop()
	} else {
		close(s.done)
	}
	return s
}

// Holder is the name this Store holds its leases under.
func (s *Store) Holder() string { return s.opts.Holder }

// NewHolder is a name for this process that is never used again:
// host/pid/random. Processes that hold no lease use it too, to name
// themselves in the ledger.
func NewHolder() string {
	host, _ := os.Hostname()
	var b [6]byte
	_, _ = rand.Read(b[:])
	return fmt.Sprintf("%s/%d/%s", host, os.Getpid(), hex.EncodeToString(b[:]))
}

func validItems(items []budget.Item) error {
	for _, it := range items {
		if it.Key == "" || it.Limit < 0 {
			return fmt.Errorf("%w: item key %q, limit %v", budget.ErrInvalidArgument, it.Key, it.Limit)
		}
	}
	return nil
}

// Reserve implements budget.Store. It holds amount on every item locally
// when each enforced item's lease has room for it, and otherwise syncs
// the short items first, asking for amount (one round trip per short
// counter).
func (s *Store) Reserve(ctx context.Context, id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (budget.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return budget.Outcome{}, err
	}
	if id == "" || amount < 0 || ttl <= 0 {
		return budget.Outcome{}, fmt.Errorf("%w: reserve id %q, amount %v, ttl %v", budget.ErrInvalidArgument, id, amount, ttl)
	}
	if err := validItems(items); err != nil {
		return budget.Outcome{}, err
	}
	w := waiter{parent: ctx, d: s.opts.Wait}
	defer w.done()
	var synced []bool // synced[i]: item i was synced for this call
	for {
		s.mu.Lock()
		s.expire(now)
		if _, dup := s.res[id]; dup {
			s.mu.Unlock()
			return budget.Outcome{}, fmt.Errorf("%w: %q", budget.ErrDuplicateReservation, id)
		}
		cs := s.entries(items, now)
		if wait := busyOf(cs); wait != nil {
			s.mu.Unlock()
			if err := waitFor(w.context(), wait); err != nil {
				return budget.Outcome{}, err
			}
			continue
		}
		// A request of 0 still needs the counter below its cap: one
		// nano-USD of room proves it.
		short, blocked := s.short(cs, items, max(amount, 1), now, synced)
		if len(short) == 0 {
			s.admit(id, amount, cs, now.Add(ttl))
			out := budget.Outcome{Blocked: -1, Counters: s.views(cs, items)}
			s.mu.Unlock()
			return out, nil
		}
		if blocked >= 0 {
			out := budget.Outcome{Blocked: blocked, Counters: s.views(cs, items)}
			s.markShrink(cs)
			s.mu.Unlock()
			return out, nil
		}
		if synced == nil {
			synced = make([]bool, len(items))
		}
		jobs := s.prepare(cs, short, max(amount, 1), now)
		s.mu.Unlock()
		if err := s.runJobs(w.context(), jobs); err != nil {
			return budget.Outcome{}, fmt.Errorf("lease reserve: %w", err)
		}
		for _, j := range jobs {
			if !j.resend {
				synced[j.idx] = true
			}
		}
	}
}

// Extend implements budget.Store, within the leases as Reserve.
func (s *Store) Extend(ctx context.Context, id string, want money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (money.Nano, budget.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, budget.Outcome{}, err
	}
	if id == "" || want < 0 || ttl <= 0 {
		return 0, budget.Outcome{}, fmt.Errorf("%w: extend id %q, want %v, ttl %v", budget.ErrInvalidArgument, id, want, ttl)
	}
	if err := validItems(items); err != nil {
		return 0, budget.Outcome{}, err
	}
	w := waiter{parent: ctx, d: s.opts.Wait}
	defer w.done()
	var synced []bool
	for {
		s.mu.Lock()
		s.expire(now)
		cs := s.entries(items, now)
		if wait := busyOf(cs); wait != nil {
			s.mu.Unlock()
			if err := waitFor(w.context(), wait); err != nil {
				return 0, budget.Outcome{}, err
			}
			continue
		}
		var short []int
		blocked := -1
		if want > 0 { // 0 only renews
			short, blocked = s.short(cs, items, want, now, synced)
		}
		if len(short) == 0 || blocked >= 0 {
			granted := want
			for i, c := range cs {
				if items[i].Enforce {
					granted = min(granted, max(c.free(s, now), 0))
				}
			}
			s.grow(id, granted, cs, now.Add(ttl))
			if len(short) == 0 {
				blocked = -1
			} else {
				s.markShrink(cs)
			}
			out := budget.Outcome{Blocked: blocked, Counters: s.views(cs, items)}
			s.mu.Unlock()
			return granted, out, nil
		}
		if synced == nil {
			synced = make([]bool, len(items))
		}
		jobs := s.prepare(cs, short, want, now)
		s.mu.Unlock()
		if err := s.runJobs(w.context(), jobs); err != nil {
			return 0, budget.Outcome{}, fmt.Errorf("lease extend: %w", err)
		}
		for _, j := range jobs {
			if !j.resend {
				synced[j.idx] = true
			}
		}
	}
}

// Settle implements budget.Store. It never waits for the backend: the
// reservation is released and actual added to every item's counter here;
// the next sync of each counter sends it. It fails only for a negative
// actual or a canceled context.
func (s *Store) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if actual < 0 {
		return fmt.Errorf("%w: settle %q with actual %v", budget.ErrInvalidArgument, id, actual)
	}
	if err := validItems(items); err != nil {
		return err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.expire(now)
	if r, ok := s.res[id]; ok {
		s.release(r)
	}
	for _, c := range s.entries(items, now) {
		c.pending = money.Add(c.pending, actual)
	}
	return nil
}

// expire releases the reservations whose TTL has passed at now. Called
// with s.mu held.
func (s *Store) expire(now time.Time) {
	for len(s.expiry) > 0 && !s.expiry[0].at.After(now) {
		e := heap.Pop(&s.expiry).(expiryEntry)
		if r, ok := s.res[e.id]; ok && r.expires.Equal(e.at) {
			s.release(r)
		}
	}
}

// release ends reservation r, taking its amount off its counters.
func (s *Store) release(r *reservation) {
	delete(s.res, r.id)
	for _, k := range r.keys {
		if c, ok := s.counters[k]; ok {
			c.reserved = max(c.reserved-r.amount, 0)
		}
	}
}

// admit records reservation id of amount on cs.
func (s *Store) admit(id string, amount money.Nano, cs []*counter, expires time.Time) {
	r := &reservation{id: id, amount: amount, expires: expires, keys: make([]string, len(cs))}
	for i, c := range cs {
		r.keys[i] = c.key
		c.reserved = money.Add(c.reserved, amount)
		c.noteDemand(amount)
	}
	s.res[id] = r
	heap.Push(&s.expiry, expiryEntry{at: expires, id: id})
}

// grow adds granted to reservation id (live) or creates it holding
// granted alone, and renews its expiry.
func (s *Store) grow(id string, granted money.Nano, cs []*counter, expires time.Time) {
	r, ok := s.res[id]
	if !ok {
		s.admit(id, granted, cs, expires)
		return
	}
	r.amount = money.Add(r.amount, granted)
	for _, c := range cs {
		c.reserved = money.Add(c.reserved, granted)
		c.noteDemand(granted)
	}
	// Counters of the call that the reservation did not hold yet get
	// its whole amount: the contract extends it on the items given.
	for _, c := range cs {
		found := false
		for _, k := range r.keys {
			if k == c.key {
				found = true
				break
			}
		}
		if !found {
			r.keys = append(r.keys, c.key)
			c.reserved = money.Add(c.reserved, r.amount-granted)
		}
	}
	r.expires = expires
	heap.Push(&s.expiry, expiryEntry{at: expires, id: id})
}
