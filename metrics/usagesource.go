package metrics

import (
	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// usageSources is spendguard_usage_source_total{source}: forwarded
// requests by where their token counts came from. Its three series exist
// from the start and are resolved once, so counting takes no lookup.
type usageSources struct {
	vec    *prometheus.CounterVec
	series [spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED + 1]prometheus.Counter
}

func newUsageSources() *usageSources {
	vec := prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "usage_source_total",
		Help: "Charged requests by where their token counts came from: reported (the upstream's usage), counted (the model server's /tokenize, pricing.tokenizer), estimated (spendguard's estimate).",
	}, []string{"source"})
	u := &usageSources{vec: vec}
	for _, s := range []spendguardv1.UsageSource{
		spendguardv1.UsageSource_USAGE_SOURCE_REPORTED,
		spendguardv1.UsageSource_USAGE_SOURCE_COUNTED,
		spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED,
	} {
		u.series[s] = vec.WithLabelValues(sink.UsageSourceName(s))
	}
	return u
}

// observe counts a report that has usage; one without (rejected, or
// ended before the upstream answered) is not counted.
func (u *usageSources) observe(s spendguardv1.UsageSource) {
	if s > 0 && int(s) < len(u.series) {
		u.series[s].Inc()
	}
}
