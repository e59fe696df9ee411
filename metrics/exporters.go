package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendguard/spendguard/exporters/sink"
)

// ExporterStats is one exporter's queue and delivery counters, as the
// exporter fan-out reports them at scrape time (sink.QueueStats).
type ExporterStats = sink.QueueStats

// SetExporterStats makes the exporter series come from f, called at each
// scrape (the app passes the fan-out's Stats). f must be cheap and safe for
// concurrent use.
func (m *Metrics) SetExporterStats(f func() []ExporterStats) {
	if m == nil {
		return
	}
	m.exporters.mu.Lock()
	m.exporters.stats = f
	m.exporters.mu.Unlock()
}

var (
	descDepth = prometheus.NewDesc(Namespace+"_exporter_queue_depth",
		"Reports waiting in an exporter's queue or being delivered.", []string{"exporter"}, nil)
	descCapacity = prometheus.NewDesc(Namespace+"_exporter_queue_capacity",
		"Reports an exporter's queue holds at most; more are dropped.", []string{"exporter"}, nil)
	descSent = prometheus.NewDesc(Namespace+"_exporter_sent_total",
		"Items an exporter delivered (reports, or alerts for the webhook).", []string{"exporter"}, nil)
	descRetries = prometheus.NewDesc(Namespace+"_exporter_retries_total",
		"Failed delivery attempts that were retried.", []string{"exporter"}, nil)
	descDropped = prometheus.NewDesc(Namespace+"_exporter_dropped_total",
		"Items an exporter did not deliver, by reason: queue_full, failed (permanent error or retries spent), shutdown.",
		[]string{"exporter", "reason"}, nil)
)

// exporterCollector turns ExporterStats into metrics at scrape time.
type exporterCollector struct {
	mu    sync.Mutex
	stats func() []ExporterStats
}

func (c *exporterCollector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{descDepth, descCapacity, descSent, descRetries, descDropped} {
		ch <- d
	}
}

func (c *exporterCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	f := c.stats
	c.mu.Unlock()
	if f == nil {
		return
	}
	for _, s := range f() {
		ch <- prometheus.MustNewConstMetric(descDepth, prometheus.GaugeValue, float64(s.QueueDepth), s.Exporter)
		ch <- prometheus.MustNewConstMetric(descCapacity, prometheus.GaugeValue, float64(s.QueueCapacity), s.Exporter)
		ch <- prometheus.MustNewConstMetric(descSent, prometheus.CounterValue, float64(s.Sent), s.Exporter)
		ch <- prometheus.MustNewConstMetric(descRetries, prometheus.CounterValue, float64(s.Retries), s.Exporter)
		for _, d := range []struct {
			reason string
			n      uint64
		}{{"queue_full", s.DroppedFull}, {"failed", s.DroppedFailed}, {"shutdown", s.DroppedShutdown}} {
			ch <- prometheus.MustNewConstMetric(descDropped, prometheus.CounterValue, float64(d.n), s.Exporter, d.reason)
		}
	}
}
