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
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/webhook"
)

// Fanout hands every event to each exporter's queue: those configured in
// Config and those built outside and passed to New (the ledger). It knows
// nothing of the metrics; the app gives them the same events and reads
// Stats.
type Fanout struct {
	exps        []exporter
	wantRequest bool
	wantBudgets bool
}

// exporter is one destination behind its own queue.
type exporter interface {
	offer(ev *sink.Event)
	stats() sink.QueueStats
	shutdown(ctx context.Context) error
}

// Named is an exporter built outside this package, run by the fan-out like
// a configured one: behind its own queue of Config.BatchSize batches, its
// statistics under Name. The PostgreSQL ledger is passed in this way, as
// the app also reads it (recovery, the spend API).
type Named struct {
	Name     string
	Exporter sink.Exporter
}

// New starts the exporters configured in cfg (validated here again; its
// Postgres section is opened by the caller and passed in extra), then
// those of extra, each with its own queue and workers. New owns extra from
// then on: Shutdown closes each one that is a sink.Closer, and so does New
// when it fails.
func New(cfg Config, log *zap.Logger, extra ...Named) (*Fanout, error) {
	if err := cfg.Validate(); err != nil {
		closeAll(extra)
		return nil, err
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	f := &Fanout{}
	retries := -1 // no count limit: retry_for alone bounds the retries
	if cfg.MaxRetries != nil {
		retries = *cfg.MaxRetries
	}
	opts := func(name string, batch, workers int) queueOptions {
		return queueOptions{name: name, size: cfg.QueueSize, batch: batch, workers: workers, retries: retries,
			retryFor: cfg.RetryFor, backoff: cfg.RetryBackoff, maxWait: cfg.RetryBackoffMax, timeout: cfg.Timeout}
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
			w := webhook.New(*c)
			if cfg.AlertClaims != nil {
				w.ShareWith(cfg.AlertClaims, cfg.AlertOwner)
			}
			return newAlertExporter(opts("webhook", 1, 1), w, log), nil
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
	if err != nil {
		_ = f.Shutdown(context.Background())
		closeAll(extra)
		return nil, err
	}
	for _, n := range extra {
		f.exps = append(f.exps, newEventExporter(opts(n.Name, cfg.BatchSize, 1), n.Exporter, nil, nil, log))
	}
	return f, nil
}

// closeAll closes the exporters of extra that hold resources.
func closeAll(extra []Named) {
	for _, n := range extra {
		if c, ok := n.Exporter.(sink.Closer); ok {
			_ = c.Close(context.Background())
		}
	}
}

// Report offers ev to every exporter. It never blocks and never waits for
// a destination: a full queue drops the event and counts it. ev must not
// be modified afterwards.
func (f *Fanout) Report(ev *sink.Event) {
	if ev == nil || ev.Report == nil {
		return
	}
	for _, e := range f.exps {
		e.offer(ev)
	}
}

// WantsRequestBody reports whether an exporter uses Event.RequestJSON
// (Helicone): when false, the processor need not keep the body.
func (f *Fanout) WantsRequestBody() bool { return f.wantRequest }

// WantsBudgets reports whether an exporter uses Event.Budgets (the
// webhook alerts). The per-scope gauges of the metrics use them too when
// given, so they are worth passing whenever they come cheap.
func (f *Fanout) WantsBudgets() bool { return f.wantBudgets }

// Stats returns every exporter's queue and delivery counters.
func (f *Fanout) Stats() []sink.QueueStats {
	out := make([]sink.QueueStats, len(f.exps))
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

func (e *eventExporter) stats() sink.QueueStats { return e.q.stats() }

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

func (a *alertExporter) stats() sink.QueueStats { return a.q.stats() }

func (a *alertExporter) shutdown(ctx context.Context) error { return a.q.shutdown(ctx) }
