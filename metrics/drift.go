package metrics

import "github.com/prometheus/client_golang/prometheus"

// driftMetrics are the reconciliation of spendguard's recorded tokens
// with vLLM's own counters (exporters/postgres), per served model and
// token type (prompt, generation), since this replica started leading the
// reconciliation.
type driftMetrics struct {
	upstream *prometheus.CounterVec
	recorded *prometheus.CounterVec
	drift    *prometheus.GaugeVec
}

func newDriftMetrics(reg *prometheus.Registry) *driftMetrics {
	labels := []string{"model", "type"}
	d := &driftMetrics{
		upstream: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "reconcile_upstream_tokens_total",
			Help: "Tokens vLLM counted itself (vllm:prompt_tokens_total, vllm:generation_tokens_total) in reconciled windows, by model and type (prompt, generation).",
		}, labels),
		recorded: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: Namespace, Name: "reconcile_recorded_tokens_total",
			Help: "Tokens the spend ledger recorded for the same windows and models, by type (prompt, generation).",
		}, labels),
		drift: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Namespace: Namespace, Name: "reconcile_drift_tokens",
			Help: "Upstream minus recorded tokens over all reconciled windows: above 0, vLLM served tokens spendguard did not meter (traffic around Envoy, unread usage).",
		}, labels),
	}
	reg.MustRegister(d.upstream, d.recorded, d.drift)
	return d
}

// ObserveDrift records one reconciled window of one model: the tokens
// vLLM counted and the tokens the ledger recorded.
func (m *Metrics) ObserveDrift(model string, upstreamPrompt, upstreamGeneration, recordedPrompt, recordedGeneration int64) {
	if m == nil {
		return
	}
	for _, x := range []struct {
		typ      string
		up, recd int64
	}{{"prompt", upstreamPrompt, recordedPrompt}, {"generation", upstreamGeneration, recordedGeneration}} {
		m.drift.upstream.WithLabelValues(model, x.typ).Add(float64(x.up))
		m.drift.recorded.WithLabelValues(model, x.typ).Add(float64(x.recd))
		m.drift.drift.WithLabelValues(model, x.typ).Add(float64(x.up - x.recd))
	}
}
