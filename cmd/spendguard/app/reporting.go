package app

import (
	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/processor"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// reporter hands every CostReport to the exporters' fan-out (which also
// feeds the Prometheus metrics) and to an optional extra Reporter (tests).
// It is the processor's DetailedReporter: it asks for the request body and
// budget states only when a configured exporter uses them.
type reporter struct {
	fan   *exporters.Fanout
	extra processor.Reporter
}

var _ processor.DetailedReporter = reporter{}

func (r reporter) WantsRequestBody() bool { return r.fan.WantsRequestBody() }
func (r reporter) WantsBudgets() bool     { return r.fan.WantsBudgets() }

func (r reporter) Report(rep *spendguardv1.CostReport) {
	r.fan.Report(rep)
	if r.extra != nil {
		r.extra.Report(rep)
	}
}

func (r reporter) ReportDetailed(rep *spendguardv1.CostReport, d processor.Details) {
	r.fan.ReportWith(rep, exporters.Extras{
		RequestJSON: d.RequestJSON,
		Budgets:     exporters.BudgetStates(d.Budgets, d.Rejection),
	})
	if r.extra != nil {
		r.extra.Report(rep)
	}
}
