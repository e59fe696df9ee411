package app

import (
	"context"
	"fmt"
	"slices"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/processor"
)

// startBudgetGauges keeps the per-scope budget gauges of /metrics
// (remaining, spent, limits) current from the store in the background,
// within metrics.budget_gauges' bounds: a scrape only reads that cache,
// never the store (with Redis every replica then exports the same shared
// numbers, up to one refresh interval old). Its stop goes on the cleanup
// stack.
func (in *Instance) startBudgetGauges() {
	stop := in.Metrics.StartBudgetGauges(in.budgetGaugeSource, in.atStart.gauges, func(err error) {
		in.Log.Warn("budget gauges not refreshed; they keep their last values", zap.Error(err))
	})
	in.stack.push(func() error { stop(); return nil })
}

// RefreshBudgetGauges refreshes the per-scope gauges from the store now,
// as the background refresh does every metrics.budget_gauges.refresh_interval
// (for tests, and for anything that cannot wait for the next one).
func (in *Instance) RefreshBudgetGauges(ctx context.Context) error {
	return in.Metrics.RefreshBudgetGauges(ctx, in.budgetGaugeSource, in.atStart.gauges.Timeout)
}

// budgetGaugeSource lists the scopes /metrics can export, at most max of
// them: only budgets whose every match key is a label dimension are
// listed (the others could not be told apart in a series), each with its
// own bounded listing of the store (one key prefix per budget), so that
// with no label dimensions the store is not listed at all.
func (in *Instance) budgetGaugeSource(ctx context.Context, max int) ([]sink.BudgetState, bool, error) {
	cfg := in.CurrentConfig()
	if cfg == nil {
		return nil, false, nil
	}
	snap := cfg.Snapshot
	labels := in.Metrics.LabelDimensions()
	lister, _ := in.Store.(budget.Lister)
	var (
		states    []budget.State
		truncated bool
	)
	for _, b := range snap.Budgets.Budgets() {
		if !labelled(b, labels) {
			continue
		}
		left := max - len(states)
		if left <= 0 {
			truncated = true
			break
		}
		listing, err := in.Budgets.List(ctx, snap.Budgets, lister, budget.ListOptions{Budget: b.Name(), MaxScopes: left})
		if err != nil {
			return nil, false, fmt.Errorf("budget %q: %w", b.Name(), err)
		}
		states = append(states, listing.States...)
		truncated = truncated || listing.Truncated
	}
	return processor.BudgetStates(states, nil), truncated, nil
}

// labelled reports whether every match key of b is a label dimension.
func labelled(b *budget.Budget, labels []string) bool {
	for _, k := range b.Keys() {
		if !slices.Contains(labels, k) {
			return false
		}
	}
	return true
}

// metricsPaths are the admin paths that need a token besides /v1/*
// (admin.token or admin.read_token, GET being a read): /metrics when
// metrics.require_token is set.
func (in *Instance) metricsPaths() []string {
	if in.atStart.metricsToken {
		return []string{"/metrics"}
	}
	return nil
}
