package metrics_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/metrics"
)

// scrapeNoNet is a scrape through the handler without a network (usable
// inside a synctest bubble).
func scrapeNoNet(t *testing.T, m *metrics.Metrics) string {
	t.Helper()
	rec := httptest.NewRecorder()
	m.Handler().ServeHTTP(rec, httptest.NewRequest("GET", "/metrics", nil))
	require.Equal(t, 200, rec.Code)
	b, err := io.ReadAll(rec.Body)
	require.NoError(t, err)
	return string(b)
}

func tenantState(tenant string, spentUSD int64) sink.BudgetState {
	return sink.BudgetState{Budget: "tenant-daily", Scope: map[string]string{"tenant": tenant},
		Committed: money.Nano(spentUSD) * money.PerUSD, Hard: 100 * money.PerUSD, HasHard: true}
}

func spent(text, tenant string) string {
	return sample(text, "spendguard_budget_spent_usd", map[string]string{"budget": "tenant-daily", "tenant": tenant})
}

func refreshes(text, result string) string {
	return sample(text, "spendguard_budget_metrics_refreshes_total", map[string]string{"result": result})
}

// Must show: the background refresh runs at start and then once per
// interval, never two at a time even when one outlasts the interval,
// each bounded by the timeout, and stop ends it (synctest fails on a
// goroutine left behind).
func TestBudgetGaugesRefreshOnABoundedSchedule(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		m, err := metrics.New([]string{"tenant"})
		require.NoError(t, err)
		var calls, running, most atomic.Int32
		var mu sync.Mutex
		slow := false // the next call takes 45s, longer than the 30s interval
		src := func(ctx context.Context, max int) ([]sink.BudgetState, bool, error) {
			n := running.Add(1)
			defer running.Add(-1)
			if n > most.Load() {
				most.Store(n)
			}
			calls.Add(1)
			mu.Lock()
			s := slow
			mu.Unlock()
			if s {
				select {
				case <-time.After(45 * time.Second):
				case <-ctx.Done():
					return nil, false, ctx.Err()
				}
			}
			return []sink.BudgetState{tenantState("acme", int64(calls.Load()))}, false, nil
		}
		var failures atomic.Int32
		stop := m.StartBudgetGauges(src, metrics.BudgetGaugeOptions{Interval: 30 * time.Second, Timeout: 20 * time.Second},
			func(error) { failures.Add(1) })

		synctest.Wait()
		assert.Equal(t, int32(1), calls.Load(), "one refresh at start")
		assert.Equal(t, "1", spent(scrapeNoNet(t, m), "acme"))

		time.Sleep(30 * time.Second)
		synctest.Wait()
		assert.Equal(t, int32(2), calls.Load(), "one more per interval")
		assert.Equal(t, "2", spent(scrapeNoNet(t, m), "acme"))

		mu.Lock()
		slow = true
		mu.Unlock()
		time.Sleep(30 * time.Second) // the third refresh starts and is cut at 20s
		synctest.Wait()
		time.Sleep(20 * time.Second)
		synctest.Wait()
		assert.Equal(t, int32(3), calls.Load())
		assert.Equal(t, int32(1), failures.Load(), "the refresh that outlasted its timeout failed")
		text := scrapeNoNet(t, m)
		assert.Equal(t, "1", refreshes(text, "error"))
		assert.Equal(t, "2", spent(text, "acme"), "a failed refresh keeps the last values")

		time.Sleep(5 * time.Minute)
		synctest.Wait()
		assert.Equal(t, int32(1), most.Load(), "never two refreshes at a time")
		assert.LessOrEqual(t, calls.Load(), int32(3+10), "at most one refresh per interval")
		stop()
		n := calls.Load()
		time.Sleep(time.Hour)
		assert.Equal(t, n, calls.Load(), "no refresh after stop")
	})
}

// Must show: a refresh replaces the whole set (a scope no longer listed
// loses its series), exports at most max_scopes scopes and counts a
// refresh that left scopes out; the per-request updates respect the cap
// too; a scope keyed on a dimension that is not a label is not exported.
func TestBudgetGaugesAreCappedAndReplaced(t *testing.T) {
	m, err := metrics.New([]string{"tenant"})
	require.NoError(t, err)
	m.SetBudgetGaugeOptions(metrics.BudgetGaugeOptions{MaxScopes: 2})
	list := func(states ...sink.BudgetState) metrics.BudgetSource {
		return func(context.Context, int) ([]sink.BudgetState, bool, error) { return states, false, nil }
	}
	userScope := sink.BudgetState{Budget: "per-user", Scope: map[string]string{"user": "u1"}, HasHard: true, Hard: money.PerUSD}

	tests := []struct {
		name      string
		refresh   metrics.BudgetSource
		observe   []sink.BudgetState
		want      map[string]string // tenant → spent ("" = no series)
		scopes    string
		truncated string
		errors    string
	}{
		{name: "over the cap", refresh: list(tenantState("a", 1), tenantState("b", 2), tenantState("c", 3), userScope),
			want: map[string]string{"a": "1", "b": "2", "c": ""}, scopes: "2", truncated: "1", errors: "0"},
		{name: "a request cannot add a scope past the cap", observe: []sink.BudgetState{tenantState("d", 4), tenantState("a", 5)},
			want: map[string]string{"a": "5", "b": "2", "d": ""}, scopes: "2", truncated: "1", errors: "0"},
		{name: "scopes no longer listed go", refresh: list(tenantState("c", 7)),
			want: map[string]string{"a": "", "b": "", "c": "7"}, scopes: "1", truncated: "1", errors: "0"},
		{name: "a request adds a scope under the cap", observe: []sink.BudgetState{tenantState("d", 4)},
			want: map[string]string{"c": "7", "d": "4"}, scopes: "2", truncated: "1", errors: "0"},
		{name: "a failing store keeps the gauges", refresh: func(context.Context, int) ([]sink.BudgetState, bool, error) {
			return nil, false, errors.New("redis down")
		}, want: map[string]string{"c": "7", "d": "4"}, scopes: "2", truncated: "1", errors: "1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.refresh != nil {
				_ = m.RefreshBudgetGauges(context.Background(), tt.refresh, time.Second)
			}
			m.ObserveBudgets(tt.observe)
			text := scrapeNoNet(t, m)
			for tenant, want := range tt.want {
				assert.Equal(t, want, spent(text, tenant), "tenant %s", tenant)
			}
			assert.Equal(t, tt.scopes, sample(text, "spendguard_budget_metrics_scopes", nil))
			assert.Equal(t, tt.truncated, refreshes(text, "truncated"))
			assert.Equal(t, tt.errors, refreshes(text, "error"))
			assert.NotContains(t, text, `budget="per-user"`)
		})
	}
}

// Must show: a scrape does not call the source; only the refresh does.
func TestScrapeNeverCallsTheSource(t *testing.T) {
	m, err := metrics.New([]string{"tenant"})
	require.NoError(t, err)
	var calls atomic.Int32
	src := func(context.Context, int) ([]sink.BudgetState, bool, error) {
		calls.Add(1)
		return []sink.BudgetState{tenantState("acme", 3)}, false, nil
	}
	require.NoError(t, m.RefreshBudgetGauges(context.Background(), src, 0))
	for i := range 5 {
		assert.Equal(t, "3", spent(scrapeNoNet(t, m), "acme"), fmt.Sprint("scrape ", i))
	}
	assert.Equal(t, int32(1), calls.Load())
}
