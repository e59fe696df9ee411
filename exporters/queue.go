package exporters

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/exporters/sink"
)

// queueOptions tune one exporter's queue.
type queueOptions struct {
	name     string
	size     int           // items held at most; more are dropped
	maxBytes int64         // bytes held at most (0: no limit); needs sizeOf
	batch    int           // items per delivery at most
	workers  int           // concurrent deliveries
	retries  int           // retries after the first attempt at most; <0: no count limit
	retryFor time.Duration // no retry starts whose wait ends later after the first attempt; 0: no limit
	backoff  time.Duration // wait before the first retry; doubles
	maxWait  time.Duration // longest wait between attempts
	timeout  time.Duration // per attempt
}

// queue is a bounded, non-blocking buffer in front of one destination,
// drained by its own workers. Offer never blocks: when the queue is full
// the item is dropped and counted. A worker takes what is queued (up to
// batch items, without waiting for more) and delivers it, retrying with
// exponential backoff and full jitter until it succeeds, the error is
// permanent, the next wait would end past retryFor since the first
// attempt, the retries are spent, or the queue is shut down.
//
// Every offered item ends up counted exactly once: sent, or dropped
// because the queue was full, because delivery failed, or because
// shutdown's deadline passed first.
//
// Failures are logged once per outage, not per batch: the first failed
// attempt logs "exporter X failing", the next success "exporter X
// delivering again" with the outage's length and what it dropped.
type queue[T any] struct {
	opts   queueOptions
	send   func(ctx context.Context, batch []T) error
	sizeOf func(T) int64
	log    *zap.Logger

	ch       chan T
	mu       sync.RWMutex // held for reading while offering, for writing to close
	closed   bool
	quit     chan struct{} // closed by shutdown: drain, then exit
	runCtx   context.Context
	cancel   context.CancelFunc
	wg       sync.WaitGroup
	bytes    atomic.Int64
	inFlight atomic.Int64

	sent, retries                               atomic.Uint64
	droppedFull, droppedFailed, droppedShutdown atomic.Uint64

	down    atomic.Bool // in an outage: read on the request path without locking
	outMu   sync.Mutex  // orders the outage's start and end between workers
	outFrom time.Time   // first failure of the current outage
	outBase uint64      // dropped() when it began
}

func newQueue[T any](o queueOptions, send func(context.Context, []T) error, sizeOf func(T) int64, log *zap.Logger) *queue[T] {
	o.size = max(o.size, 1)
	o.batch = max(o.batch, 1)
	o.workers = max(o.workers, 1)
	q := &queue[T]{opts: o, send: send, sizeOf: sizeOf, log: log.With(zap.String("exporter", o.name)),
		ch: make(chan T, o.size), quit: make(chan struct{})}
	q.runCtx, q.cancel = context.WithCancel(context.Background())
	q.wg.Add(o.workers)
	for range o.workers {
		go q.work()
	}
	return q
}

// offer enqueues item without blocking; false means it was dropped.
func (q *queue[T]) offer(item T) bool {
	var n int64
	if q.opts.maxBytes > 0 && q.sizeOf != nil {
		n = q.sizeOf(item)
	}
	q.mu.RLock()
	defer q.mu.RUnlock()
	if q.closed {
		q.droppedShutdown.Add(1)
		return false
	}
	if n > 0 && q.bytes.Add(n) > q.opts.maxBytes {
		q.bytes.Add(-n)
		q.dropFull()
		return false
	}
	select {
	case q.ch <- item:
		return true
	default:
		q.bytes.Add(-n)
		q.dropFull()
		return false
	}
}

// dropFull counts a drop and logs the 1st, 2nd, 4th, 8th... so that a
// slow destination cannot flood the log from the request path. During an
// outage it logs nothing: the line that ends the outage counts the drops.
func (q *queue[T]) dropFull() {
	if n := q.droppedFull.Add(1); n&(n-1) == 0 && !q.down.Load() {
		q.log.Warn("exporter queue full: dropping reports", zap.Uint64("dropped_total", n))
	}
}

func (q *queue[T]) work() {
	defer q.wg.Done()
	batch := make([]T, 0, q.opts.batch)
	for {
		select {
		case item := <-q.ch:
			batch = q.fill(append(batch[:0], item))
			q.deliver(batch)
		case <-q.quit:
			for {
				batch = q.fill(batch[:0])
				if len(batch) == 0 {
					return
				}
				q.deliver(batch)
			}
		}
	}
}

// fill adds queued items to batch up to the batch size, without waiting.
func (q *queue[T]) fill(batch []T) []T {
	for len(batch) < q.opts.batch {
		select {
		case item := <-q.ch:
			batch = append(batch, item)
		default:
			return batch
		}
	}
	return batch
}

func (q *queue[T]) deliver(batch []T) {
	n := int64(len(batch))
	q.inFlight.Add(n)
	defer func() {
		q.inFlight.Add(-n)
		if q.opts.maxBytes > 0 && q.sizeOf != nil {
			for _, it := range batch {
				q.bytes.Add(-q.sizeOf(it))
			}
		}
		clear(batch) // let the events go
	}()
	var first time.Time
	for attempt := 0; ; attempt++ {
		if q.runCtx.Err() != nil {
			q.droppedShutdown.Add(uint64(n))
			return
		}
		if attempt == 0 {
			first = time.Now()
		}
		ctx, cancel := context.WithTimeout(q.runCtx, q.opts.timeout)
		err := q.send(ctx, batch)
		cancel()
		if err == nil {
			q.sent.Add(uint64(n))
			q.delivering()
			return
		}
		if q.runCtx.Err() != nil {
			q.droppedShutdown.Add(uint64(n))
			return
		}
		q.failing(err)
		w := q.wait(attempt)
		if sink.IsPermanent(err) || !q.mayRetry(attempt, time.Since(first)+w) {
			q.droppedFailed.Add(uint64(n))
			q.log.Debug("exporter delivery failed; dropping", zap.Int("items", int(n)),
				zap.Int("attempts", attempt+1), zap.Bool("permanent", sink.IsPermanent(err)), zap.String("error", withoutURL(err)))
			return
		}
		q.retries.Add(1)
		if !q.sleep(w) {
			q.droppedShutdown.Add(uint64(n))
			return
		}
	}
}

// mayRetry reports whether a retry after attempt (0 for the first) may
// start, its wait ending at elapsed since the batch's first attempt.
func (q *queue[T]) mayRetry(attempt int, elapsed time.Duration) bool {
	if q.opts.retries >= 0 && attempt >= q.opts.retries {
		return false
	}
	return q.opts.retryFor <= 0 || elapsed <= q.opts.retryFor
}

// dropped is everything dropped so far, whatever the reason.
func (q *queue[T]) dropped() uint64 {
	return q.droppedFull.Load() + q.droppedFailed.Load() + q.droppedShutdown.Load()
}

// failing starts an outage at a failed attempt unless one is under way:
// one log line per outage, however many batches fail in it.
func (q *queue[T]) failing(err error) {
	if q.down.Load() {
		return
	}
	q.outMu.Lock()
	defer q.outMu.Unlock()
	if q.down.Load() {
		return
	}
	q.outFrom, q.outBase = time.Now(), q.dropped()
	q.down.Store(true)
	fields := []zap.Field{zap.Bool("permanent", sink.IsPermanent(err)), zap.Duration("retry_for", q.opts.retryFor)}
	if q.opts.retries >= 0 {
		fields = append(fields, zap.Int("max_retries", q.opts.retries))
	}
	q.log.Warn("exporter "+q.opts.name+" failing: "+withoutURL(err), fields...)
}

// withoutURL is err's text with the URL of a *url.Error (which net/http
// puts in every transport error) cut to its scheme and host: a webhook's
// path is a secret.
func withoutURL(err error) string {
	msg := err.Error()
	var ue *url.Error
	if errors.As(err, &ue) && ue.URL != "" {
		short := "the destination"
		if u, perr := url.Parse(ue.URL); perr == nil && u.Host != "" {
			short = u.Scheme + "://" + u.Host
		}
		msg = strings.ReplaceAll(msg, strconv.Quote(ue.URL), short)
		msg = strings.ReplaceAll(msg, ue.URL, short)
	}
	return msg
}

// delivering ends the outage under way, if any, at a successful delivery.
func (q *queue[T]) delivering() {
	if !q.down.Load() {
		return
	}
	q.outMu.Lock()
	defer q.outMu.Unlock()
	if !q.down.Load() {
		return
	}
	q.down.Store(false)
	d, lost := time.Since(q.outFrom), q.dropped()-q.outBase
	q.log.Info(fmt.Sprintf("exporter %s delivering again after %s; %d dropped meanwhile", q.opts.name, d.Round(time.Millisecond), lost),
		zap.Duration("outage", d), zap.Uint64("dropped", lost))
}

// stillFailing logs, at shutdown, an outage that has not ended.
func (q *queue[T]) stillFailing() {
	q.outMu.Lock()
	defer q.outMu.Unlock()
	if !q.down.Load() {
		return
	}
	d, lost := time.Since(q.outFrom), q.dropped()-q.outBase
	q.log.Warn(fmt.Sprintf("exporter %s still failing at shutdown, after %s; %d dropped meanwhile", q.opts.name, d.Round(time.Millisecond), lost),
		zap.Duration("outage", d), zap.Uint64("dropped", lost))
}

// wait is the pause before retry number attempt+1: a uniformly random
// duration up to backoff*2^attempt, capped at maxWait ("full jitter", so
// that many replicas retrying a recovered destination do not align).
func (q *queue[T]) wait(attempt int) time.Duration {
	ceil := q.opts.backoff
	for i := 0; i < attempt && ceil < q.opts.maxWait; i++ {
		ceil *= 2
	}
	ceil = min(ceil, q.opts.maxWait)
	if ceil <= 0 {
		return 0
	}
	return rand.N(ceil) + 1
}

// sleep waits d unless the queue is cancelled first (then false).
func (q *queue[T]) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-q.runCtx.Done():
		return false
	}
}

// shutdownGrace bounds the wait for workers once the deadline has passed
// and their deliveries were cancelled.
const shutdownGrace = 2 * time.Second

// shutdown stops accepting items and delivers what is queued until ctx is
// done; then it cancels the deliveries in progress and counts what was not
// delivered as dropped. It returns ctx's error when the deadline cut the
// flush short.
func (q *queue[T]) shutdown(ctx context.Context) error {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return nil
	}
	q.closed = true
	q.mu.Unlock()
	close(q.quit)
	done := make(chan struct{})
	go func() { q.wg.Wait(); close(done) }()
	select {
	case <-done:
		q.cancel()
		q.stillFailing()
		return nil
	case <-ctx.Done():
	}
	q.cancel()
	t := time.NewTimer(shutdownGrace)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		q.log.Warn("exporter did not stop within the shutdown grace period")
	}
	q.stillFailing()
	return ctx.Err()
}

func (q *queue[T]) stats() sink.QueueStats {
	return sink.QueueStats{
		Exporter:        q.opts.name,
		QueueDepth:      len(q.ch) + int(q.inFlight.Load()),
		QueueCapacity:   q.opts.size,
		Sent:            q.sent.Load(),
		Retries:         q.retries.Load(),
		DroppedFull:     q.droppedFull.Load(),
		DroppedFailed:   q.droppedFailed.Load(),
		DroppedShutdown: q.droppedShutdown.Load(),
	}
}
