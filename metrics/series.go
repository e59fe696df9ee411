package metrics

import (
	"slices"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
)

// lazyObserver is one series of a histogram vector with fixed label
// values, resolved at its first observation and then used directly: no
// label hashing and no lock per observation. Resolving lazily keeps the
// scrape as it was with WithLabelValues on every call, where a series no
// one observed is absent rather than a zero.
//
// A held series stays valid because spendguard never deletes a series nor
// resets a vector; code that starts doing so must drop held series too.
type lazyObserver struct {
	once   sync.Once
	vec    *prometheus.HistogramVec
	labels []string
	obs    prometheus.Observer
}

func newLazyObserver(vec *prometheus.HistogramVec, labels ...string) *lazyObserver {
	return &lazyObserver{vec: vec, labels: labels}
}

// Observe adds v to the series, resolving it first if need be.
func (l *lazyObserver) Observe(v float64) {
	l.once.Do(func() { l.obs = l.vec.WithLabelValues(l.labels...) })
	l.obs.Observe(v)
}

// Message phases the processor uses: their series are resolved once.
const (
	phaseRequestHeaders = iota
	phaseRequestBody
	phaseResponseHeaders
	phaseResponseBody
	phaseTrailers
	numPhases
)

// phaseNames are the phase labels, by phase index.
var phaseNames = [numPhases]string{
	phaseRequestHeaders:  "request_headers",
	phaseRequestBody:     "request_body",
	phaseResponseHeaders: "response_headers",
	phaseResponseBody:    "response_body",
	phaseTrailers:        "trailers",
}

// phaseIndex returns the index of a known phase, or -1.
func phaseIndex(phase string) int { return slices.Index(phaseNames[:], phase) }

// Store operations InstrumentStore times: their series are resolved once.
const (
	opReserve = iota
	opSettle
	opUsage
	opExtend
	numOps
)

// opNames are the operation labels, by op index.
var opNames = [numOps]string{opReserve: "reserve", opSettle: "settle", opUsage: "usage", opExtend: "extend"}

// opIndex returns the index of a known store operation, or -1.
func opIndex(op string) int { return slices.Index(opNames[:], op) }

// hotSeries are the series of the histograms observed on every request,
// by phase, and by store operation and result (0 ok, 1 error).
type hotSeries struct {
	messages [numPhases]*lazyObserver
	store    [numOps][2]*lazyObserver
}

func newHotSeries(messages, store *prometheus.HistogramVec) hotSeries {
	var h hotSeries
	for phase, name := range phaseNames {
		h.messages[phase] = newLazyObserver(messages, name)
	}
	for op, name := range opNames {
		h.store[op] = [2]*lazyObserver{newLazyObserver(store, name, "ok"), newLazyObserver(store, name, "error")}
	}
	return h
}
