package processor

import (
	"context"
	"time"

	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/pricing"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// outcome is what a settled request cost.
type outcome struct {
	usage     pricing.Usage
	cost      pricing.Breakdown
	estimated bool
	aborted   bool
	// cut: spendguard ended the streamed response at a budget cap; cutBy
	// names the budget that had no room.
	cut    bool
	cutBy  string
	source spendguardv1.UsageSource // where usage came from (count.go: sourceOf)
}

// Reporter receives one sink.Event per request the processor answered or
// forwarded (the app composes the metrics and the exporters' fan-out
// behind it). Report must not block and must not modify the event, which
// is read-only once handed over: exporters queue it and return.
type Reporter interface {
	Report(*sink.Event)
}

// Recorder keeps the durable record of every request (the ledger's
// spool). Record is called synchronously, before the answer that ends
// the request is sent, with the event the Reporter is about to get (its
// Budgets not yet filled): once a client has its answer, its row exists.
// Record must not keep ev or block on anything but a local write.
type Recorder interface {
	Record(ev *sink.Event)
}

// Admission says whether a request on a cost path may start at all: an
// error refuses it with 503 before anything is reserved (the ledger's
// spool, full, with spool.on_full: refuse). Admit must be cheap: it runs
// on every request.
type Admission interface {
	Admit() error
}

// Gather says which optional parts of an Event the Reporter uses; the
// processor only gathers those: keeping request bodies and reading budget
// states cost memory and a store call.
type Gather struct {
	// RequestBody fills Event.RequestJSON with the request body as
	// forwarded (after a downgrade or usage injection).
	RequestBody bool
	// Budgets fills Event.Budgets with the states of the request's
	// applicable budgets after it settled (or was refused).
	Budgets bool
}

// report hands the request's Event to the reporter, once per stream,
// after the money is settled, off the per-chunk path. When budget states
// are wanted they are read in the background, so the store call never
// delays the answer to Envoy.
func (st *stream) report(o outcome, decision spendguardv1.Decision, reason, budgetName string) {
	st.reportWith(o, decision, reason, budgetName, nil)
}

func (st *stream) reportWith(o outcome, decision spendguardv1.Decision, reason, budgetName string, rej *budget.Rejection) {
	if st.reported || (st.srv.opts.Reporter == nil && st.srv.opts.Recorder == nil) {
		return
	}
	st.reported = true
	ev := st.event(o, decision, reason, budgetName)
	if r := st.srv.opts.Recorder; r != nil {
		r.Record(ev)
	}
	if st.srv.opts.Reporter == nil {
		return
	}
	gather := st.srv.opts.Gather
	if gather.RequestBody {
		ev.RequestJSON = st.forwarded
	}
	if !gather.Budgets || len(st.scopes) == 0 || st.unmetered {
		st.srv.opts.Reporter.Report(ev)
		return
	}
	go st.srv.reportWithBudgets(ev, st.scopes, rej)
}

// reportWithBudgets reads the budget states of scopes into ev and then
// reports it; it runs in its own goroutine, so the store call never delays
// an answer. rej is the request's refusal, if any (see BudgetStates).
func (srv *Server) reportWithBudgets(ev *sink.Event, scopes []budget.Scope, rej *budget.Rejection) {
	defer func() { // a goroutine of its own: a panic here would end the process
		if r := recover(); r != nil {
			_ = srv.recovered(ev.Report.GetRequestId(), "reporting with budget states", r)
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), srv.opts.SettleTimeout)
	defer cancel()
	states, err := srv.opts.Budgets.Status(ctx, scopes)
	if err != nil {
		srv.opts.Log.Warn("reading budget states for alerts failed", zap.String("request_id", ev.Report.GetRequestId()), zap.Error(err))
	}
	ev.Budgets = BudgetStates(states, rej)
	srv.opts.Reporter.Report(ev)
}

// event builds the Event of the stream and its CostReport, the report's
// timestamps and durations in the same allocation.
func (st *stream) event(o outcome, decision spendguardv1.Decision, reason, budgetName string) *sink.Event {
	end := st.srv.opts.Now()
	r := &struct {
		ev                  sink.Event
		rep                 spendguardv1.CostReport
		start, end          timestamppb.Timestamp
		duration, proc, ttf durationpb.Duration
	}{}
	r.ev.Report = &r.rep
	r.start.Seconds, r.start.Nanos = st.start.Unix(), int32(st.start.Nanosecond())
	r.end.Seconds, r.end.Nanos = end.Unix(), int32(end.Nanosecond())
	setDuration(&r.duration, end.Sub(st.start))
	setDuration(&r.proc, st.procTime)
	rep := &r.rep
	rep.RequestId = st.requestID
	rep.StartTime, rep.EndTime = &r.start, &r.end
	if st.endpoint != 0 { // none for a POST refused as unpriced: the reason names its path
		rep.Endpoint = st.endpoint.String()
	}
	rep.Scope = st.ident.Values
	rep.RequestedModel, rep.ServedModel, rep.ResponseModel = st.model, st.servedModel, st.responseModel()
	rep.PromptTokens, rep.CachedPromptTokens = o.usage.Prompt, o.usage.CachedPrompt
	rep.CompletionTokens, rep.ReasoningTokens = o.usage.Completion, st.reasoning
	rep.CostNanoUsd, rep.InputCostNanoUsd, rep.OutputCostNanoUsd = int64(o.cost.Total), int64(o.cost.Input), int64(o.cost.Output)
	rep.Estimated, rep.UsageSource = o.estimated, o.sourceOf()
	rep.Decision, rep.RejectReason, rep.Budget = decision, reason, budgetName
	rep.UpstreamStatus = int32(st.status)
	rep.Stream = st.req != nil && st.req.Stream
	rep.Aborted, rep.Cut = o.aborted, o.cut
	rep.Duration, rep.ProcessorTime = &r.duration, &r.proc
	if !st.firstByte.IsZero() {
		setDuration(&r.ttf, st.firstByte.Sub(st.start))
		rep.UpstreamTimeToFirstByte = &r.ttf
	}
	return &r.ev
}

// responseModel is the model the upstream named in its response so far,
// "" when it named none (or had not answered).
func (st *stream) responseModel() string {
	switch {
	case st.sseScan != nil:
		return st.sseScan.Model(st.servedModel)
	case st.scanner != nil:
		return st.scanner.Model(st.servedModel)
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
