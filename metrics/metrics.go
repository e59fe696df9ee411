// Package metrics is spendguard's Prometheus instrumentation, served on the
// admin port at /metrics with client_golang.
//
// One *Metrics owns a private registry (no global state) holding:
//
//   - from every CostReport (ObserveReport): requests by decision, spend in
//     USD, tokens by type;
//   - per budget scope: remaining, spent and limit, a cache that requests'
//     reports (ObserveBudgets) and a bounded background refresh from the
//     store (StartBudgetGauges) keep current, so that a scrape never
//     reads the store;
//   - from the processor and the store: ext_proc message latency, store
//     operation latency, reservations in flight, reservations released in
//     the background after a store call of unknown outcome, configuration
//     reloads;
//   - from the exporter fan-out (SetExporterStats, wired by the app):
//     queue depth and capacity, deliveries, retries and drops per exporter;
//   - from the learned output estimate (SetOutputEstimates, wired by the
//     app): each model and endpoint's estimate and samples;
//   - the Go runtime and process collectors.
//
// Names follow Prometheus conventions: one "spendguard_" prefix, snake_case,
// base units (seconds, USD as a plain number with "_usd" in the name),
// "_total" on counters. Only the dimensions listed in
// metrics.label_dimensions become labels, so raw user ids never do unless
// an operator asks for them. Every method is safe for concurrent use and
// is a no-op on a nil *Metrics, so callers need no nil checks.
package metrics

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Namespace prefixes every spendguard metric.
const Namespace = "spendguard"

// reservedLabels are the labels of spendguard's own metrics; a dimension
// of the same name cannot become a label.
var reservedLabels = []string{"decision", "type", "budget", "cap", "phase", "operation", "result", "exporter", "reason"}

// Metrics holds spendguard's collectors in its own registry.
type Metrics struct {
	reg  *prometheus.Registry
	dims []string // metrics.label_dimensions, in order

	requests   *prometheus.CounterVec
	spend      *usdCounterVec
	unmetered  *usdCounterVec
	tokens     *prometheus.CounterVec
	gauges     *budgetGauges // per-scope budget gauges, a cache (budgetgauges.go)
	inFlight   prometheus.Gauge
	panics     prometheus.Counter
	cuts       *prometheus.CounterVec
	released   *prometheus.CounterVec // reservations released in the background (released.go)
	messages   *prometheus.HistogramVec
	store      *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
	exporters  *exporterCollector
	estimates  *estimateCollector // learned output estimates (estimates.go)
	drift      *driftMetrics
	hot        hotSeries    // messages and store series, resolved once
	reports    *reportCache // requests, spend and tokens series by dimension values
	sources    *usageSources
}

// New returns Metrics whose per-request and per-scope series are labelled
// with labelDimensions (metrics.label_dimensions), which must pass
// CheckLabelDimensions (the configuration's compile step runs the same
// check, so a configuration that loads never fails here).
func New(labelDimensions []string) (*Metrics, error) {
	if err := CheckLabelDimensions(labelDimensions); err != nil {
		return nil, err
	}
	dims := slices.Clone(labelDimensions)
	with := func(first ...string) []string { return append(first, dims...) }
	m := &Metrics{reg: prometheus.NewRegistry(), dims: dims}
	m.requests = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "requests_total",
		Help: "Requests on cost paths by what spendguard decided: allowed, downgraded, rejected, unmetered.",
	}, with("decision"))
	m.spend = newUSDCounterVec("spend_usd_total",
		"Spend charged against budgets, in USD (allowed and downgraded requests).", with())
	m.unmetered = newUSDCounterVec("unmetered_spend_usd_total",
		"What unmetered requests (served but not counted, e.g. store failing open) would have cost, in USD.", with())
	m.tokens = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "tokens_total",
		Help: "Tokens of forwarded requests by disjoint type: input (uncached prompt), cached_input, output (non-reasoning completion), reasoning.",
	}, with("type"))
	m.gauges = newBudgetGauges(with)
	m.inFlight = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "reservations_in_flight",
		Help: "Budget reservations held by this replica and not yet settled.",
	})
	m.messages = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "extproc_message_duration_seconds",
		Help:    "Time spendguard took to answer one ext_proc message, by phase.",
		Buckets: []float64{.00005, .0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1},
	}, []string{"phase"})
	m.store = prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Namespace: Namespace, Name: "store_operation_duration_seconds",
		Help:    "Duration of budget store calls, by operation and result (ok or error).",
		Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5},
	}, []string{"operation", "result"})
	m.reloads = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "config_reloads_total",
		Help: "Configuration reloads by result: success, or failure (the last good configuration stays in force).",
	}, []string{"result"})
	m.lastReload = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "config_last_reload_success_timestamp_seconds",
		Help: "Unix time of the last successful configuration load.",
	})
	m.panics = newPanicCounter()
	m.cuts = newCutCounter()
	m.released = newReleaseCounter()
	m.sources = newUsageSources()
	m.hot = newHotSeries(m.messages, m.store)
	m.reports = newReportCache(reportCacheSets)
	m.exporters = &exporterCollector{}
	m.estimates = &estimateCollector{}
	m.drift = newDriftMetrics(m.reg)
	m.reg.MustRegister(m.gauges.collectors()...)
	m.reg.MustRegister(m.requests, m.spend, m.unmetered, m.tokens,
		m.inFlight, m.panics, m.cuts, m.released, m.sources.vec, m.messages, m.store, m.reloads, m.lastReload, m.exporters, m.estimates,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	return m, nil
}

// CheckLabelDimensions returns every reason labelDimensions cannot be
// metrics.label_dimensions, joined, or nil: see CheckLabelDimension.
func CheckLabelDimensions(labelDimensions []string) error {
	var errs []error
	for i := range labelDimensions {
		if err := CheckLabelDimension(labelDimensions, i); err != nil {
			errs = append(errs, fmt.Errorf("metrics.label_dimensions: %w", err))
		}
	}
	return errors.Join(errs...)
}

// CheckLabelDimension says why the i-th of labelDimensions cannot be a
// label, or returns nil. A dimension must be a valid Prometheus label
// name, appear once, and not be one of the labels spendguard uses itself
// (decision, type, budget, cap, phase, operation, result, exporter,
// reason).
func CheckLabelDimension(labelDimensions []string, i int) error {
	d := labelDimensions[i]
	switch {
	case !validLabel(d):
		return fmt.Errorf("%q is not a valid Prometheus label name", d)
	case slices.Contains(reservedLabels, d):
		return fmt.Errorf("%q is a label spendguard uses itself; rename the dimension", d)
	case slices.Contains(labelDimensions[:i], d):
		return fmt.Errorf("%q is listed twice", d)
	}
	return nil
}

func validLabel(s string) bool {
	if s == "" || s[0] == '_' && len(s) > 1 && s[1] == '_' {
		return false
	}
	for i, c := range s {
		if !(c == '_' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || i > 0 && '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// LabelDimensions returns the dimensions that are labels.
func (m *Metrics) LabelDimensions() []string {
	if m == nil {
		return nil
	}
	return slices.Clone(m.dims)
}

// Registry is the registry behind Handler, for tests and for adding
// collectors.
func (m *Metrics) Registry() *prometheus.Registry { return m.reg }

// Handler serves the registry in the Prometheus text format (or
// OpenMetrics when asked), for GET /metrics on the admin port.
func (m *Metrics) Handler() http.Handler {
	return promhttp.HandlerFor(m.reg, promhttp.HandlerOpts{ErrorHandling: promhttp.ContinueOnError, EnableOpenMetrics: true})
}

// ObserveMessage records how long spendguard took to answer one ext_proc
// message. phase must come from a small fixed set; the processor uses
// request_headers, request_body, response_headers, response_body (and
// trailers), whose series are resolved once; another phase costs a
// lookup per call.
func (m *Metrics) ObserveMessage(phase string, d time.Duration) {
	if m == nil {
		return
	}
	if i := phaseIndex(phase); i >= 0 {
		m.hot.messages[i].Observe(d.Seconds())
		return
	}
	m.messages.WithLabelValues(phase).Observe(d.Seconds())
}

// ObserveStore records one budget store call. op is the Store method in
// lower case (reserve, settle, usage, extend); err decides result="ok"|"error".
// The series of those operations are resolved once; another op costs a
// lookup per call.
func (m *Metrics) ObserveStore(op string, d time.Duration, err error) {
	if m == nil {
		return
	}
	if i := opIndex(op); i >= 0 {
		m.observeStore(i, d, err)
		return
	}
	result := "ok"
	if err != nil {
		result = "error"
	}
	m.store.WithLabelValues(op, result).Observe(d.Seconds())
}

// observeStore is ObserveStore for a known operation, by index.
func (m *Metrics) observeStore(op int, d time.Duration, err error) {
	result := 0
	if err != nil {
		result = 1
	}
	m.hot.store[op][result].Observe(d.Seconds())
}

// AddReservationsInFlight moves the reservations-in-flight gauge: +1 when
// a reservation is made, -1 when it is settled (committed or released).
func (m *Metrics) AddReservationsInFlight(delta int) {
	if m == nil {
		return
	}
	m.inFlight.Add(float64(delta))
}

// ObserveReload counts one configuration load or reload: err == nil is a
// success (and sets the last-success timestamp), otherwise a failure.
func (m *Metrics) ObserveReload(err error) {
	if m == nil {
		return
	}
	if err != nil {
		m.reloads.WithLabelValues("failure").Inc()
		return
	}
	m.reloads.WithLabelValues("success").Inc()
	m.lastReload.Set(float64(time.Now().UnixNano()) / 1e9)
}
