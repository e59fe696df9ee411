package metrics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os/exec"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/metrics"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// scrape GETs /metrics from the handler over real HTTP.
func scrape(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return string(b)
}

// traffic feeds m a bit of everything.
func traffic(t *testing.T, m *metrics.Metrics) {
	t.Helper()
	for i := range 3 {
		m.ObserveReport(sinktest.Report(i))
	}
	down := sinktest.Report(3)
	down.Decision = spendguardv1.Decision_DECISION_DOWNGRADED
	down.ServedModel = "meta-llama/Llama-3.1-8B-Instruct"
	m.ObserveReport(down)
	rej := sinktest.Report(4)
	rej.Decision = spendguardv1.Decision_DECISION_REJECTED
	rej.CostNanoUsd = 0
	m.ObserveReport(rej)
	unm := sinktest.Report(5)
	unm.Decision = spendguardv1.Decision_DECISION_UNMETERED
	unm.Scope["team"] = "ads"
	m.ObserveReport(unm)

	m.ObserveBudgets([]sink.BudgetState{
		{Budget: "tenant-monthly", Scope: map[string]string{"tenant": "acme"}, Committed: 800 * money.PerUSD, Reserved: money.PerUSD,
			Soft: 800 * money.PerUSD, Hard: 1000 * money.PerUSD, HasSoft: true, HasHard: true},
		{Budget: "fleet-daily", Committed: money.PerUSD / 2, Hard: 2000 * money.PerUSD, HasHard: true},
		{Budget: "runaway-agent-guard", Scope: map[string]string{"user": "u-1"}, Hard: 5 * money.PerUSD, HasHard: true},
	})
	for _, phase := range []string{"request_headers", "request_body", "response_headers", "response_body"} {
		m.ObserveMessage(phase, 150*time.Microsecond)
	}
	store := m.InstrumentStore(memstore.New())
	items := []budget.Item{{Key: "k", Limit: money.PerUSD, Enforce: true}}
	_, err := store.Reserve(context.Background(), "r1", money.PerUSD/10, items, time.Minute, time.Now())
	require.NoError(t, err)
	m.AddReservationsInFlight(1)
	granted, _, err := store.Extend(context.Background(), "r1", money.PerUSD/10, items, time.Minute, time.Now())
	require.NoError(t, err)
	require.Equal(t, money.PerUSD/10, granted)
	_, err = store.Usage(context.Background(), items, time.Now())
	require.NoError(t, err)
	require.NoError(t, store.Settle(context.Background(), "r1", money.PerUSD/20, items, time.Now()))
	m.AddReservationsInFlight(-1)
	m.AddReservationsInFlight(1)
	m.ObserveStore("usage", time.Millisecond, errors.New("redis down"))
	m.ObserveReload(nil)
	m.ObserveReload(errors.New("bad yaml"))
	m.SetExporterStats(func() []metrics.ExporterStats {
		return []metrics.ExporterStats{{Exporter: "otlp", QueueDepth: 2, QueueCapacity: 10000, Sent: 5, Retries: 1, DroppedFull: 3}}
	})
	m.SetOutputEstimates(func() []estimate.Series {
		return []estimate.Series{{Model: "meta-llama/Llama-3.1-8B-Instruct", Endpoint: "chat_completions", Samples: 40, Tokens: 812, Active: true}}
	})
}

// Must show: promtool check metrics passes on a scrape taken after
// traffic. promtool comes with Debian's prometheus package; without it
// this test fails rather than skips.
func TestScrapeAfterTrafficPassesPromtoolCheckMetrics(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool is missing: apt-get install -y prometheus (.ci/run installs it)")

	m, err := metrics.New([]string{"tenant", "team", "use_case", "model"})
	require.NoError(t, err)
	traffic(t, m)
	text := scrape(t, m)

	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = strings.NewReader(text)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	require.NoError(t, cmd.Run(), "promtool check metrics:\n%s", out.String())
	assert.Empty(t, strings.TrimSpace(out.String()), "no lint warnings")

	acme := map[string]string{"model": "meta-llama/Llama-3.1-70B-Instruct", "team": "search", "tenant": "acme", "use_case": "rag"}
	ads := with(acme, "team", "ads")
	tenant := map[string]string{"model": "", "team": "", "tenant": "acme", "use_case": "", "budget": "tenant-monthly"}
	fleet := map[string]string{"model": "", "team": "", "tenant": "", "use_case": "", "budget": "fleet-daily"}
	for _, c := range []struct {
		name   string
		labels map[string]string
		value  string
	}{
		{"spendguard_requests_total", with(acme, "decision", "allowed"), "3"},
		{"spendguard_requests_total", with(acme, "decision", "downgraded"), "1"},
		{"spendguard_requests_total", with(acme, "decision", "rejected"), "1"},
		{"spendguard_requests_total", with(ads, "decision", "unmetered"), "1"},
		// 3 allowed + 1 downgraded: (1000+1001+1002+1003-4*200)*600 + 4*200*300 + 4*100*800 nano-USD, exactly
		{"spendguard_spend_usd_total", acme, "0.0024836"},
		{"spendguard_unmetered_spend_usd_total", ads, "0.000623"},
		{"spendguard_tokens_total", with(acme, "type", "input"), "3206"},
		{"spendguard_tokens_total", with(acme, "type", "cached_input"), "800"},
		{"spendguard_tokens_total", with(acme, "type", "output"), "360"},
		{"spendguard_tokens_total", with(acme, "type", "reasoning"), "40"},
		{"spendguard_budget_remaining_usd", tenant, "199"},
		{"spendguard_budget_spent_usd", tenant, "800"},
		{"spendguard_budget_limit_usd", with(tenant, "cap", "soft"), "800"},
		{"spendguard_budget_limit_usd", with(tenant, "cap", "hard"), "1000"},
		{"spendguard_budget_remaining_usd", fleet, "1999.5"},
		{"spendguard_reservations_in_flight", nil, "1"},
		{"spendguard_extproc_message_duration_seconds_count", map[string]string{"phase": "request_body"}, "1"},
		{"spendguard_store_operation_duration_seconds_count", map[string]string{"operation": "reserve", "result": "ok"}, "1"},
		{"spendguard_store_operation_duration_seconds_count", map[string]string{"operation": "settle", "result": "ok"}, "1"},
		{"spendguard_store_operation_duration_seconds_count", map[string]string{"operation": "extend", "result": "ok"}, "1"},
		{"spendguard_store_operation_duration_seconds_count", map[string]string{"operation": "usage", "result": "error"}, "1"},
		{"spendguard_config_reloads_total", map[string]string{"result": "success"}, "1"},
		{"spendguard_config_reloads_total", map[string]string{"result": "failure"}, "1"},
		{"spendguard_exporter_queue_depth", map[string]string{"exporter": "otlp"}, "2"},
		{"spendguard_exporter_queue_capacity", map[string]string{"exporter": "otlp"}, "10000"},
		{"spendguard_exporter_sent_total", map[string]string{"exporter": "otlp"}, "5"},
		{"spendguard_exporter_retries_total", map[string]string{"exporter": "otlp"}, "1"},
		{"spendguard_exporter_dropped_total", map[string]string{"exporter": "otlp", "reason": "queue_full"}, "3"},
		{"spendguard_exporter_dropped_total", map[string]string{"exporter": "otlp", "reason": "failed"}, "0"},
	} {
		assert.Equal(t, c.value, sample(text, c.name, c.labels), "%s%v", c.name, c.labels)
	}
	assert.NotContains(t, text, "runaway-agent-guard", "a scope keyed on a non-label dimension (user) has no gauges")
	assert.NotContains(t, text, `user=`, "only label_dimensions become labels")
	assert.Contains(t, text, "go_goroutines ")
}

func TestLabelDimensionsAreChecked(t *testing.T) {
	_, err := metrics.New([]string{"tenant", "tenant", "budget", "use-case", ""})
	require.Error(t, err)
	assert.Equal(t, `metrics.label_dimensions: "tenant" is listed twice
metrics.label_dimensions: "budget" is a label spendguard uses itself; rename the dimension
metrics.label_dimensions: "use-case" is not a valid Prometheus label name
metrics.label_dimensions: "" is not a valid Prometheus label name`, err.Error())

	m, err := metrics.New(nil)
	require.NoError(t, err)
	m.ObserveReport(sinktest.Report(0))
	assert.Equal(t, "1", sample(scrape(t, m), "spendguard_requests_total", map[string]string{"decision": "allowed"}),
		"no dimension labels at all")
}

func TestANilMetricsIsANoOp(t *testing.T) {
	var m *metrics.Metrics
	m.ObserveReport(sinktest.Report(0))
	m.ObserveBudgets([]sink.BudgetState{{Budget: "b", HasHard: true}})
	m.ObserveMessage("request_body", time.Millisecond)
	m.ObserveStore("reserve", time.Millisecond, nil)
	m.AddReservationsInFlight(1)
	m.ObserveReload(nil)
	m.SetExporterStats(nil)
	s := memstore.New()
	assert.Equal(t, budget.Store(s), m.InstrumentStore(s))
	assert.Nil(t, m.LabelDimensions())
}

func BenchmarkObserveReport(b *testing.B) {
	m, err := metrics.New([]string{"tenant", "team", "use_case"})
	require.NoError(b, err)
	r := sinktest.Report(0)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveReport(r)
	}
}

// BenchmarkObserveReportTenants counts reports of 64 tenants in turn,
// with the model as a dimension too.
func BenchmarkObserveReportTenants(b *testing.B) {
	m, err := metrics.New([]string{"tenant", "team", "use_case", "model"})
	require.NoError(b, err)
	reports := make([]*spendguardv1.CostReport, 64)
	for i := range reports {
		reports[i] = sinktest.Report(i)
		reports[i].Scope["tenant"] = fmt.Sprintf("tenant-%d", i)
	}
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		m.ObserveReport(reports[i%len(reports)])
		i++
	}
}

// BenchmarkObserveReportNoDimensions counts reports without dimension
// labels.
func BenchmarkObserveReportNoDimensions(b *testing.B) {
	m, err := metrics.New(nil)
	require.NoError(b, err)
	r := sinktest.Report(0)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveReport(r)
	}
}

// BenchmarkObserveMessage is one request's four ext_proc messages.
func BenchmarkObserveMessage(b *testing.B) {
	m, err := metrics.New(nil)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveMessage("request_headers", 40*time.Microsecond)
		m.ObserveMessage("request_body", 90*time.Microsecond)
		m.ObserveMessage("response_headers", 20*time.Microsecond)
		m.ObserveMessage("response_body", 60*time.Microsecond)
	}
}

// BenchmarkObserveStore is one request's three store calls.
func BenchmarkObserveStore(b *testing.B) {
	m, err := metrics.New(nil)
	require.NoError(b, err)
	b.ReportAllocs()
	for b.Loop() {
		m.ObserveStore("reserve", 300*time.Microsecond, nil)
		m.ObserveStore("usage", 200*time.Microsecond, nil)
		m.ObserveStore("settle", 250*time.Microsecond, nil)
	}
}

// nopStore answers every call at once, so that BenchmarkInstrumentedStore
// measures the instrumentation alone (timing included).
type nopStore struct{ budget.Store }

func (nopStore) Reserve(context.Context, string, money.Nano, []budget.Item, time.Duration, time.Time) (budget.Outcome, error) {
	return budget.Outcome{}, nil
}

func (nopStore) Settle(context.Context, string, money.Nano, []budget.Item, time.Time) error {
	return nil
}

func (nopStore) Usage(context.Context, []budget.Item, time.Time) ([]budget.Counter, error) {
	return nil, nil
}

// BenchmarkInstrumentedStore is one request's three store calls through
// InstrumentStore, against a store that does nothing.
func BenchmarkInstrumentedStore(b *testing.B) {
	m, err := metrics.New(nil)
	require.NoError(b, err)
	s := m.InstrumentStore(nopStore{})
	ctx, now := context.Background(), time.Now()
	b.ReportAllocs()
	for b.Loop() {
		_, _ = s.Reserve(ctx, "r", 1, nil, time.Minute, now)
		_, _ = s.Usage(ctx, nil, now)
		_ = s.Settle(ctx, "r", 1, nil, now)
	}
}

// with returns a copy of labels with k set to v.
func with(labels map[string]string, k, v string) map[string]string {
	out := map[string]string{k: v}
	for lk, lv := range labels {
		if lk != k {
			out[lk] = lv
		}
	}
	return out
}

// sample returns the value of the series name{labels} in a text-format
// scrape ("" when absent). client_golang writes labels sorted by name.
func sample(text, name string, labels map[string]string) string {
	keys := make([]string, 0, len(labels))
	for k := range labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	series := name
	if len(keys) > 0 {
		pairs := make([]string, len(keys))
		for i, k := range keys {
			pairs[i] = fmt.Sprintf("%s=%q", k, labels[k])
		}
		series += "{" + strings.Join(pairs, ",") + "}"
	}
	for _, line := range strings.Split(text, "\n") {
		if v, ok := strings.CutPrefix(line, series+" "); ok {
			return v
		}
	}
	return ""
}

// Must show: the series resolved up front for the known phases and store
// operations appear only once observed, as with a lookup per call, and a
// phase or operation outside them still gets its series.
func TestMessageAndStoreSeriesAppearWhenObserved(t *testing.T) {
	m, err := metrics.New(nil)
	require.NoError(t, err)
	assert.NotContains(t, scrape(t, m), "spendguard_extproc_message_duration_seconds_count")
	assert.NotContains(t, scrape(t, m), "spendguard_store_operation_duration_seconds_count")

	m.ObserveMessage("trailers", time.Millisecond)
	m.ObserveMessage("trailers", time.Millisecond)
	m.ObserveMessage("other_phase", time.Millisecond)
	m.ObserveStore("settle", time.Millisecond, errors.New("down"))
	m.ObserveStore("compact", time.Millisecond, nil)
	text := scrape(t, m)
	const msg, store = "spendguard_extproc_message_duration_seconds_count", "spendguard_store_operation_duration_seconds_count"
	assert.Equal(t, "2", sample(text, msg, map[string]string{"phase": "trailers"}))
	assert.Equal(t, "1", sample(text, msg, map[string]string{"phase": "other_phase"}))
	assert.Equal(t, "1", sample(text, store, map[string]string{"operation": "settle", "result": "error"}))
	assert.Equal(t, "1", sample(text, store, map[string]string{"operation": "compact", "result": "ok"}))
	assert.Equal(t, 4, strings.Count(text, msg+"{")+strings.Count(text, store+"{"), "no series for what was not observed:\n%s", text)
}

func TestStreamsCutCounter(t *testing.T) {
	m, err := metrics.New([]string{"tenant"})
	require.NoError(t, err)
	m.ObserveStreamCut("acme-daily")
	m.ObserveStreamCut("acme-daily")
	m.ObserveStreamCut("limits.max_request_usd")
	out := scrapeNoNet(t, m)
	assert.Contains(t, out, `spendguard_streams_cut_total{budget="acme-daily"} 2`)
	assert.Contains(t, out, `spendguard_streams_cut_total{budget="limits.max_request_usd"} 1`)
	var none *metrics.Metrics
	none.ObserveStreamCut("x") // a nil Metrics counts nothing and does not panic
}
