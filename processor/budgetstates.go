package processor

import (
	"maps"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/exporters/sink"
)

// BudgetStates converts the engine's states (budget.Engine.Status on the
// request's applicable scopes, after Settle) into sink.Event.Budgets, as
// the processor reports them; the app uses it for the per-scope gauges'
// refresh too. When the request was refused by a budget, pass its
// Rejection: the matching
// scope is marked Blocked, which is what makes hard_cap_reached fire for
// a budget that still had room, just not enough for that request.
// rejected may be nil.
func BudgetStates(states []budget.State, rejected *budget.Rejection) []sink.BudgetState {
	if len(states) == 0 {
		return nil
	}
	out := make([]sink.BudgetState, 0, len(states))
	for _, st := range states {
		b := st.Scope.Budget
		if b == nil {
			continue
		}
		scopeText := st.Scope.String()
		s := sink.BudgetState{
			Budget:      b.Name(),
			Scope:       maps.Clone(st.Scope.Values),
			ScopeText:   scopeText,
			Key:         st.Scope.Key,
			Rolling:     b.Rolling() > 0,
			PeriodWord:  b.PeriodWord(),
			PeriodStart: st.Start,
			ResetsAt:    st.ResetsAt,
			Committed:   st.Committed,
			Reserved:    st.Reserved,
			Thresholds:  b.Thresholds(),
			Blocked:     rejected != nil && rejected.Budget == b.Name() && rejected.Scope == scopeText,
		}
		s.Soft, s.HasSoft = b.Soft()
		s.Hard, s.HasHard = b.Hard()
		out = append(out, s)
	}
	return out
}
