package budget

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"time"

	"github.com/spendguard/spendguard/internal/money"
)

// IdempotentSettler is a Store whose Settle applies once per reservation
// id, however often it is sent (for a while): a Settle that failed with an
// unknown outcome (a timeout, a lost connection, a store that went away)
// may then be sent again without counting twice. Within the same window
// it refuses a Reserve (ErrDuplicateReservation) or an Extend (ErrSettled)
// of a settled id, so the engine may release by id a reservation whose
// Reserve had an unknown outcome (release.go). The Redis store is one;
// the memory store never fails a Settle.
type IdempotentSettler interface {
	SettleIsIdempotent()
}

// SettleRetry configures Engine.RetrySettles.
type SettleRetry struct {
	// For is how long a failed Settle is retried (default 10m).
	For time.Duration
	// Backoff is the first wait, doubled up to MaxBackoff (defaults 200ms
	// and 10s).
	Backoff, MaxBackoff time.Duration
	// OnGiveUp is told of a Settle that still failed after For (optional).
	// A background release (see OnRelease) that fails that long is
	// reported here too, with actual 0: its reservation then expires
	// after the TTL.
	OnGiveUp func(id string, actual money.Nano, err error)
	// OnRelease is told of a reservation the engine releases in the
	// background because its Reserve failed with an unknown outcome
	// (optional): reason is ReleaseTimeout, ReleaseCanceled or
	// ReleaseConnection and err the Reserve's error. It is called once
	// the release is scheduled, before it is applied.
	OnRelease func(id, reason string, err error)
}

// retrier settles in the background what failed in the foreground.
type retrier struct {
	cfg     SettleRetry
	store   Store
	wg      sync.WaitGroup
	mu      sync.Mutex
	stopped bool
	stop    chan struct{}
	// abandoned counts Settles given up (window over, or Close).
	abandoned atomic.Int64
	// released counts background releases of failed Reserves.
	released atomic.Int64
}

// RetrySettles makes Settle retry, in the background, a store Settle that
// failed, when the store is an IdempotentSettler: the spend of a request
// the upstream already served is then committed once the store answers
// again, instead of being lost. It also makes the engine release, the
// same way, the id of a Reserve that failed with an unknown outcome
// (release.go). Call it before the engine is used; Close stops the
// retries.
func (e *Engine) RetrySettles(cfg SettleRetry) {
	if _, ok := e.store.(IdempotentSettler); !ok {
		return
	}
	if cfg.For <= 0 {
		cfg.For = 10 * time.Minute
	}
	if cfg.Backoff <= 0 {
		cfg.Backoff = 200 * time.Millisecond
	}
	if cfg.MaxBackoff <= 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	e.retry = &retrier{cfg: cfg, store: e.store, stop: make(chan struct{})}
}

// Close stops the background settle retries and waits for them. Settles
// still failing then are lost to the counters (their reservations expire
// after the TTL); it returns how many.
func (e *Engine) Close() int {
	r := e.retry
	if r == nil {
		return 0
	}
	r.mu.Lock()
	if !r.stopped {
		r.stopped = true
		close(r.stop)
	}
	r.mu.Unlock()
	r.wg.Wait()
	return int(r.abandoned.Load())
}

// later retries one Settle until it succeeds, the retry window ends or the
// engine closes. now is the time of the first attempt, so the same counter
// keys and lifetimes are used.
func (r *retrier) later(id string, actual money.Nano, items []Item, now time.Time, first error) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return false
	}
	r.wg.Add(1)
	go func() {
		defer r.wg.Done()
		deadline := time.Now().Add(r.cfg.For)
		wait, err := r.cfg.Backoff, first
		for time.Now().Before(deadline) {
			select {
			case <-r.stop:
				r.abandoned.Add(1)
				return
			case <-time.After(wait):
			}
			ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			err = r.store.Settle(ctx, id, actual, items, now)
			cancel()
			if err == nil || errors.Is(err, ErrInvalidArgument) {
				return
			}
			wait = min(2*wait, r.cfg.MaxBackoff)
		}
		r.abandoned.Add(1)
		if r.cfg.OnGiveUp != nil {
			r.cfg.OnGiveUp(id, actual, err)
		}
	}()
	return true
}
