package processor

import (
	"context"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/pricing"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// outcome is what a settled request cost.
type outcome struct {
	usage     pricing.Usage
	cost      pricing.Breakdown
	estimated bool
	aborted   bool
}

// DetailedReporter is a Reporter that also takes what a CostReport lacks:
// the request JSON (for request loggers such as Helicone) and the budget
// states after the request (for cap-crossing alerts). The processor only
// gathers what Wants* asks for: keeping request bodies and reading budget
// states cost memory and a store call.
type DetailedReporter interface {
	Reporter
	WantsRequestBody() bool
	WantsBudgets() bool
	ReportDetailed(*spendguardv1.CostReport, Details)
}

// Details accompany a CostReport for a DetailedReporter. They are
// read-only once handed over.
type Details struct {
	// RequestJSON is the request body as forwarded (after a downgrade or
	// usage injection), when WantsRequestBody.
	RequestJSON []byte
	// Budgets are the states of the request's applicable budgets after it
	// settled (or was refused), when WantsBudgets.
	Budgets []budget.State
	// Rejection is the budget refusal of a 402, if any.
	Rejection *budget.Rejection
}

// report hands the request's CostReport to the reporter, once per stream,
// after the money is settled, off the per-chunk path. When budget states
// are wanted they are read in the background, so the store call never
// delays the answer to Envoy.
func (st *stream) report(o outcome, decision spendguardv1.Decision, reason, budgetName string) {
	st.reportWith(o, decision, reason, budgetName, nil)
}

func (st *stream) reportWith(o outcome, decision spendguardv1.Decision, reason, budgetName string, rej *budget.Rejection) {
	if st.reported || st.srv.opts.Reporter == nil {
		return
	}
	st.reported = true
	rep := st.costReport(o, decision, reason, budgetName)
	dr, ok := st.srv.opts.Reporter.(DetailedReporter)
	if !ok {
		st.srv.opts.Reporter.Report(rep)
		return
	}
	d := Details{Rejection: rej}
	if dr.WantsRequestBody() {
		d.RequestJSON = st.forwarded
	}
	if !dr.WantsBudgets() || len(st.scopes) == 0 || st.unmetered {
		dr.ReportDetailed(rep, d)
		return
	}
	scopes, srv := st.scopes, st.srv
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), srv.opts.SettleTimeout)
		defer cancel()
		states, err := srv.opts.Budgets.Status(ctx, scopes)
		if err != nil {
			srv.opts.Log.Warn("reading budget states for alerts failed", zap.String("request_id", rep.GetRequestId()), zap.Error(err))
		}
		d.Budgets = states
		dr.ReportDetailed(rep, d)
	}()
}

// costReport builds the CostReport of the stream.
func (st *stream) costReport(o outcome, decision spendguardv1.Decision, reason, budgetName string) *spendguardv1.CostReport {
	end := st.srv.opts.Now()
	rep := &spendguardv1.CostReport{
		RequestId:          st.requestID,
		StartTime:          timestamppb.New(st.start),
		EndTime:            timestamppb.New(end),
		Endpoint:           st.endpoint.String(),
		Scope:              st.ident.Values,
		RequestedModel:     st.model,
		ServedModel:        st.servedModel,
		PromptTokens:       o.usage.Prompt,
		CachedPromptTokens: o.usage.CachedPrompt,
		CompletionTokens:   o.usage.Completion,
		ReasoningTokens:    st.reasoning,
		CostNanoUsd:        int64(o.cost.Total),
		InputCostNanoUsd:   int64(o.cost.Input),
		OutputCostNanoUsd:  int64(o.cost.Output),
		Estimated:          o.estimated,
		Decision:           decision,
		RejectReason:       reason,
		Budget:             budgetName,
		UpstreamStatus:     int32(st.status),
		Stream:             st.req != nil && st.req.Stream,
		Aborted:            o.aborted,
		Duration:           durationpb.New(end.Sub(st.start)),
		ProcessorTime:      durationpb.New(st.procTime),
	}
	if !st.firstByte.IsZero() {
		rep.UpstreamTimeToFirstByte = durationpb.New(st.firstByte.Sub(st.start))
	}
	return rep
}

// reportRefused reports a request spendguard answered itself (400, 401,
// 402, 503): nothing was forwarded and nothing charged.
func (st *stream) reportRefused(e *apiError, budgetName string, rej *budget.Rejection) {
	st.reportWith(outcome{}, spendguardv1.Decision_DECISION_REJECTED, e.message, budgetName, rej)
}
