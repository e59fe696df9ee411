package exporters

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

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
