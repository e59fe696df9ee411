// Package sinktest builds realistic CostReports and Events for exporter
// tests and benchmarks.
package sinktest

import (
	"fmt"
	"time"

	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Start is the start time of report 0; report i starts i seconds later.
var Start = time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)

// Report returns the i-th report of a deterministic series: a chat
// completion for tenant acme (team search, user u-<i%3>) on
// Llama-3.1-70B priced at 0.60/0.30/0.80 USD per million tokens, with
// 1000+i prompt tokens of which 200 cached, 100 completion tokens of which
// 10 reasoning.
func Report(i int) *spendguardv1.CostReport {
	start := Start.Add(time.Duration(i) * time.Second)
	prompt, cached, completion := int64(1000+i), int64(200), int64(100)
	input := (prompt-cached)*600 + cached*300 // nano-USD: 0.60 USD/M = 600 nano per token
	output := completion * 800
	return &spendguardv1.CostReport{
		RequestId:               fmt.Sprintf("req-%04d", i),
		StartTime:               timestamppb.New(start),
		EndTime:                 timestamppb.New(start.Add(1500 * time.Millisecond)),
		Endpoint:                "/v1/chat/completions",
		Scope:                   map[string]string{"tenant": "acme", "team": "search", "user": fmt.Sprintf("u-%d", i%3), "use_case": "rag"},
		RequestedModel:          "meta-llama/Llama-3.1-70B-Instruct",
		ServedModel:             "meta-llama/Llama-3.1-70B-Instruct",
		ResponseModel:           "meta-llama/Llama-3.1-70B-Instruct",
		PromptTokens:            prompt,
		CachedPromptTokens:      cached,
		CompletionTokens:        completion,
		ReasoningTokens:         10,
		CostNanoUsd:             input + output,
		InputCostNanoUsd:        input,
		OutputCostNanoUsd:       output,
		Decision:                spendguardv1.Decision_DECISION_ALLOWED,
		UsageSource:             spendguardv1.UsageSource_USAGE_SOURCE_REPORTED,
		Budget:                  "tenant-monthly",
		UpstreamStatus:          200,
		Stream:                  i%2 == 1,
		Duration:                durationpb.New(1500 * time.Millisecond),
		UpstreamTimeToFirstByte: durationpb.New(250 * time.Millisecond),
		ProcessorTime:           durationpb.New(120 * time.Microsecond),
	}
}

// Event wraps Report(i) with its request JSON.
func Event(i int) *sink.Event {
	r := Report(i)
	req := fmt.Sprintf(`{"model":%q,"messages":[{"role":"user","content":"question %d"}],"max_tokens":100}`, r.GetServedModel(), i)
	return &sink.Event{Report: r, RequestJSON: []byte(req)}
}

// Events returns Event(0) .. Event(n-1).
func Events(n int) []*sink.Event {
	out := make([]*sink.Event, n)
	for i := range out {
		out[i] = Event(i)
	}
	return out
}
