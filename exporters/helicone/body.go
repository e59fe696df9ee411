package helicone

import (
	"bytes"
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

type logRequest struct {
	ProviderRequest  providerRequest  `json:"providerRequest"`
	ProviderResponse providerResponse `json:"providerResponse"`
	Timing           timing           `json:"timing"`
}

type providerRequest struct {
	URL  string            `json:"url"`
	JSON json.RawMessage   `json:"json"`
	Meta map[string]string `json:"meta"`
}

type providerResponse struct {
	JSON    json.RawMessage   `json:"json"`
	Status  int               `json:"status"`
	Headers map[string]string `json:"headers"`
}

type timing struct {
	StartTime        stamp  `json:"startTime"`
	EndTime          stamp  `json:"endTime"`
	TimeToFirstToken *int64 `json:"timeToFirstToken,omitempty"`
}

type stamp struct {
	Seconds      int64 `json:"seconds"`
	Milliseconds int64 `json:"milliseconds"`
}

func stampOf(t time.Time) stamp {
	ms := t.UnixMilli()
	return stamp{Seconds: ms / 1000, Milliseconds: ms % 1000}
}

// abortedStatus stands for "no answer": the client went away before the
// upstream answered (nginx's 499, client closed request).
const abortedStatus = 499

// Body returns the JSON body logged for ev.
func Body(ev *sink.Event, cfg Config) ([]byte, error) {
	cfg = cfg.WithDefaults()
	r := ev.Report
	status := int(r.GetUpstreamStatus())
	if status == 0 {
		status = abortedStatus
	}
	body := logRequest{
		ProviderRequest: providerRequest{
			URL:  "custom-model-nopath",
			JSON: requestJSON(ev, cfg.MaxRequestBytes),
			Meta: meta(r, cfg.UserDimension),
		},
		ProviderResponse: providerResponse{JSON: responseJSON(ev, status), Status: status, Headers: map[string]string{}},
		Timing: timing{
			StartTime: stampOf(r.GetStartTime().AsTime()),
			EndTime:   stampOf(r.GetEndTime().AsTime()),
		},
	}
	if t := r.GetUpstreamTimeToFirstByte(); t != nil {
		ms := t.AsDuration().Milliseconds()
		body.Timing.TimeToFirstToken = &ms
	}
	return json.Marshal(body)
}

func requestJSON(ev *sink.Event, limit int) json.RawMessage {
	b := bytes.TrimSpace(ev.RequestJSON)
	var reason string
	switch {
	case len(b) == 0:
		reason = "not captured"
	case len(b) > limit:
		reason = fmt.Sprintf("%d bytes, over max_request_bytes", len(b))
	case b[0] != '{' || !json.Valid(b):
		reason = "not a JSON object"
	default:
		return json.RawMessage(b)
	}
	model := ev.Report.GetServedModel()
	if model == "" {
		model = ev.Report.GetRequestedModel()
	}
	stub, _ := json.Marshal(map[string]string{"model": model, "spendguard_request_omitted": reason})
	return stub
}

// responseJSON is the providerResponse body: always synthesised from the
// report, since spendguard reads the upstream's response as it streams
// past and keeps none of it. It carries what Helicone reads from a custom
// log (the usage, the model the upstream named) and is marked synthetic.
func responseJSON(ev *sink.Event, status int) json.RawMessage {
	r := ev.Report
	model := r.GetResponseModel()
	if model == "" {
		model = r.GetServedModel()
	}
	out := map[string]any{
		"id":     r.GetRequestId(),
		"object": objectName(r.GetEndpoint()),
		"model":  model,
		"spendguard": map[string]any{
			"synthetic":    true,
			"estimated":    r.GetEstimated(),
			"usage_source": sink.UsageSourceName(r.GetUsageSource()),
			"aborted":      r.GetAborted(),
			"cut":          r.GetCut(),
			"cost_usd":     sink.USDExact(r.GetCostNanoUsd()),
		},
	}
	if status >= 400 && r.GetCostNanoUsd() == 0 {
		out["error"] = map[string]any{"message": fmt.Sprintf("upstream answered %d", status), "type": "upstream_error"}
		return mustJSON(out)
	}
	usage := map[string]any{
		"prompt_tokens":     r.GetPromptTokens(),
		"completion_tokens": r.GetCompletionTokens(),
		"total_tokens":      r.GetPromptTokens() + r.GetCompletionTokens(),
	}
	if c := r.GetCachedPromptTokens(); c > 0 {
		usage["prompt_tokens_details"] = map[string]int64{"cached_tokens": c}
	}
	if c := r.GetReasoningTokens(); c > 0 {
		usage["completion_tokens_details"] = map[string]int64{"reasoning_tokens": c}
	}
	out["usage"] = usage
	if r.GetEndpoint() != "/v1/embeddings" {
		out["choices"] = []any{}
	}
	return mustJSON(out)
}

func objectName(endpoint string) string {
	switch endpoint {
	case "/v1/completions":
		return "text_completion"
	case "/v1/embeddings":
		return "list"
	case "/v1/responses":
		return "response"
	default:
		return "chat.completion"
	}
}

// meta is the providerRequest.meta map of Helicone headers.
func meta(r *spendguardv1.CostReport, userDim string) map[string]string {
	m := map[string]string{
		"Helicone-Property-Spendguard-Request-Id":   r.GetRequestId(),
		"Helicone-Property-Spendguard-Decision":     sink.DecisionName(r.GetDecision()),
		"Helicone-Property-Spendguard-Cost-Usd":     money.Nano(r.GetCostNanoUsd()).USD(),
		"Helicone-Property-Spendguard-Estimated":    fmt.Sprint(r.GetEstimated()),
		"Helicone-Property-Spendguard-Usage-Source": sink.UsageSourceName(r.GetUsageSource()),
	}
	if b := r.GetBudget(); b != "" {
		m["Helicone-Property-Spendguard-Budget"] = b
	}
	if r.GetCut() {
		m["Helicone-Property-Spendguard-Cut"] = "true"
	}
	if isUUID(r.GetRequestId()) {
		m["Helicone-Request-Id"] = r.GetRequestId()
	}
	scope := r.GetScope()
	if u := scope[userDim]; u != "" {
		m["Helicone-User-Id"] = u
	}
	keys := make([]string, 0, len(scope))
	for k := range scope {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if k != userDim {
			m["Helicone-Property-"+propertyName(k)] = scope[k]
		}
	}
	return m
}

// propertyName turns a dimension (use_case) into a header-style name
// (Use-Case): header names with underscores are dropped by many proxies.
func propertyName(dim string) string {
	parts := strings.Split(dim, "_")
	for i, p := range parts {
		if p != "" {
			parts[i] = strings.ToUpper(p[:1]) + p[1:]
		}
	}
	return strings.Join(parts, "-")
}

func isUUID(s string) bool {
	if len(s) != 36 {
		return false
	}
	for i, c := range s {
		switch i {
		case 8, 13, 18, 23:
			if c != '-' {
				return false
			}
		default:
			if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F') {
				return false
			}
		}
	}
	return true
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		return json.RawMessage("{}")
	}
	return b
}
