package metrics

import (
	"fmt"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// reportMix returns reports of n tenants with every decision, some with
// values that only differ in where an empty string is.
func reportMix(n int) []*spendguardv1.CostReport {
	decisions := []spendguardv1.Decision{
		spendguardv1.Decision_DECISION_ALLOWED, spendguardv1.Decision_DECISION_DOWNGRADED,
		spendguardv1.Decision_DECISION_REJECTED, spendguardv1.Decision_DECISION_UNMETERED,
		spendguardv1.Decision_DECISION_UNSPECIFIED, spendguardv1.Decision(42),
	}
	var out []*spendguardv1.CostReport
	for i := range n {
		for j, d := range decisions {
			r := sinktest.Report(i + j)
			r.Decision = d
			r.Scope["tenant"] = fmt.Sprintf("t-%d", i)
			switch i % 3 {
			case 1:
				r.Scope["tenant"], r.Scope["team"] = "", "x"
			case 2:
				r.Scope["tenant"], r.Scope["team"] = "x", ""
				r.ReasoningTokens = 0
			}
			out = append(out, r)
		}
	}
	return out
}

// reportText returns the lines of the report metrics in a scrape.
func reportText(t *testing.T, m *Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	var lines []string
	for _, line := range strings.Split(rec.Body.String(), "\n") {
		for _, name := range []string{"spendguard_requests_total", "spendguard_spend_usd_total", "spendguard_unmetered_spend_usd_total", "spendguard_tokens_total"} {
			if strings.HasPrefix(line, name+"{") {
				lines = append(lines, line)
			}
		}
	}
	return strings.Join(lines, "\n")
}

// Must show: with every combination in one set of the cache (so each
// lookup meets colliding entries and sets overflow), reports are counted
// in exactly the series of their own values, as with one lookup per
// report, also from concurrent goroutines.
func TestReportCacheCollisionsCountInTheRightSeries(t *testing.T) {
	dims := []string{"tenant", "team", "model"}
	cached, err := New(dims)
	require.NoError(t, err)
	cached.reports = newReportCache(1)
	want, err := New(dims)
	require.NoError(t, err)

	reports := reportMix(7) // 7 tenants, 3 distinct team/tenant shapes: more combinations than ways
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for round := range 50 {
				for i := range reports {
					cached.ObserveReport(reports[(i+round*(g+1))%len(reports)])
				}
			}
		})
	}
	wg.Wait()
	for range 4 * 50 {
		for _, r := range reports {
			want.observeReportUncached(r)
		}
	}
	assert.Equal(t, reportText(t, want), reportText(t, cached))
}

// observeReportUncached is ObserveReport with a lookup per series, as it
// was before the cache: the reference the cache must agree with.
func (m *Metrics) observeReportUncached(r *spendguardv1.CostReport) {
	c := countsOf(r)
	labels := append([]string{""}, m.scopeValues(r, nil)...)
	labels[0] = decisionNames[c.decision]
	m.requests.WithLabelValues(labels...).Inc()
	if c.spend > 0 {
		m.spend.series(labels[1:]).nano.Add(c.spend)
	}
	if c.unmetered > 0 {
		m.unmetered.series(labels[1:]).nano.Add(c.unmetered)
	}
	for typ, n := range c.tokens {
		if n > 0 {
			labels[0] = tokenTypes[typ]
			m.tokens.WithLabelValues(labels...).Add(float64(n))
		}
	}
}

// Must show: the cache names decisions as sink.DecisionName does.
func TestDecisionNamesMatchTheSink(t *testing.T) {
	for d := range spendguardv1.Decision(8) {
		c := countsOf(&spendguardv1.CostReport{Decision: d})
		assert.Equal(t, sink.DecisionName(d), decisionNames[c.decision], "%v", d)
	}
}
