package app

import (
	"context"
	"fmt"

	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/exporters/postgres"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/metrics"
	"github.com/spendguard/spendguard/processor"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Reporting, composed here: the processor emits one sink.Event per
// request; reporting hands it to the Prometheus metrics (synchronously),
// to the exporters' fan-out (queued per exporter, the ledger among them)
// and to an optional ReportObserver. Neither the metrics nor the
// exporters know each other: the app also shows the fan-out's queue
// statistics in the metrics.

// ReportObserver receives every request's CostReport after the metrics
// and the exporters (tests). It must not block.
type ReportObserver interface {
	Report(*spendguardv1.CostReport)
}

// reporting is the processor's Reporter.
type reporting struct {
	metrics *metrics.Metrics
	fan     *exporters.Fanout
	extra   ReportObserver // may be nil
}

var _ processor.Reporter = reporting{}

func (r reporting) Report(ev *sink.Event) {
	r.metrics.ObserveReport(ev.Report)
	r.metrics.ObserveBudgets(ev.Budgets)
	r.fan.Report(ev)
	if r.extra != nil {
		r.extra.Report(ev.Report)
	}
}

// gather is what the processor gathers for the configured exporters.
func (r reporting) gather() processor.Gather {
	return processor.Gather{RequestBody: r.fan.WantsRequestBody(), Budgets: r.fan.WantsBudgets()}
}

// startExporters opens the ledger when exporters.postgres is configured
// (in.Ledger: its spool, and a shipper that writes PostgreSQL whenever it
// can — PostgreSQL may be away at start), starts the other exporters
// behind the fan-out (in.Exporters) and shows their statistics in the
// metrics. The processor records each request's ledger row itself
// (processor.Recorder), before answering it. On error nothing is left
// open.
func (in *Instance) startExporters(cfg exporters.Config) error {
	var ledger *postgres.Ledger
	if c := cfg.Postgres; c != nil {
		pc := *c
		pc.BatchSize = cfg.BatchSize
		pc.Instance = in.instanceID()
		l, err := postgres.OpenSpooled(pc, in.Metrics, in.Log)
		if err != nil {
			return fmt.Errorf("exporters.postgres: %w", err)
		}
		ledger = l
		in.Metrics.Registry().MustRegister(l.Collector())
	}
	fan, err := exporters.New(cfg, in.Log)
	if err != nil {
		if ledger != nil {
			_ = ledger.Close(context.Background())
		}
		return err
	}
	in.Exporters, in.Ledger = fan, ledger
	stats := fan.Stats
	if ledger != nil { // the ledger keeps its line in the exporter series
		stats = func() []sink.QueueStats { return append(fan.Stats(), ledger.QueueStats()) }
	}
	in.Metrics.SetExporterStats(stats)
	return nil
}

// instanceID names this process in the ledger's rows: the holder id of
// its budget leases when it holds any (a Redis store with leases), so
// that a dead process's forfeits can be matched with its rows; else a new
// id of the same form (host/pid/random).
func (in *Instance) instanceID() string {
	if in.instance != "" {
		return in.instance
	}
	if rs := stores.AsRedis(in.Store); rs != nil && rs.Leases() != nil {
		in.instance = rs.Leases().Holder()
		return in.instance
	}
	in.instance = lease.NewHolder()
	return in.instance
}
