package app

import (
	"slices"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/budget"
)

// newBudgetsAPI builds the admin API of budgets (GET /v1/budgets and the
// dashboard) on the running configuration and the store, and starts its
// burn-rate sampler, whose stop goes on the cleanup stack.
func (in *Instance) newBudgetsAPI() *admin.API {
	lister, _ := in.Store.(budget.Lister)
	api := admin.New(admin.Options{
		Policies: func() (*budget.Policies, []string) {
			cfg := in.CurrentConfig()
			if cfg == nil {
				return nil, nil
			}
			snap := cfg.Snapshot
			dims := []string{"model"}
			if snap.Identity != nil {
				dims = append(snap.Identity.Dimensions(), dims...)
			}
			slices.Sort(dims)
			return snap.Budgets, slices.Compact(dims)
		},
		Engine:    in.Budgets,
		Estimates: in.Estimates, // GET /v1/estimates
		Lister:    lister,
		Log:       in.Log,
		// Errors name the store's address: only for the tokens' holders
		// (either token: /v1/* is then closed to anyone else).
		ShowErrors: in.atStart.adminTokens.Set(),
	})
	stop := api.StartSampling()
	in.stack.push(func() error { stop(); return nil })
	return api
}
