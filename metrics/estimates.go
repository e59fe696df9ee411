package metrics

import (
	"sync"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendguard/spendguard/budget/estimate"
)

// SetOutputEstimates makes the learned output estimate series come from
// f, called at each scrape (the app passes the estimator's Snapshot
// series). f must be safe for concurrent use. There is one series per
// model and endpoint the estimator knows, at most its MaxKeys.
func (m *Metrics) SetOutputEstimates(f func() []estimate.Series) {
	if m == nil {
		return
	}
	m.estimates.mu.Lock()
	m.estimates.series = f
	m.estimates.mu.Unlock()
}

var (
	descEstimateTokens = prometheus.NewDesc(Namespace+"_output_estimate_tokens",
		"Learned output estimate of a model on an endpoint: the configured quantile of its recent completion tokens, the initial reservation of a streamed response (only once it has min_samples).",
		[]string{"model", "endpoint"}, nil)
	descEstimateSamples = prometheus.NewDesc(Namespace+"_output_estimate_samples",
		"Completions in the window of a model on an endpoint that its learned output estimate is computed from.",
		[]string{"model", "endpoint"}, nil)
)

// estimateCollector turns the estimator's series into metrics at scrape
// time.
type estimateCollector struct {
	mu     sync.Mutex
	series func() []estimate.Series
}

func (c *estimateCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- descEstimateTokens
	ch <- descEstimateSamples
}

func (c *estimateCollector) Collect(ch chan<- prometheus.Metric) {
	c.mu.Lock()
	f := c.series
	c.mu.Unlock()
	if f == nil {
		return
	}
	for _, s := range f() {
		ch <- prometheus.MustNewConstMetric(descEstimateSamples, prometheus.GaugeValue, float64(s.Samples), s.Model, s.Endpoint)
		if s.Active {
			ch <- prometheus.MustNewConstMetric(descEstimateTokens, prometheus.GaugeValue, float64(s.Tokens), s.Model, s.Endpoint)
		}
	}
}
