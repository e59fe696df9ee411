package exporters_test

import (
	"context"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/exporters/otlp"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	"github.com/spendguard/spendguard/test/otlpsink"
)

// outageStack is a fan-out with one OTLP exporter whose receiver answers
// 503 until told otherwise, with millisecond backoffs and no max_retries.
func outageStack(t *testing.T, retryFor time.Duration) (*exporters.Fanout, *otlpsink.Sink) {
	t.Helper()
	rcv := otlpsink.New()
	t.Cleanup(rcv.Close)
	rcv.SetStatus(http.StatusServiceUnavailable)
	cfg := exporters.Config{QueueSize: 64, BatchSize: 8, RetryFor: retryFor,
		RetryBackoff: time.Millisecond, RetryBackoffMax: 4 * time.Millisecond,
		OTLP: &otlp.Config{Endpoint: rcv.URL() + "/v1/traces"}}
	f, err := exporters.New(cfg, zap.NewNop())
	require.NoError(t, err)
	return f, rcv
}

func otlpStats(f *exporters.Fanout) sink.QueueStats { return f.Stats()[0] }

// Must show: a receiver down for many more attempts than the old default
// of 5 retries, back well within retry_for, loses nothing; Report returns
// at once all along (the loop would hang otherwise), and past the queue's
// size it drops and counts. Counts only: the outage is measured in
// attempts the receiver saw, not in time.
func TestAnOutageShorterThanRetryForLosesNothing(t *testing.T) {
	f, rcv := outageStack(t, time.Hour)
	const n = 40 // fits the queue
	for i := range n {
		f.Report(&sink.Event{Report: sinktest.Report(i)})
	}
	require.Eventually(t, func() bool { return rcv.Arrived() >= 20 }, time.Minute, time.Millisecond,
		"the first batch is tried again and again")
	for i := range 100 { // while a batch is retried, past the queue's size
		f.Report(&sink.Event{Report: sinktest.Report(n + i)})
	}
	s := otlpStats(f)
	assert.Zero(t, s.Sent)
	assert.Zero(t, s.DroppedFailed, "still retrying")
	full := s.DroppedFull
	assert.Positive(t, full)

	rcv.SetStatus(0) // back
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.Shutdown(ctx))

	s = otlpStats(f)
	assert.Equal(t, uint64(n+100)-full, s.Sent, "everything accepted was delivered")
	assert.Equal(t, full, s.DroppedFull)
	assert.Zero(t, s.DroppedFailed+s.DroppedShutdown)
	assert.GreaterOrEqual(t, s.Retries, uint64(19))
	ids := map[any]bool{}
	for _, sp := range rcv.Spans() {
		ids[sp.Attrs["spendguard.request_id"]] = true
	}
	assert.Len(t, ids, int(s.Sent), "one span per delivered report, none twice")
	for i := range n {
		assert.True(t, ids[sinktest.Report(i).RequestId], "report %d", i)
	}
}

// Must show: a receiver that stays down past retry_for costs exactly what
// the queue held, counted as failed, and the exporter delivers again when
// it comes back.
func TestAnOutageLongerThanRetryForDropsWhatItHeld(t *testing.T) {
	f, rcv := outageStack(t, 20*time.Millisecond)
	const n = 40
	for i := range n {
		f.Report(&sink.Event{Report: sinktest.Report(i)})
	}
	require.Eventually(t, func() bool {
		s := otlpStats(f)
		return s.QueueDepth == 0 && s.DroppedFailed == n
	}, time.Minute, time.Millisecond, "every batch is given up")
	s := otlpStats(f)
	assert.Zero(t, s.Sent)
	assert.Zero(t, s.DroppedFull)
	assert.GreaterOrEqual(t, rcv.Arrived(), int64(n/8), "each batch was tried")

	rcv.SetStatus(0)
	f.Report(&sink.Event{Report: sinktest.Report(n)})
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	require.NoError(t, f.Shutdown(ctx))
	s = otlpStats(f)
	assert.Equal(t, uint64(1), s.Sent)
	assert.Equal(t, uint64(n), s.DroppedFailed)
	require.Len(t, rcv.Spans(), 1)
}
