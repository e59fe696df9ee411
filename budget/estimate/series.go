package estimate

import (
	"slices"
	"sync"
	"sync/atomic"
)

// MaxPending bounds the observations of one pair waiting for the next
// flush to Samples; past it they are still learned locally but not
// shared (counted by Estimator.Lost).
const MaxPending = 4096

// series is one model and endpoint's window: a ring of the last Window
// completions, the observations not yet appended to the store, and the
// cached estimate. mu guards everything but the atomics, which Estimate
// reads without it.
type series struct {
	model, endpoint, key string

	mu      sync.Mutex
	ring    []int64 // len Window; the n newest values end just before head
	head    int
	n       int
	dirty   bool    // the ring changed since the estimate was computed
	pending []int64 // observed, not yet appended to Samples
	spare   []int64 // the previous pending buffer, reused by the next flush

	count atomic.Int64  // n, for Estimate
	est   atomic.Int64  // the cached estimate
	gen   atomic.Uint64 // configuration generation of est; 0: none yet
}

func newSeries(model, endpoint string, window int) *series {
	return &series{model: model, endpoint: endpoint, key: Key(model, endpoint), ring: make([]int64, window)}
}

// push adds v as the newest value, dropping the oldest when full.
func (s *series) push(v int64) {
	s.ring[s.head] = v
	s.head++
	if s.head == len(s.ring) {
		s.head = 0
	}
	if s.n < len(s.ring) {
		s.n++
		s.count.Store(int64(s.n))
	}
	s.dirty = true
}

// queue adds v to the observations to flush; false when MaxPending are
// waiting already.
func (s *series) queue(v int64) bool {
	if len(s.pending) >= MaxPending {
		return false
	}
	s.pending = append(s.pending, v)
	return true
}

// values appends the window to dst, oldest first.
func (s *series) values(dst []int64) []int64 {
	start := s.head - s.n
	if start < 0 {
		dst = append(dst, s.ring[start+len(s.ring):]...)
		start = 0
	}
	return append(dst, s.ring[start:s.head]...)
}

// replace makes the window the newest values of vs (oldest first).
func (s *series) replace(vs []int64) {
	if len(vs) > len(s.ring) {
		vs = vs[len(vs)-len(s.ring):]
	}
	s.n = copy(s.ring, vs)
	s.head = s.n % len(s.ring)
	s.count.Store(int64(s.n))
	s.dirty = true
}

// resize gives the ring window slots, keeping the newest values.
func (s *series) resize(window int) {
	vs := s.values(make([]int64, 0, s.n))
	s.ring = make([]int64, window)
	s.replace(vs)
}

// scratch holds the sorted copies of windows; a pool, so that the memory
// is per computing goroutine rather than per pair.
var scratch = sync.Pool{New: func() any { return new([]int64) }}

// compute caches the quantile of cfg of the window (0 when empty).
func (s *series) compute(cfg *versioned) {
	var q int64
	if s.n > 0 {
		buf := scratch.Get().(*[]int64)
		vs := s.values((*buf)[:0])
		slices.Sort(vs)
		q = vs[nearestRank(cfg.Quantile, len(vs))-1]
		*buf = vs
		scratch.Put(buf)
	}
	s.est.Store(q)
	s.gen.Store(cfg.gen)
	s.dirty = false
}
