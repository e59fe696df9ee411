package exporters

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/spendguard/spendguard/exporters/sink"
)

func testOptions() queueOptions {
	return queueOptions{name: "test", size: 8, batch: 4, workers: 1, retries: 3,
		backoff: 100 * time.Millisecond, maxWait: time.Second, timeout: time.Second}
}

// recorder is a send function that records batches and fails as told.
type recorder struct {
	mu      sync.Mutex
	batches [][]int
	calls   atomic.Int64
	fail    func(call int64) error
}

func (r *recorder) send(_ context.Context, b []int) error {
	n := r.calls.Add(1)
	if r.fail != nil {
		if err := r.fail(n); err != nil {
			return err
		}
	}
	r.mu.Lock()
	r.batches = append(r.batches, append([]int(nil), b...))
	r.mu.Unlock()
	return nil
}

func (r *recorder) items() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, b := range r.batches {
		out = append(out, b...)
	}
	return out
}

// accounted is the invariant: every offered item is counted once.
func accounted(s sink.QueueStats) uint64 {
	return s.Sent + s.DroppedFull + s.DroppedFailed + s.DroppedShutdown
}

func TestQueueDeliversEverythingInOrderAndFlushesOnShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{}
		o := testOptions()
		o.size = 100
		q := newQueue(o, rec.send, nil, zap.NewNop())
		for i := range 50 {
			require.True(t, q.offer(i))
		}
		require.NoError(t, q.shutdown(context.Background()))
		want := make([]int, 50)
		for i := range want {
			want[i] = i
		}
		assert.Equal(t, want, rec.items())
		for _, b := range rec.batches {
			assert.LessOrEqual(t, len(b), o.batch)
		}
		s := q.stats()
		assert.Equal(t, uint64(50), s.Sent)
		assert.Zero(t, s.QueueDepth)
		assert.False(t, q.offer(99), "closed")
		assert.Equal(t, uint64(1), q.stats().DroppedShutdown)
	})
}

func TestQueueDropsAndCountsWhenFullWithoutBlocking(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		rec := &recorder{fail: func(int64) error { <-release; return nil }}
		q := newQueue(testOptions(), rec.send, nil, zap.NewNop())
		require.True(t, q.offer(0))
		synctest.Wait() // the worker holds item 0 in a delivery that waits for release
		accepted := 1
		for i := 1; i < 100; i++ {
			if q.offer(i) {
				accepted++
			}
		}
		assert.Equal(t, 1+8, accepted, "one in delivery plus a full queue")
		s := q.stats()
		assert.Equal(t, uint64(91), s.DroppedFull)
		assert.Equal(t, 9, s.QueueDepth)
		close(release)
		require.NoError(t, q.shutdown(context.Background()))
		s = q.stats()
		assert.Equal(t, uint64(9), s.Sent)
		assert.Equal(t, uint64(100), accounted(s))
	})
}

func TestQueueRetriesWithBackoffThenSucceeds(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		rec := &recorder{fail: func(call int64) error {
			if call <= 2 {
				return errors.New("connection refused")
			}
			return nil
		}}
		q := newQueue(testOptions(), rec.send, nil, zap.NewNop())
		q.offer(7)
		require.NoError(t, q.shutdown(context.Background()))
		s := q.stats()
		assert.Equal(t, uint64(1), s.Sent)
		assert.Equal(t, uint64(2), s.Retries)
		assert.Equal(t, []int{7}, rec.items())
	})
}

func TestQueueGivesUpOnPermanentErrorsAndSpentRetries(t *testing.T) {
	for _, tc := range []struct {
		name     string
		err      error
		attempts int64 // per batch
	}{
		{"permanent", sink.Permanent(errors.New("HTTP 400")), 1},
		{"transient", errors.New("HTTP 503"), 4},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				rec := &recorder{fail: func(int64) error { return tc.err }}
				q := newQueue(testOptions(), rec.send, nil, zap.NewNop())
				q.offer(1)
				q.offer(2)
				require.NoError(t, q.shutdown(context.Background()))
				s := q.stats()
				assert.Equal(t, uint64(2), s.DroppedFailed)
				// The worker may take the two items as one batch or as two.
				calls := rec.calls.Load()
				batches := calls / tc.attempts
				assert.Contains(t, []int64{1, 2}, batches)
				assert.Equal(t, batches*tc.attempts, calls, "every batch tried 1+retries times")
				assert.Equal(t, uint64(batches*(tc.attempts-1)), s.Retries)
			})
		})
	}
}

func TestQueueShutdownDeadlineCancelsAndCountsTheRest(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		hang := func(ctx context.Context, _ []int) error { <-ctx.Done(); return ctx.Err() }
		o := testOptions()
		o.timeout = time.Hour
		q := newQueue(o, hang, nil, zap.NewNop())
		for i := range 6 {
			q.offer(i)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := q.shutdown(ctx)
		assert.ErrorIs(t, err, context.DeadlineExceeded)
		s := q.stats()
		assert.Equal(t, uint64(6), s.DroppedShutdown)
		assert.Zero(t, s.Sent)
		assert.Zero(t, s.QueueDepth)
	})
}

func TestQueueByteBudget(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		release := make(chan struct{})
		send := func(context.Context, []int) error { <-release; return nil }
		o := testOptions()
		o.maxBytes = 10
		o.batch = 1
		q := newQueue(o, send, func(n int) int64 { return int64(n) }, zap.NewNop())
		assert.True(t, q.offer(6))
		assert.False(t, q.offer(5), "6+5 > 10")
		assert.True(t, q.offer(4))
		close(release)
		require.NoError(t, q.shutdown(context.Background()))
		assert.Zero(t, q.bytes.Load())
		assert.Equal(t, uint64(1), q.stats().DroppedFull)
	})
}

func TestBackoffWaitIsJitteredAndCapped(t *testing.T) {
	q := &queue[int]{opts: queueOptions{backoff: 100 * time.Millisecond, maxWait: 30 * time.Second}}
	for attempt := range 70 {
		ceil := min(100*time.Millisecond<<min(attempt, 30), 30*time.Second)
		for range 50 {
			w := q.wait(attempt)
			assert.Positive(t, w)
			assert.LessOrEqual(t, w, ceil)
		}
	}
}

// failTimes is a send function that fails every call and records when
// each began (the bubble's fake clock).
type failTimes struct {
	mu    sync.Mutex
	times []time.Time
}

func (f *failTimes) send(context.Context, []int) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.times = append(f.times, time.Now())
	return errors.New("HTTP 503")
}

func TestQueueRetriesForRetryForThenDropsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name        string
		retries     int
		maxAttempts int // 0: not bounded by the count
	}{
		{"no count limit", -1, 0},
		{"count limit later than retry_for", 50, 51},
	} {
		t.Run(tc.name, func(t *testing.T) {
			synctest.Test(t, func(t *testing.T) {
				f := &failTimes{}
				o := testOptions()
				o.retries, o.retryFor = tc.retries, 10*time.Second
				q := newQueue(o, f.send, nil, zap.NewNop())
				start := time.Now()
				q.offer(1)
				require.NoError(t, q.shutdown(context.Background()))
				s := q.stats()
				assert.Equal(t, uint64(1), s.DroppedFailed)
				attempts := len(f.times)
				// Waits are at most maxWait (1s): a retry may only be refused
				// after 9s, so there were at least ten of them.
				assert.GreaterOrEqual(t, attempts, 11, "retried well past the old default of 5")
				if tc.maxAttempts > 0 {
					assert.Less(t, attempts, tc.maxAttempts, "retry_for came first")
				}
				assert.Equal(t, uint64(attempts-1), s.Retries)
				last := f.times[attempts-1]
				assert.LessOrEqual(t, last.Sub(f.times[0]), o.retryFor, "no attempt after retry_for")
				assert.Equal(t, last, time.Now(), "dropped right after the last attempt, without waiting")
				assert.True(t, f.times[0].Equal(start))
			})
		})
	}
}

func TestQueueMaxRetriesComesFirst(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		f := &failTimes{}
		o := testOptions()
		o.retries, o.retryFor = 3, time.Hour
		q := newQueue(o, f.send, nil, zap.NewNop())
		q.offer(1)
		require.NoError(t, q.shutdown(context.Background()))
		assert.Len(t, f.times, 4)
		assert.Equal(t, uint64(1), q.stats().DroppedFailed)
	})
}

// switchable fails every call while down is set.
type switchable struct {
	down atomic.Bool
	rec  recorder
}

func (s *switchable) send(ctx context.Context, b []int) error {
	if s.down.Load() {
		return errors.New("HTTP 503")
	}
	return s.rec.send(ctx, b)
}

// warnsAndInfos returns the messages logged at Info and above, in order.
func warnsAndInfos(logs *observer.ObservedLogs) []string {
	var out []string
	for _, e := range logs.All() {
		if e.Level >= zap.InfoLevel {
			out = append(out, e.Level.String()+": "+e.Message)
		}
	}
	return out
}

// Must show: while a batch is retried, offer keeps returning at once (the
// bubble would deadlock otherwise) and drops past the queue's size; an
// outage shorter than retry_for loses only what did not fit, one longer
// drops what it held; each outage is logged once when it begins and once
// when it ends, whatever the number of batches and drops.
func TestQueueOutagesAreLoggedOnceAndNeverBlockOffer(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zap.DebugLevel)
		dst := &switchable{}
		o := testOptions()
		o.retries, o.retryFor = -1, 10*time.Second
		q := newQueue(o, dst.send, nil, zap.New(core))

		// Outage 1: 5s, shorter than retry_for.
		dst.down.Store(true)
		require.True(t, q.offer(0))
		synctest.Wait() // item 0 is being retried
		accepted := 1
		for i := 1; i < 100; i++ {
			if q.offer(i) {
				accepted++
			}
		}
		assert.Equal(t, 1+o.size, accepted)
		time.Sleep(5 * time.Second)
		assert.Positive(t, q.stats().Retries)
		dst.down.Store(false)
		time.Sleep(time.Minute) // the next retry succeeds; the queue drains
		s := q.stats()
		assert.Equal(t, uint64(accepted), s.Sent, "nothing accepted was lost")
		assert.Equal(t, uint64(100-accepted), s.DroppedFull)
		assert.Zero(t, s.DroppedFailed)
		assert.Equal(t, []int{0, 1, 2, 3, 4, 5, 6, 7, 8}, dst.rec.items())

		// Outage 2: longer than retry_for; what it held is dropped.
		dst.down.Store(true)
		for i := range 3 {
			require.True(t, q.offer(100+i))
		}
		time.Sleep(time.Minute)
		s = q.stats()
		assert.Equal(t, uint64(3), s.DroppedFailed)
		assert.Zero(t, s.QueueDepth)
		dst.down.Store(false)
		require.True(t, q.offer(200))
		require.NoError(t, q.shutdown(context.Background()))
		assert.Equal(t, uint64(accepted+1), q.stats().Sent)

		got := warnsAndInfos(logs)
		require.Len(t, got, 4, "%q", got)
		assert.Equal(t, "warn: exporter test failing: HTTP 503", got[0])
		assert.Equal(t, "info: exporter test delivering again after 5s; 91 dropped meanwhile", roundedOutage(got[1]))
		assert.Equal(t, "warn: exporter test failing: HTTP 503", got[2])
		assert.Regexp(t, `^info: exporter test delivering again after .*; 3 dropped meanwhile$`, got[3])
	})
}

// roundedOutage rounds the outage length of a "delivering again" line to
// whole seconds: the retry that ends it waits a random time of up to 1s.
func roundedOutage(msg string) string {
	const after, semi = "after ", ";"
	i := strings.Index(msg, after)
	j := strings.Index(msg, semi)
	if i < 0 || j < i {
		return msg
	}
	d, err := time.ParseDuration(msg[i+len(after) : j])
	if err != nil {
		return msg
	}
	return msg[:i+len(after)] + d.Truncate(time.Second).String() + msg[j:]
}

func TestQueueLogsAnOutageStillUnderWayAtShutdown(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		core, logs := observer.New(zap.InfoLevel)
		f := &failTimes{}
		o := testOptions()
		o.retries, o.retryFor = -1, time.Hour
		q := newQueue(o, f.send, nil, zap.New(core))
		q.offer(1)
		time.Sleep(time.Minute)
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		assert.ErrorIs(t, q.shutdown(ctx), context.DeadlineExceeded)
		assert.Equal(t, uint64(1), q.stats().DroppedShutdown)
		got := warnsAndInfos(logs)
		require.Len(t, got, 2, "%q", got)
		assert.Equal(t, "warn: exporter test failing: HTTP 503", got[0])
		assert.Equal(t, "warn: exporter test still failing at shutdown, after 1m1s; 1 dropped meanwhile", got[1])
	})
}

func TestRetryForDefaultsToTwoMinutes(t *testing.T) {
	assert.Equal(t, DefaultRetryFor, Config{}.withDefaults().RetryFor)
	assert.Equal(t, time.Second, Config{RetryFor: time.Second}.withDefaults().RetryFor)
	assert.Equal(t, 2*time.Minute, DefaultRetryFor)
}

func TestFailureLinesLeaveOutTheURLsPath(t *testing.T) {
	secret := "https://hooks.example:8443/services/T0/B0/s3cr3t"
	err := fmt.Errorf("webhook: %w", &url.Error{Op: "Post", URL: secret, Err: errors.New("connection refused")})
	got := withoutURL(sink.Permanent(err))
	assert.NotContains(t, got, "s3cr3t")
	assert.Contains(t, got, "https://hooks.example:8443")
	assert.Contains(t, got, "connection refused")
}
