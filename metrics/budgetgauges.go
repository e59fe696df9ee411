package metrics

import (
	"context"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/spendguard/spendguard/exporters/sink"
)

// Per-scope budget gauges
//
// A scrape of /metrics never reads the budget store: the gauges
// spendguard_budget_{remaining,spent,limit}_usd are a cache. Two things
// write to it: every request's report (ObserveBudgets, the scopes that
// request touched) and a background refresh (StartBudgetGauges) that
// lists the store on a bounded schedule, replacing the whole set so that
// scopes of past periods go away. The number of scopes exported is
// capped; a refresh that had to leave scopes out is counted.

// Defaults of BudgetGaugeOptions.
const (
	DefaultBudgetGaugeInterval  = 30 * time.Second
	DefaultBudgetGaugeTimeout   = 10 * time.Second
	DefaultBudgetGaugeMaxScopes = 1_000
)

// BudgetGaugeOptions bound the per-scope gauges and their refresh.
type BudgetGaugeOptions struct {
	// Interval is the time between two refreshes (the first one runs at
	// start); DefaultBudgetGaugeInterval when 0.
	Interval time.Duration
	// Timeout bounds one refresh; DefaultBudgetGaugeTimeout when 0.
	Timeout time.Duration
	// MaxScopes caps the scopes exported; DefaultBudgetGaugeMaxScopes
	// when 0.
	MaxScopes int
}

func (o BudgetGaugeOptions) withDefaults() BudgetGaugeOptions {
	if o.Interval <= 0 {
		o.Interval = DefaultBudgetGaugeInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = DefaultBudgetGaugeTimeout
	}
	if o.MaxScopes <= 0 {
		o.MaxScopes = DefaultBudgetGaugeMaxScopes
	}
	return o
}

// BudgetSource lists the states of the budget scopes to export, at most
// max of them (it may return more; the rest are dropped). truncated
// reports that it stopped before listing every scope. It must give up
// when ctx is done.
type BudgetSource func(ctx context.Context, max int) (states []sink.BudgetState, truncated bool, err error)

// Refresh results, the values of the result label of
// spendguard_budget_metrics_refreshes_total.
const (
	refreshOK        = "ok"
	refreshTruncated = "truncated"
	refreshError     = "error"
)

// budgetGauges is the cache of per-scope series: which scopes have
// series (so a refresh can delete the others) and the bound on them.
type budgetGauges struct {
	remaining, spent, limit *prometheus.GaugeVec
	scopes                  prometheus.Gauge
	refreshes               *prometheus.CounterVec
	lastRefresh             prometheus.Gauge

	mu     sync.Mutex
	max    int
	series map[string][]string // scope key → budget label then one value per dimension
}

func newBudgetGauges(with func(first ...string) []string) *budgetGauges {
	g := &budgetGauges{max: DefaultBudgetGaugeMaxScopes, series: map[string][]string{}}
	g.remaining = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "budget_remaining_usd",
		Help: "Hard cap minus committed and reserved spend in the current period, per budget scope, in USD.",
	}, with("budget"))
	g.spent = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "budget_spent_usd",
		Help: "Committed spend in the current period, per budget scope, in USD.",
	}, with("budget"))
	g.limit = prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "budget_limit_usd",
		Help: "A budget scope's caps in USD: cap=\"soft\" or cap=\"hard\".",
	}, with("budget", "cap"))
	g.scopes = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "budget_metrics_scopes",
		Help: "Budget scopes with per-scope gauges now (at most metrics.budget_gauges.max_scopes).",
	})
	g.refreshes = prometheus.NewCounterVec(prometheus.CounterOpts{
		Namespace: Namespace, Name: "budget_metrics_refreshes_total",
		Help: "Background refreshes of the per-scope budget gauges from the store, by result: ok, truncated (scopes left out by max_scopes or the listing bound), error (the gauges stay as they were).",
	}, []string{"result"})
	g.lastRefresh = prometheus.NewGauge(prometheus.GaugeOpts{
		Namespace: Namespace, Name: "budget_metrics_last_refresh_timestamp_seconds",
		Help: "Unix time of the last refresh of the per-scope budget gauges that read the store (ok or truncated).",
	})
	for _, r := range []string{refreshOK, refreshTruncated, refreshError} {
		g.refreshes.WithLabelValues(r)
	}
	return g
}

func (g *budgetGauges) collectors() []prometheus.Collector {
	return []prometheus.Collector{g.remaining, g.spent, g.limit, g.scopes, g.refreshes, g.lastRefresh}
}

// scopeKey identifies a scope's series.
func scopeKey(labels []string) string { return strings.Join(labels, "\x00") }

// set writes one scope's series; g.mu must be held.
func (g *budgetGauges) set(labels []string, s sink.BudgetState) {
	withCap := func(c string) []string { return append([]string{labels[0], c}, labels[1:]...) }
	g.spent.WithLabelValues(labels...).Set(usd(s.Committed))
	if s.HasHard {
		g.remaining.WithLabelValues(labels...).Set(usd(s.Remaining()))
		g.limit.WithLabelValues(withCap("hard")...).Set(usd(s.Hard))
	} else {
		g.remaining.DeleteLabelValues(labels...)
		g.limit.DeleteLabelValues(withCap("hard")...)
	}
	if s.HasSoft {
		g.limit.WithLabelValues(withCap("soft")...).Set(usd(s.Soft))
	} else {
		g.limit.DeleteLabelValues(withCap("soft")...)
	}
}

// drop deletes one scope's series; g.mu must be held.
func (g *budgetGauges) drop(labels []string) {
	g.spent.DeleteLabelValues(labels...)
	g.remaining.DeleteLabelValues(labels...)
	for _, c := range []string{"hard", "soft"} {
		g.limit.DeleteLabelValues(append([]string{labels[0], c}, labels[1:]...)...)
	}
}

// SetBudgetGaugeOptions sets the cap on exported scopes (the other
// options are StartBudgetGauges'). A lower cap applies from the next
// refresh.
func (m *Metrics) SetBudgetGaugeOptions(opts BudgetGaugeOptions) {
	if m == nil {
		return
	}
	opts = opts.withDefaults()
	m.gauges.mu.Lock()
	m.gauges.max = opts.MaxScopes
	m.gauges.mu.Unlock()
}

// ObserveBudgets updates the per-scope gauges (remaining, spent, soft and
// hard limit) of the scopes in states, as a request's report brings
// them; it never reads the store. A scope is exported only when every
// match key of its budget is a label dimension: a scope keyed on a
// dimension that is not a label (say user) would otherwise share one
// series with all its siblings and make it meaningless. Dimensions the
// budget does not match on are empty labels. A scope without series yet
// gets them only while fewer than the cap (max_scopes) exist.
func (m *Metrics) ObserveBudgets(states []sink.BudgetState) {
	if m == nil || len(states) == 0 {
		return
	}
	g := m.gauges
	g.mu.Lock()
	defer g.mu.Unlock()
	for _, s := range states {
		labels, ok := m.budgetLabels(s)
		if !ok {
			continue
		}
		key := scopeKey(labels)
		if _, have := g.series[key]; !have {
			if len(g.series) >= g.max {
				continue
			}
			g.series[key] = labels
		}
		g.set(labels, s)
	}
	g.scopes.Set(float64(len(g.series)))
}

// RefreshBudgetGauges replaces the per-scope gauges with what src lists
// (at most the cap, within timeout when it is positive): scopes no
// longer listed lose their series. When src fails the gauges stay as
// they were. Each call is counted in spendguard_budget_metrics_refreshes_total.
func (m *Metrics) RefreshBudgetGauges(ctx context.Context, src BudgetSource, timeout time.Duration) error {
	if m == nil {
		return nil
	}
	g := m.gauges
	g.mu.Lock()
	max := g.max
	g.mu.Unlock()
	if timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, timeout)
		defer cancel()
	}
	states, truncated, err := src(ctx, max)
	if err == nil {
		err = ctx.Err() // a source that ignored its deadline still failed
	}
	if err != nil {
		g.refreshes.WithLabelValues(refreshError).Inc()
		return err
	}
	next := map[string][]string{}
	kept := states[:0:0]
	for _, s := range states {
		labels, ok := m.budgetLabels(s)
		if !ok {
			continue
		}
		key := scopeKey(labels)
		if _, dup := next[key]; dup {
			continue
		}
		if len(next) == max {
			truncated = true
			break
		}
		next[key] = labels
		kept = append(kept, s)
	}
	g.mu.Lock()
	for _, s := range kept { // set first, then drop: a scrape meanwhile sees no gap
		labels, _ := m.budgetLabels(s)
		g.set(labels, s)
	}
	for key, labels := range g.series {
		if _, ok := next[key]; !ok {
			g.drop(labels)
		}
	}
	g.series = next
	g.scopes.Set(float64(len(next)))
	g.mu.Unlock()
	result := refreshOK
	if truncated {
		result = refreshTruncated
	}
	g.refreshes.WithLabelValues(result).Inc()
	g.lastRefresh.Set(float64(time.Now().UnixNano()) / 1e9)
	return nil
}

// StartBudgetGauges refreshes the per-scope gauges from src in the
// background: once now, then every opts.Interval, one refresh at a time
// (a refresh that outlasts the interval delays the next one rather than
// overlapping it), each within opts.Timeout, exporting at most
// opts.MaxScopes scopes. onError, when not nil, hears of each failed
// refresh. The returned stop cancels a refresh under way and waits for
// the goroutine to end.
func (m *Metrics) StartBudgetGauges(src BudgetSource, opts BudgetGaugeOptions, onError func(error)) (stop func()) {
	if m == nil {
		return func() {}
	}
	opts = opts.withDefaults()
	m.SetBudgetGaugeOptions(opts)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(opts.Interval)
		defer t.Stop()
		for {
			if err := m.RefreshBudgetGauges(ctx, src, opts.Timeout); err != nil && onError != nil && ctx.Err() == nil {
				onError(err)
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); <-done }
}
