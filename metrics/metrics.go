// Package metrics is spendguard's Prometheus instrumentation, served on the
// admin port at /metrics with client_golang.
//
// One *Metrics owns a private registry (no global state) holding:
//
//   - from every CostReport (ObserveReport): requests by decision, spend in
//     USD, tokens by type;
//   - from budget states (ObserveBudgets): remaining, spent and limit per
//     budget scope;
//   - from the processor and the store: ext_proc message latency, store
//     operation latency, reservations in flight, configuration reloads;
//   - from the exporter fan-out (SetExporterStats): queue depth and
//     capacity, deliveries, retries and drops per exporter;
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
	remaining  *prometheus.GaugeVec
	spent      *prometheus.GaugeVec
	limit      *prometheus.GaugeVec
	inFlight   prometheus.Gauge
	panics     prometheus.Counter
	messages   *prometheus.HistogramVec
	store      *prometheus.HistogramVec
	reloads    *prometheus.CounterVec
	lastReload prometheus.Gauge
	exporters  *exporterCollector
	drift      *driftMetrics
	hot        hotSeries    // messages and store series, resolved once
	reports    *reportCache // requests, spend and tokens series by dimension values
}

// New returns Metrics whose per-request and per-scope series are labelled
// with labelDimensions (metrics.label_dimensions). A dimension must be a
// valid label name, appear once, and not be one of the labels spendguard
// uses itself (decision, type, budget, cap, phase, operation, result,
// exporter, reason).
func New(labelDimensions []string) (*Metrics, error) {
	var errs []error
	for i, d := range labelDimensions {
		switch {
		case !validLabel(d):
			errs = append(errs, fmt.Errorf("metrics.label_dimensions: %q is not a valid Prometheus label name", d))
		case slices.Contains(reservedLabels, d):
			errs = append(errs, fmt.Errorf("metrics.label_dimensions: %q is a label spendguard uses itself; rename the dimension", d))
		case slices.Contains(labelDimensions[:i], d):
			errs = append(errs, fmt.Errorf("metrics.label_dimensions: %q is listed twice", d))
		}
	}
	if err := errors.Join(errs...); err != nil {
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
	m.remaining = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "budget_remaining_usd",
		Help: "Hard cap minus committed and reserved spend in the current period, per budget scope, in USD.",
	}, with("budget"))
	m.spent = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "budget_spent_usd",
		Help: "Committed spend in the current period, per budget scope, in USD.",
	}, with("budget"))
	m.limit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "budget_limit_usd",
		Help: "A budget scope's caps in USD: cap=\"soft\" or cap=\"hard\".",
	}, with("budget", "cap"))
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
	m.hot = newHotSeries(m.messages, m.store)
	m.reports = newReportCache(reportCacheSets)
	m.exporters = &exporterCollector{}
	m.drift = newDriftMetrics(m.reg)
	m.reg.MustRegister(m.requests, m.spend, m.unmetered, m.tokens, m.remaining, m.spent, m.limit,
		m.inFlight, m.panics, m.messages, m.store, m.reloads, m.lastReload, m.exporters,
		collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	for _, r := range []string{"success", "failure"} {
		m.reloads.WithLabelValues(r)
	}
	return m, nil
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
// lower case (reserve, settle, usage); err decides result="ok"|"error".
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
