package processor

import (
	"context"
	"time"

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
	go st.srv.reportWithBudgets(dr, rep, d, st.scopes)
}

// reportWithBudgets reads the budget states of scopes and then reports;
// it runs in its own goroutine, so the store call never delays an answer.
func (srv *Server) reportWithBudgets(dr DetailedReporter, rep *spendguardv1.CostReport, d Details, scopes []budget.Scope) {
	defer func() { // a goroutine of its own: a panic here would end the process
		if r := recover(); r != nil {
			_ = srv.recovered(rep.GetRequestId(), "reporting with budget states", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), srv.opts.SettleTimeout)
	defer cancel()
	states, err := srv.opts.Budgets.Status(ctx, scopes)
	if err != nil {
		srv.opts.Log.Warn("reading budget states for alerts failed", zap.String("request_id", rep.GetRequestId()), zap.Error(err))
	}
	d.Budgets = states
	dr.ReportDetailed(rep, d)
}

// costReport builds the CostReport of the stream, its timestamps and
// durations in the same allocation.
func (st *stream) costReport(o outcome, decision spendguardv1.Decision, reason, budgetName string) *spendguardv1.CostReport {
	end := st.srv.opts.Now()
	r := &struct {
		rep                 spendguardv1.CostReport
		start, end          timestamppb.Timestamp
		duration, proc, ttf durationpb.Duration
	}{}
	r.start.Seconds, r.start.Nanos = st.start.Unix(), int32(st.start.Nanosecond())
	r.end.Seconds, r.end.Nanos = end.Unix(), int32(end.Nanosecond())
	setDuration(&r.duration, end.Sub(st.start))
	setDuration(&r.proc, st.procTime)
	rep := &r.rep
	rep.RequestId = st.requestID
	rep.StartTime, rep.EndTime = &r.start, &r.end
	rep.Endpoint = st.endpoint.String()
	rep.Scope = st.ident.Values
	rep.RequestedModel, rep.ServedModel, rep.ResponseModel = st.model, st.servedModel, st.responseModel()
	rep.PromptTokens, rep.CachedPromptTokens = o.usage.Prompt, o.usage.CachedPrompt
	rep.CompletionTokens, rep.ReasoningTokens = o.usage.Completion, st.reasoning
	rep.CostNanoUsd, rep.InputCostNanoUsd, rep.OutputCostNanoUsd = int64(o.cost.Total), int64(o.cost.Input), int64(o.cost.Output)
	rep.Estimated = o.estimated
	rep.Decision, rep.RejectReason, rep.Budget = decision, reason, budgetName
	rep.UpstreamStatus = int32(st.status)
	rep.Stream = st.req != nil && st.req.Stream
	rep.Aborted = o.aborted
	rep.Duration, rep.ProcessorTime = &r.duration, &r.proc
	if !st.firstByte.IsZero() {
		setDuration(&r.ttf, st.firstByte.Sub(st.start))
		rep.UpstreamTimeToFirstByte = &r.ttf
	}
	return rep
}

// responseModel is the model the upstream named in its response so far,
// "" when it named none (or had not answered).
func (st *stream) responseModel() string {
	switch {
	case st.sseScan != nil:
		return st.sseScan.Model()
	case st.scanner != nil:
		return st.scanner.Model()
	}
	return ""
}

// setDuration is durationpb.New into d.
func setDuration(d *durationpb.Duration, v time.Duration) {
	d.Seconds, d.Nanos = int64(v/time.Second), int32(v%time.Second)
}

// reportRefused reports a request spendguard answered itself (400, 401,
// 402, 503): nothing was forwarded and nothing charged.
func (st *stream) reportRefused(e *apiError, budgetName string, rej *budget.Rejection) {
	st.reportWith(outcome{}, spendguardv1.Decision_DECISION_REJECTED, e.message, budgetName, rej)
}
