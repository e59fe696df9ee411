package metrics

import (
	"strings"
	"sync"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendguard/spendguard/exporters/sink"
)

// usdCounterVec is a counter vector of money that adds integer nano-USD
// exactly and shows USD only when scraped, so that a total never drifts
// the way a float64 sum of small costs does (0.0024836 stays 0.0024836)
// and reconciles with the ledger to the nano-USD.
type usdCounterVec struct {
	desc *prometheus.Desc
	mu   sync.RWMutex
	by   map[string]*usdSeries
}

type usdSeries struct {
	labels []string
	nano   atomic.Int64
}

func newUSDCounterVec(name, help string, labels []string) *usdCounterVec {
	return &usdCounterVec{
		desc: prometheus.NewDesc(Namespace+"_"+name, help, labels, nil),
		by:   map[string]*usdSeries{},
	}
}

// series returns the series of the label values, made if need be. A
// series is never removed, so it may be held and added to directly.
func (v *usdCounterVec) series(labels []string) *usdSeries {
	key := strings.Join(labels, "\xff")
	v.mu.RLock()
	s := v.by[key]
	v.mu.RUnlock()
	if s == nil {
		v.mu.Lock()
		if s = v.by[key]; s == nil {
			s = &usdSeries{labels: append([]string(nil), labels...)}
			v.by[key] = s
		}
		v.mu.Unlock()
	}
	return s
}

func (v *usdCounterVec) Describe(ch chan<- *prometheus.Desc) { ch <- v.desc }

func (v *usdCounterVec) Collect(ch chan<- prometheus.Metric) {
	v.mu.RLock()
	defer v.mu.RUnlock()
	for _, s := range v.by {
		ch <- prometheus.MustNewConstMetric(v.desc, prometheus.CounterValue, sink.USDFloat(s.nano.Load()), s.labels...)
	}
}
