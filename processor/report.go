package processor

import (
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

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

// report hands the request's CostReport to the reporter. It runs once per
// stream, after the money is settled, off the per-chunk path.
func (st *stream) report(o outcome, decision spendguardv1.Decision, reason, budgetName string) {
	r := st.srv.opts.Reporter
	if r == nil {
		return
	}
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
	r.Report(rep)
}
