package sink

import (
	"encoding/json"
	"strings"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// DecisionName is the lower-case word for d used in logs, metrics labels
// and exported attributes: allowed, downgraded, rejected, unmetered (or
// unspecified).
func DecisionName(d spendguardv1.Decision) string {
	switch d {
	case spendguardv1.Decision_DECISION_ALLOWED:
		return "allowed"
	case spendguardv1.Decision_DECISION_DOWNGRADED:
		return "downgraded"
	case spendguardv1.Decision_DECISION_REJECTED:
		return "rejected"
	case spendguardv1.Decision_DECISION_UNMETERED:
		return "unmetered"
	default:
		return "unspecified"
	}
}

// UsageSourceName is the lower-case word for s used in metrics labels
// and exported attributes: reported, counted, estimated, or none (no
// usage: rejected, or ended before the upstream answered).
func UsageSourceName(s spendguardv1.UsageSource) string {
	switch s {
	case spendguardv1.UsageSource_USAGE_SOURCE_REPORTED:
		return "reported"
	case spendguardv1.UsageSource_USAGE_SOURCE_COUNTED:
		return "counted"
	case spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED:
		return "estimated"
	default:
		return "none"
	}
}

// Record is the JSON form of a CostReport written by the JSON log
// exporter: snake_case keys, times in RFC 3339 (UTC), durations in
// seconds, money both exactly (integer nano-USD) and as USD with 6
// decimals. Its keys are a stable contract (docs/exporters.md).
type Record struct {
	Time               string            `json:"time"`
	RequestID          string            `json:"request_id"`
	Endpoint           string            `json:"endpoint"`
	Decision           string            `json:"decision"`
	RejectReason       string            `json:"reject_reason,omitempty"`
	Budget             string            `json:"budget,omitempty"`
	Scope              map[string]string `json:"scope"`
	RequestedModel     string            `json:"requested_model,omitempty"`
	ServedModel        string            `json:"served_model,omitempty"`
	ResponseModel      string            `json:"response_model,omitempty"`
	PromptTokens       int64             `json:"prompt_tokens"`
	CachedPromptTokens int64             `json:"cached_prompt_tokens"`
	CompletionTokens   int64             `json:"completion_tokens"`
	ReasoningTokens    int64             `json:"reasoning_tokens"`
	CostUSD            json.Number       `json:"cost_usd"`
	CostNanoUSD        int64             `json:"cost_nano_usd"`
	InputCostNanoUSD   int64             `json:"input_cost_nano_usd"`
	OutputCostNanoUSD  int64             `json:"output_cost_nano_usd"`
	Estimated          bool              `json:"estimated"`
	UsageSource        string            `json:"usage_source"`
	Stream             bool              `json:"stream"`
	Aborted            bool              `json:"aborted"`
	UpstreamStatus     int32             `json:"upstream_status"`
	StartTime          string            `json:"start_time"`
	DurationSeconds    float64           `json:"duration_seconds"`
	UpstreamTTFBSec    *float64          `json:"upstream_time_to_first_byte_seconds,omitempty"`
	ProcessorSeconds   float64           `json:"processor_time_seconds"`
}

// NewRecord converts r.
func NewRecord(r *spendguardv1.CostReport) Record {
	scope := r.GetScope()
	if scope == nil {
		scope = map[string]string{}
	}
	rec := Record{
		Time:               timeText(r.GetEndTime()),
		RequestID:          r.GetRequestId(),
		Endpoint:           r.GetEndpoint(),
		Decision:           DecisionName(r.GetDecision()),
		RejectReason:       r.GetRejectReason(),
		Budget:             r.GetBudget(),
		Scope:              scope,
		RequestedModel:     r.GetRequestedModel(),
		ServedModel:        r.GetServedModel(),
		ResponseModel:      r.GetResponseModel(),
		PromptTokens:       r.GetPromptTokens(),
		CachedPromptTokens: r.GetCachedPromptTokens(),
		CompletionTokens:   r.GetCompletionTokens(),
		ReasoningTokens:    r.GetReasoningTokens(),
		CostUSD:            json.Number(money.Nano(r.GetCostNanoUsd()).USD()),
		CostNanoUSD:        r.GetCostNanoUsd(),
		InputCostNanoUSD:   r.GetInputCostNanoUsd(),
		OutputCostNanoUSD:  r.GetOutputCostNanoUsd(),
		Estimated:          r.GetEstimated(),
		UsageSource:        UsageSourceName(r.GetUsageSource()),
		Stream:             r.GetStream(),
		Aborted:            r.GetAborted(),
		UpstreamStatus:     r.GetUpstreamStatus(),
		StartTime:          timeText(r.GetStartTime()),
		DurationSeconds:    seconds(r.GetDuration()),
		ProcessorSeconds:   seconds(r.GetProcessorTime()),
	}
	if t := r.GetUpstreamTimeToFirstByte(); t != nil {
		s := seconds(t)
		rec.UpstreamTTFBSec = &s
	}
	return rec
}

func timeText(t *timestamppb.Timestamp) string {
	if t == nil {
		return ""
	}
	return t.AsTime().UTC().Format(time.RFC3339Nano)
}

func seconds(d *durationpb.Duration) float64 {
	if d == nil {
		return 0
	}
	return d.AsDuration().Seconds()
}

// USDFloat is n in USD as a float64, for formats that carry money as a
// JSON or OTLP double (Langfuse's cost_details, gen_ai.usage.cost). It is
// exact to well below a nano-USD for any realistic amount.
func USDFloat(n int64) float64 {
	whole, frac := n/int64(money.PerUSD), n%int64(money.PerUSD)
	return float64(whole) + float64(frac)/float64(money.PerUSD)
}

// USDExact is n nano-USD as an exact decimal JSON number of USD, without
// trailing zeros: 1_500_000 is 0.0015, 2_000_000_000 is 2.
func USDExact(n int64) json.Number {
	s := strings.TrimRight(money.Nano(n).Fixed(9), "0")
	return json.Number(strings.TrimSuffix(s, "."))
}
