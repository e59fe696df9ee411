package exporters

import (
	"context"
	"errors"
	"fmt"
	"sync"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/exporters/helicone"
	"github.com/spendguard/spendguard/exporters/jsonlog"
	"github.com/spendguard/spendguard/exporters/otlp"
	"github.com/spendguard/spendguard/exporters/postgres"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/webhook"
	"github.com/spendguard/spendguard/metrics"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Extras is what a CostReport alone lacks; see sink.Event for each field.
// Everything in it is read-only once handed over.
type Extras struct {
	RequestJSON []byte
	Budgets     []sink.BudgetState
}

// Fanout hands every report to the metrics and to each configured
// exporter's queue. It implements processor.Reporter.
type Fanout struct {
	metrics     *metrics.Metrics
	exps        []exporter
	wantRequest bool
	wantBudgets bool
	ledger      *postgres.Ledger // nil without exporters.postgres
}

// exporter is one destination behind its own queue.
type exporter interface {
	offer(ev *sink.Event)
	stats() metrics.ExporterStats
	shutdown(ctx context.Context) error
}

// New starts the exporters configured in cfg (validated here again), each
// with its own queue and workers. m (may be nil) receives every report
// synchronously and shows the exporters' queue statistics.
func New(cfg Config, m *metrics.Metrics, log *zap.Logger) (*Fanout, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	f := &Fanout{metrics: m}
	opts := func(name string, batch, workers int) queueOptions {
		return queueOptions{name: name, size: cfg.QueueSize, batch: batch, workers: workers,
			retries: *cfg.MaxRetries, backoff: cfg.RetryBackoff, maxWait: cfg.RetryBackoffMax, timeout: cfg.Timeout}
	}
	var err error
	add := func(name string, build func() (exporter, error)) {
		if err != nil {
			return
		}
		var e exporter
		if e, err = build(); err != nil {
			err = fmt.Errorf("exporters.%s: %w", name, err)
			return
		}
		f.exps = append(f.exps, e)
	}
	if c := cfg.OTLP; c != nil {
		add("otlp", func() (exporter, error) {
			x, err := otlp.New(*c, cfg.ServiceVersion)
			if err != nil {
				return nil, err
			}
			return newEventExporter(opts("otlp", cfg.BatchSize, 1), x, nil, nil, log), nil
		})
	}
	if c := cfg.Helicone; c != nil {
		f.wantRequest = true
		add("helicone", func() (exporter, error) {
			x := helicone.New(*c)
			o := opts("helicone", 1, x.Concurrency())
			o.maxBytes = x.MaxQueueBytes()
			return newEventExporter(o, x, helicone.Accept, helicone.Size, log), nil
		})
	}
	if c := cfg.Webhook; c != nil {
		f.wantBudgets = true
		add("webhook", func() (exporter, error) {
			return newAlertExporter(opts("webhook", 1, 1), webhook.New(*c), log), nil
		})
	}
	if c := cfg.Log; c != nil {
		add("log", func() (exporter, error) {
			x, err := jsonlog.New(*c)
			if err != nil {
				return nil, err
			}
			return newEventExporter(opts("log", cfg.BatchSize, 1), x, nil, nil, log), nil
		})
	}
	if c := cfg.Postgres; c != nil {
		add("postgres", func() (exporter, error) {
			l, err := postgres.Open(*c, m, log)
			if err != nil {
				return nil, err
			}
			f.ledger = l
			return newEventExporter(opts("postgres", cfg.BatchSize, 1), l, nil, nil, log), nil
		})
	}
	if err != nil {
		_ = f.Shutdown(context.Background())
		return nil, err
	}
	m.SetExporterStats(f.Stats)
	return f, nil
}

// Report is ReportWith(r, Extras{}).
func (f *Fanout) Report(r *spendguardv1.CostReport) { f.ReportWith(r, Extras{}) }

// ReportWith records r in the metrics and offers it, with x, to every
// exporter. It never blocks and never waits for a destination: a full
// queue drops the report and counts it. r and x must not be modified
// afterwards.
func (f *Fanout) ReportWith(r *spendguardv1.CostReport, x Extras) {
	if r == nil {
		return
	}
	f.metrics.ObserveReport(r)
	f.metrics.ObserveBudgets(x.Budgets)
	if len(f.exps) == 0 {
		return
	}
	ev := &sink.Event{Report: r, RequestJSON: x.RequestJSON, Budgets: x.Budgets}
	for _, e := range f.exps {
		e.offer(ev)
	}
}

// WantsRequestBody reports whether an exporter uses Extras.RequestJSON
// (Helicone): when false, the processor need not keep the body.
func (f *Fanout) WantsRequestBody() bool { return f.wantRequest }

// WantsBudgets reports whether an exporter uses Extras.Budgets (the
// webhook alerts). The per-scope gauges of the metrics use them too when
// given, so they are worth passing whenever they come cheap.
func (f *Fanout) WantsBudgets() bool { return f.wantBudgets }

// Ledger is the PostgreSQL spend ledger (exporters.postgres), or nil. It
// is closed by Shutdown.
func (f *Fanout) Ledger() *postgres.Ledger { return f.ledger }

// Stats returns every exporter's queue and delivery counters.
func (f *Fanout) Stats() []metrics.ExporterStats {
	out := make([]metrics.ExporterStats, len(f.exps))
	for i, e := range f.exps {
		out[i] = e.stats()
	}
	return out
}

// Shutdown stops accepting reports (later ones are counted as dropped at
// shutdown) and flushes every exporter in parallel until ctx is done;
// what is still undelivered then is dropped and counted. It returns
// ctx's error when the deadline cut a flush short, and close errors.
func (f *Fanout) Shutdown(ctx context.Context) error {
	errs := make([]error, len(f.exps))
	var wg sync.WaitGroup
	for i, e := range f.exps {
		wg.Go(func() { errs[i] = e.shutdown(ctx) })
	}
	wg.Wait()
	return errors.Join(errs...)
}

// eventExporter queues events for a sink.Exporter.
type eventExporter struct {
	q      *queue[*sink.Event]
	x      sink.Exporter
	accept func(*sink.Event) bool
}

func newEventExporter(o queueOptions, x sink.Exporter, accept func(*sink.Event) bool, sizeOf func(*sink.Event) int64, log *zap.Logger) *eventExporter {
	return &eventExporter{x: x, accept: accept, q: newQueue(o, x.Export, sizeOf, log)}
}

func (e *eventExporter) offer(ev *sink.Event) {
	if e.accept == nil || e.accept(ev) {
		e.q.offer(ev)
	}
}

func (e *eventExporter) stats() metrics.ExporterStats { return e.q.stats() }

func (e *eventExporter) shutdown(ctx context.Context) error {
	err := e.q.shutdown(ctx)
	if c, ok := e.x.(sink.Closer); ok {
		err = errors.Join(err, c.Close(ctx))
	}
	return err
}

// alertExporter detects budget cap crossings synchronously (a map lookup
// per budget state, so none is missed when the queue is full) and queues
// the alerts.
type alertExporter struct {
	det *webhook.Sender
	q   *queue[webhook.Alert]
}

func newAlertExporter(o queueOptions, s *webhook.Sender, log *zap.Logger) *alertExporter {
	return &alertExporter{det: s, q: newQueue(o, s.Send, nil, log)}
}

func (a *alertExporter) offer(ev *sink.Event) {
	if len(ev.Budgets) == 0 {
		return
	}
	for _, al := range a.det.Detect(ev.Budgets) {
		a.q.offer(al)
	}
}

func (a *alertExporter) stats() metrics.ExporterStats { return a.q.stats() }

func (a *alertExporter) shutdown(ctx context.Context) error { return a.q.shutdown(ctx) }
