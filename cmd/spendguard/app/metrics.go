package app

import (
	"context"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/exporters"
)

// metricsHandler serves /metrics after refreshing the per-scope budget
// gauges (remaining, spent, limits) from the store: the store is the one
// place that knows every scope, and with Redis every replica then exports
// the same shared numbers. A store that fails or is slow leaves the gauges
// as they were; the scrape still answers.
func (in *Instance) metricsHandler() http.Handler {
	next := in.Metrics.Handler()
	lister, _ := in.Store.(budget.Lister)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if snap := in.Processor.Snapshot(); snap != nil {
			ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
			listing, err := in.Budgets.List(ctx, snap.Budgets, lister, budget.ListOptions{})
			cancel()
			if err != nil {
				in.Log.Warn("budget gauges not refreshed for this scrape", zap.Error(err))
			} else {
				in.Metrics.ObserveBudgets(exporters.BudgetStates(listing.States, nil))
			}
		}
		next.ServeHTTP(w, r)
	})
}
