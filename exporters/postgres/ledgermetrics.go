package postgres

import (
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendguard/spendguard/exporters/sink"
)

// SpoolStats is what the ledger's spool holds and has done since start.
type SpoolStats struct {
	Rows      int64     // rows waiting for PostgreSQL (this process's spool and the orphans it ships)
	Bytes     int64     // their bytes on disk
	Oldest    time.Time // when the oldest of them was spooled; zero when none
	Shipped   uint64    // rows PostgreSQL has taken
	Dropped   map[string]uint64
	Writable  bool   // the last write to PostgreSQL worked (or none failed yet)
	Corrupted uint64 // damaged frames found in the spool (each ends its file's readable part)
}

// SpoolStats returns the spool's numbers; the zero value for a ledger
// opened without one.
func (l *Ledger) SpoolStats() SpoolStats {
	w := l.w
	if w == nil {
		return SpoolStats{}
	}
	st := w.sp.Stats()
	out := SpoolStats{Rows: st.Rows, Bytes: st.Bytes, Oldest: st.Oldest, Shipped: w.shipped.Load(),
		Writable: !w.down.Load(), Corrupted: st.Corrupt, Dropped: make(map[string]uint64, nDropReasons)}
	w.mu.Lock()
	for _, o := range w.orphans {
		os := o.Stats()
		out.Rows += os.Rows
		out.Bytes += os.Bytes
		if !os.Oldest.IsZero() && (out.Oldest.IsZero() || os.Oldest.Before(out.Oldest)) {
			out.Oldest = os.Oldest
		}
	}
	w.mu.Unlock()
	for i, r := range dropReasons {
		out.Dropped[r] = w.dropped[i].Load()
	}
	return out
}

// QueueStats is the spool in the exporters' terms, so that the
// spendguard_exporter_* series keep an exporter="postgres" line: depth
// is the rows waiting, sent the rows shipped; full drops are spool_full,
// failed ones write_error, rejected and undecodable, shutdown ones
// closed. The capacity is in rows at about 250 bytes a row.
func (l *Ledger) QueueStats() sink.QueueStats {
	st := l.SpoolStats()
	qs := sink.QueueStats{Exporter: "postgres", QueueDepth: int(st.Rows), Sent: st.Shipped,
		DroppedFull: st.Dropped["spool_full"], DroppedShutdown: st.Dropped["closed"],
		DroppedFailed: st.Dropped["write_error"] + st.Dropped["rejected"] + st.Dropped["undecodable"]}
	if l.w != nil {
		qs.QueueCapacity = int(l.w.maxBytes / 250)
	}
	return qs
}

// Collector exports SpoolStats as metrics, read at scrape time.
func (l *Ledger) Collector() prometheus.Collector { return spoolCollector{l} }

var (
	descSpoolRows = prometheus.NewDesc("spendguard_ledger_spool_rows",
		"Ledger rows in the local spool, not yet in PostgreSQL.", nil, nil)
	descSpoolBytes = prometheus.NewDesc("spendguard_ledger_spool_bytes",
		"Bytes of the ledger rows in the local spool, not yet in PostgreSQL.", nil, nil)
	descSpoolAge = prometheus.NewDesc("spendguard_ledger_spool_oldest_age_seconds",
		"Age of the oldest ledger row not yet in PostgreSQL (0 when none waits).", nil, nil)
	descShipped = prometheus.NewDesc("spendguard_ledger_rows_shipped_total",
		"Ledger rows written to PostgreSQL from the spool.", nil, nil)
	descDropped = prometheus.NewDesc("spendguard_ledger_rows_dropped_total",
		"Ledger rows that will never reach PostgreSQL, by reason: spool_full (on_full: drop), write_error (the spool's disk), "+
			"rejected (PostgreSQL refused the row; logged whole), undecodable, closed (recorded after shutdown).",
		[]string{"reason"}, nil)
	descDamaged = prometheus.NewDesc("spendguard_ledger_spool_damaged_total",
		"Damaged frames found in the spool's files (the disk changed them); what follows one in its file cannot be read.", nil, nil)
	descWritable = prometheus.NewDesc("spendguard_ledger_writable",
		"1 while the last write to the ledger's PostgreSQL worked, 0 during an outage.", nil, nil)
)

type spoolCollector struct{ l *Ledger }

func (c spoolCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descSpoolRows, descSpoolBytes, descSpoolAge, descShipped, descDropped, descDamaged, descWritable} {
		ch <- d
	}
}

func (c spoolCollector) Collect(ch chan<- prometheus.Metric) {
	st := c.l.SpoolStats()
	age := 0.0
	if !st.Oldest.IsZero() {
		age = max(time.Since(st.Oldest).Seconds(), 0)
	}
	writable := 0.0
	if st.Writable {
		writable = 1
	}
	ch <- prometheus.MustNewConstMetric(descSpoolRows, prometheus.GaugeValue, float64(st.Rows))
	ch <- prometheus.MustNewConstMetric(descSpoolBytes, prometheus.GaugeValue, float64(st.Bytes))
	ch <- prometheus.MustNewConstMetric(descSpoolAge, prometheus.GaugeValue, age)
	ch <- prometheus.MustNewConstMetric(descShipped, prometheus.CounterValue, float64(st.Shipped))
	for _, r := range dropReasons {
		ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(st.Dropped[r]), r)
	}
	ch <- prometheus.MustNewConstMetric(descDamaged, prometheus.CounterValue, float64(st.Corrupted))
	ch <- prometheus.MustNewConstMetric(descWritable, prometheus.GaugeValue, writable)
}
