package metrics

import "github.com/prometheus/client_golang/prometheus"

// newPanicCounter is spendguard_stream_panics_total.
func newPanicCounter() prometheus.Counter {
	return prometheus.NewCounter(prometheus.CounterOpts{
		Namespace: Namespace, Name: "stream_panics_total",
		Help: "Panics recovered while processing an ext_proc stream; each ended its stream with an error (and is logged with its stack). Should stay 0.",
	})
}

// ObserveStreamPanic counts one panic the processor recovered
// (processor.PanicObserver).
func (m *Metrics) ObserveStreamPanic() {
	if m == nil {
		return
	}
	m.panics.Inc()
}
