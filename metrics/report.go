package metrics

import (
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// modelDimension is the built-in dimension holding the requested model.
const modelDimension = "model"

// ObserveReport counts one request: its decision, its spend (USD charged,
// or what an unmetered request would have cost) and its tokens by
// disjoint type. The label of each dimension in label_dimensions is the
// report's scope value ("" when the request had none); "model" is the
// requested model, like the dimension. The series of a combination of
// dimension values are cached (reportCache): counting a combination again
// takes no lookup and no allocation. Its usage source is counted in
// spendguard_usage_source_total.
func (m *Metrics) ObserveReport(r *spendguardv1.CostReport) {
	if m == nil || r == nil {
		return
	}
	c := countsOf(r)
	var buf [8]string // dimension values, without allocating for up to 8
	m.seriesFor(m.scopeValues(r, buf[:0]), &c).add(&c)
	m.sources.observe(r.GetUsageSource())
}

// countsOf returns what r adds to the metrics.
func countsOf(r *spendguardv1.CostReport) reportCounts {
	c := reportCounts{decision: decisionIndex(r.GetDecision())}
	if cost := r.GetCostNanoUsd(); cost > 0 {
		switch c.decision {
		case decisionAllowed, decisionDowngraded:
			c.spend = cost
		case decisionUnmetered:
			c.unmetered = cost
		}
	}
	if c.decision == decisionRejected {
		return c
	}
	prompt, cached := r.GetPromptTokens(), min(r.GetCachedPromptTokens(), r.GetPromptTokens())
	completion, reasoning := r.GetCompletionTokens(), min(r.GetReasoningTokens(), r.GetCompletionTokens())
	c.tokens = [numTokenTypes]int64{
		tokenInput:       prompt - cached,
		tokenCachedInput: cached,
		tokenOutput:      completion - reasoning,
		tokenReasoning:   reasoning,
	}
	return c
}

// scopeValues appends the report's value of each label dimension to dst.
func (m *Metrics) scopeValues(r *spendguardv1.CostReport, dst []string) []string {
	scope := r.GetScope()
	for _, d := range m.dims {
		v := scope[d]
		if v == "" && d == modelDimension {
			v = r.GetRequestedModel()
		}
		dst = append(dst, v)
	}
	return dst
}

// budgetLabels returns budget, then one value per label dimension.
func (m *Metrics) budgetLabels(s sink.BudgetState) ([]string, bool) {
	for k := range s.Scope {
		if !contains(m.dims, k) {
			return nil, false
		}
	}
	out := make([]string, 1+len(m.dims))
	out[0] = s.Budget
	for i, d := range m.dims {
		out[1+i] = s.Scope[d]
	}
	return out, true
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}

func usd(n money.Nano) float64 { return sink.USDFloat(int64(n)) }
