package exporters_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/exporters/helicone"
	"github.com/spendguard/spendguard/exporters/jsonlog"
	"github.com/spendguard/spendguard/exporters/otlp"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	"github.com/spendguard/spendguard/metrics"
	"github.com/spendguard/spendguard/test/heliconesink"
	"github.com/spendguard/spendguard/test/otlpsink"
)

// stack is a fan-out with a healthy OTLP receiver, a Helicone receiver
// that may misbehave, and a JSON log to /dev/null; with metrics, composed
// with them as the app does (reporting.go).
type stack struct {
	f    *exporters.Fanout
	m    *metrics.Metrics // may be nil
	otlp *otlpsink.Sink
	hel  *heliconesink.Sink
}

// report hands ev to the metrics and the fan-out, as the app does.
func (s *stack) report(ev *sink.Event) {
	s.m.ObserveReport(ev.Report)
	s.m.ObserveBudgets(ev.Budgets)
	s.f.Report(ev)
}

func newStack(tb testing.TB, cfg exporters.Config, m *metrics.Metrics) *stack {
	tb.Helper()
	s := &stack{m: m, otlp: otlpsink.New(), hel: heliconesink.New()}
	tb.Cleanup(s.otlp.Close)
	tb.Cleanup(s.hel.Close)
	cfg.OTLP = &otlp.Config{Endpoint: s.otlp.URL() + "/v1/traces"}
	cfg.Helicone = &helicone.Config{Endpoint: s.hel.URL() + "/custom/v1/log", APIKey: "k"}
	cfg.Log = &jsonlog.Config{Path: "/dev/null"}
	var err error
	s.f, err = exporters.New(cfg, zap.NewNop())
	require.NoError(tb, err)
	m.SetExporterStats(s.f.Stats)
	return s
}

func (s *stack) stats(name string) exporterStats {
	for _, st := range s.f.Stats() {
		if st.Exporter == name {
			return exporterStats(st)
		}
	}
	panic("no exporter " + name)
}

type exporterStats sink.QueueStats

func (s exporterStats) dropped() uint64 { return s.DroppedFull + s.DroppedFailed + s.DroppedShutdown }

// Must show: a receiver that hangs or answers 500 changes neither the
// other exporters' deliveries nor Report (which returns at once: the loop
// below would hang otherwise), and its drops are counted. Counts only.
func TestAFailingReceiverDoesNotDisturbTheOthers(t *testing.T) {
	const n = 200
	for _, mode := range []string{"hang", "500"} {
		t.Run(mode, func(t *testing.T) {
			retries := 2
			cfg := exporters.Config{QueueSize: 16, MaxRetries: &retries, RetryBackoff: time.Millisecond, RetryBackoffMax: time.Millisecond}
			if mode == "hang" {
				cfg.Timeout = time.Hour // only shutdown ends a hanging delivery
			}
			s := newStack(t, cfg, nil)
			if mode == "hang" {
				s.hel.SetHang(true)
			} else {
				s.hel.SetStatus(http.StatusInternalServerError)
			}

			// Reports come in bursts of 10, which fit the healthy queues; the
			// test waits for the outcome between bursts (not for a time).
			healthyCaughtUp := func(sent uint64) func() bool {
				return func() bool { return s.stats("otlp").Sent == sent && s.stats("log").Sent == sent }
			}
			for i := range n {
				s.report(&sink.Event{Report: sinktest.Report(i)})
				if (i+1)%10 == 0 {
					require.Eventually(t, healthyCaughtUp(uint64(i+1)), time.Minute, time.Millisecond)
				}
			}
			if mode == "hang" {
				require.Eventually(t, func() bool { return s.hel.Arrived() == 4 }, time.Minute, time.Millisecond,
					"four workers, each stuck in its first call")
			}
			if mode == "500" {
				require.Eventually(t, func() bool {
					h := s.stats("helicone")
					return h.QueueDepth == 0 && h.dropped() == n
				}, time.Minute, time.Millisecond, "the failing exporter drains")
			}

			ctx, cancel := context.WithTimeout(context.Background(), time.Second)
			defer cancel()
			err := s.f.Shutdown(ctx)

			spans := s.otlp.Spans()
			require.Len(t, spans, n)
			ids := map[any]bool{}
			for _, sp := range spans {
				ids[sp.Attrs["spendguard.request_id"]] = true
			}
			assert.Len(t, ids, n, "one span per report")
			for _, name := range []string{"otlp", "log"} {
				st := s.stats(name)
				assert.Equal(t, uint64(n), st.Sent, name)
				assert.Zero(t, st.dropped(), name)
			}

			h := s.stats("helicone")
			assert.Zero(t, h.Sent)
			assert.Equal(t, uint64(n), h.dropped(), "every report is counted as dropped")
			assert.Empty(t, s.hel.Logs())
			switch mode {
			case "hang":
				assert.ErrorIs(t, err, context.DeadlineExceeded, "the flush was cut short")
				accepted := h.DroppedShutdown
				assert.LessOrEqual(t, accepted, uint64(16+4), "a full queue plus the deliveries in progress")
				assert.Equal(t, uint64(n)-accepted, h.DroppedFull)
				assert.Zero(t, h.DroppedFailed)
				assert.Equal(t, int64(4), s.hel.Arrived(), "and no more")
			case "500":
				require.NoError(t, err)
				assert.Positive(t, h.DroppedFailed)
				assert.Equal(t, uint64(n), h.DroppedFull+h.DroppedFailed)
				assert.Equal(t, int64(h.DroppedFailed)*3, s.hel.Arrived(), "each failed log was tried 1+2 times")
				assert.Equal(t, h.DroppedFailed*2, h.Retries)
			}
		})
	}
}

// BenchmarkReport compares what Report costs the request path with a
// healthy Helicone receiver and with one that hangs (OTLP healthy, JSON log
// to /dev/null in both). The ratio hanging/healthy is the number to watch;
// docs/exporters.md records a run.
func BenchmarkReport(b *testing.B) {
	reports := make([]*sink.Event, 1024)
	for i := range reports {
		reports[i] = &sink.Event{Report: sinktest.Report(i)}
	}
	for _, mode := range []string{"healthy", "hanging"} {
		b.Run(mode, func(b *testing.B) {
			s := newStack(b, exporters.Config{}, nil)
			s.hel.SetHang(mode == "hanging")
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := 0
				for pb.Next() {
					s.report(reports[i&1023])
					i++
				}
			})
			b.StopTimer()
			h := s.stats("helicone")
			b.ReportMetric(float64(h.DroppedFull)/float64(b.N), "helicone-drops/op")
			ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
			defer cancel()
			_ = s.f.Shutdown(ctx)
		})
	}
}

// BenchmarkReportWithMetrics is BenchmarkReport/healthy plus the
// Prometheus counters that the app's reporting updates synchronously.
func BenchmarkReportWithMetrics(b *testing.B) {
	m, err := metrics.New([]string{"tenant", "team", "use_case"})
	require.NoError(b, err)
	s := newStack(b, exporters.Config{}, m)
	reports := make([]*sink.Event, 1024)
	for i := range reports {
		reports[i] = &sink.Event{Report: sinktest.Report(i)}
		reports[i].Report.Scope["team"] = fmt.Sprint("team-", i%10)
	}
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		i := 0
		for pb.Next() {
			s.report(reports[i&1023])
			i++
		}
	})
	b.StopTimer()
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	_ = s.f.Shutdown(ctx)
}
