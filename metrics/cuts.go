package metrics

import "github.com/prometheus/client_golang/prometheus"

// newCutCounter is spendguard_streams_cut_total.
func newCutCounter() *prometheus.CounterVec {
	return prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "streams_cut_total",
		Help: "Streamed responses spendguard ended itself because a budget could not pay for more of them, by that budget (or limits.max_request_usd); the client got a final error event and the upstream request was reset.",
	}, []string{"budget"})
}

// ObserveStreamCut counts one stream ended at a cap (processor.CutObserver).
func (m *Metrics) ObserveStreamCut(budget string) {
	if m == nil {
		return
	}
	m.cuts.WithLabelValues(budget).Inc()
}
