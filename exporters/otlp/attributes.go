package otlp

import (
	"encoding/json"
	"sort"

	"go.opentelemetry.io/otel/attribute"

	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Attribute keys, from the OpenTelemetry GenAI conventions, Langfuse's
// OTLP mapping, and spendguard's own.
const (
	attrOperation     = "gen_ai.operation.name"
	attrProvider      = "gen_ai.provider.name"
	attrRequestModel  = "gen_ai.request.model"
	attrResponseModel = "gen_ai.response.model"
	attrInputTokens   = "gen_ai.usage.input_tokens"
	attrOutputTokens  = "gen_ai.usage.output_tokens"
	attrCachedTokens  = "gen_ai.usage.cache_read.input_tokens"
	attrCost          = "gen_ai.usage.cost"

	attrObsType    = "langfuse.observation.type"
	attrObsModel   = "langfuse.observation.model.name"
	attrObsUsage   = "langfuse.observation.usage_details"
	attrObsCost    = "langfuse.observation.cost_details"
	attrObsLevel   = "langfuse.observation.level"
	attrObsMessage = "langfuse.observation.status_message"
	attrTraceName  = "langfuse.trace.name"
	attrTraceMeta  = "langfuse.trace.metadata."
	attrUserID     = "user.id"
	attrSessionID  = "session.id"
	attrHTTPStatus = "http.response.status_code"

	attrScope = "spendguard.scope."
)

// operation maps an endpoint to gen_ai.operation.name. The Responses API
// is a chat-style generation, so it is "chat".
func operation(endpoint string) string {
	switch endpoint {
	case "/v1/completions":
		return "text_completion"
	case "/v1/embeddings":
		return "embeddings"
	default:
		return "chat"
	}
}

// spanName follows the GenAI convention "{operation} {model}".
func spanName(r *spendguardv1.CostReport) string {
	model := r.GetServedModel()
	if model == "" {
		model = r.GetRequestedModel()
	}
	if model == "" {
		return operation(r.GetEndpoint())
	}
	return operation(r.GetEndpoint()) + " " + model
}

// attributes returns the span attributes of one report.
func (e *Exporter) attributes(r *spendguardv1.CostReport) []attribute.KeyValue {
	served := r.GetServedModel()
	if served == "" {
		served = r.GetRequestedModel()
	}
	responseModel := r.GetResponseModel()
	if responseModel == "" {
		responseModel = r.GetServedModel()
	}
	attrs := make([]attribute.KeyValue, 0, 40)
	attrs = append(attrs,
		attribute.String(attrOperation, operation(r.GetEndpoint())),
		attribute.String(attrProvider, e.cfg.ProviderName),
		attribute.String(attrRequestModel, r.GetRequestedModel()),
		attribute.Int64(attrInputTokens, r.GetPromptTokens()),
		attribute.Int64(attrOutputTokens, r.GetCompletionTokens()),
		attribute.Int64(attrCachedTokens, r.GetCachedPromptTokens()),
		attribute.Float64(attrCost, sink.USDFloat(r.GetCostNanoUsd())),

		attribute.String(attrObsType, "generation"),
		attribute.String(attrObsModel, served),
		attribute.String(attrObsUsage, usageDetails(r)),
		attribute.String(attrObsCost, costDetails(r)),
		attribute.String(attrTraceName, spanName(r)),

		attribute.String("spendguard.request_id", r.GetRequestId()),
		attribute.String("spendguard.endpoint", r.GetEndpoint()),
		attribute.String("spendguard.decision", sink.DecisionName(r.GetDecision())),
		attribute.String("spendguard.served_model", r.GetServedModel()),
		attribute.Int64("spendguard.cost_nano_usd", r.GetCostNanoUsd()),
		attribute.Int64("spendguard.input_cost_nano_usd", r.GetInputCostNanoUsd()),
		attribute.Int64("spendguard.output_cost_nano_usd", r.GetOutputCostNanoUsd()),
		attribute.Int64("spendguard.reasoning_tokens", r.GetReasoningTokens()),
		attribute.Bool("spendguard.estimated", r.GetEstimated()),
		attribute.String("spendguard.usage_source", sink.UsageSourceName(r.GetUsageSource())),
		attribute.Bool("spendguard.stream", r.GetStream()),
		attribute.Bool("spendguard.aborted", r.GetAborted()),
		attribute.Bool("spendguard.cut", r.GetCut()),
	)
	if responseModel != "" {
		attrs = append(attrs, attribute.String(attrResponseModel, responseModel))
	}
	if b := r.GetBudget(); b != "" {
		attrs = append(attrs, attribute.String("spendguard.budget", b))
	}
	if s := r.GetUpstreamStatus(); s != 0 {
		attrs = append(attrs, attribute.Int(attrHTTPStatus, int(s)))
	}
	if t := r.GetProcessorTime(); t != nil {
		attrs = append(attrs, attribute.Float64("spendguard.processor_time_seconds", t.AsDuration().Seconds()))
	}
	if t := r.GetUpstreamTimeToFirstByte(); t != nil {
		attrs = append(attrs, attribute.Float64("spendguard.upstream_time_to_first_byte_seconds", t.AsDuration().Seconds()))
	}
	switch {
	case r.GetDecision() == spendguardv1.Decision_DECISION_REJECTED:
		attrs = append(attrs, attribute.String(attrObsLevel, "WARNING"), attribute.String(attrObsMessage, r.GetRejectReason()))
	case r.GetCut():
		attrs = append(attrs, attribute.String(attrObsLevel, "WARNING"), attribute.String(attrObsMessage, cutMessage(r)))
	case r.GetUpstreamStatus() >= 400 || r.GetAborted():
		attrs = append(attrs, attribute.String(attrObsLevel, "ERROR"))
	}
	scope := r.GetScope()
	if v := scope[e.cfg.UserDimension]; v != "" {
		attrs = append(attrs, attribute.String(attrUserID, v))
	}
	if d := e.cfg.SessionDimension; d != "" && scope[d] != "" {
		attrs = append(attrs, attribute.String(attrSessionID, scope[d]))
	}
	keys := make([]string, 0, len(scope))
	for k := range scope {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		attrs = append(attrs, attribute.String(attrScope+k, scope[k]), attribute.String(attrTraceMeta+k, scope[k]))
	}
	return attrs
}

// usageDetails is Langfuse's usage_details: disjoint token counts (input
// without the cached part, output without reasoning) and their total, in
// Langfuse's key names for OpenAI-style usage.
func usageDetails(r *spendguardv1.CostReport) string {
	cached := min(r.GetCachedPromptTokens(), r.GetPromptTokens())
	reasoning := min(r.GetReasoningTokens(), r.GetCompletionTokens())
	m := map[string]int64{
		"input":  r.GetPromptTokens() - cached,
		"output": r.GetCompletionTokens() - reasoning,
		"total":  r.GetPromptTokens() + r.GetCompletionTokens(),
	}
	if cached > 0 {
		m["input_cached_tokens"] = cached
	}
	if reasoning > 0 {
		m["output_reasoning_tokens"] = reasoning
	}
	return mustJSON(m)
}

// costDetails is Langfuse's cost_details in USD: input (cached and
// uncached prompt tokens), output and total, exactly as spendguard
// charged them.
func costDetails(r *spendguardv1.CostReport) string {
	return mustJSON(map[string]json.Number{
		"input":  sink.USDExact(r.GetInputCostNanoUsd()),
		"output": sink.USDExact(r.GetOutputCostNanoUsd()),
		"total":  sink.USDExact(r.GetCostNanoUsd()),
	})
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		return "{}"
	}
	return string(b)
}

// cutMessage explains a stream spendguard ended at a budget cap.
func cutMessage(r *spendguardv1.CostReport) string {
	if b := r.GetBudget(); b != "" {
		return "stream ended at the hard cap of budget " + b
	}
	return "stream ended at a budget's hard cap"
}
