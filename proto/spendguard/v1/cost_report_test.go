package spendguardv1

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"
)

// sample sets every field to a non-zero value, so a field dropped by an
// encoding shows up as a difference.
func sample() *CostReport {
	start := time.Date(2026, 11, 3, 14, 5, 6, 123456789, time.UTC)
	return &CostReport{
		RequestId:               "7f9c2b1e-req",
		StartTime:               timestamppb.New(start),
		EndTime:                 timestamppb.New(start.Add(2500 * time.Millisecond)),
		Endpoint:                "/v1/chat/completions",
		Scope:                   map[string]string{"tenant": "acme", "team": "search", "user": "u-42", "use_case": "rag"},
		RequestedModel:          "meta-llama/Llama-3.1-70B-Instruct",
		ServedModel:             "meta-llama/Llama-3.1-8B-Instruct",
		ResponseModel:           "llama-8b",
		PromptTokens:            1200,
		CachedPromptTokens:      1024,
		CompletionTokens:        350,
		ReasoningTokens:         120,
		CostNanoUsd:             1_234_567,
		InputCostNanoUsd:        1_000_000,
		OutputCostNanoUsd:       234_567,
		Estimated:               true,
		Decision:                Decision_DECISION_DOWNGRADED,
		RejectReason:            "budget tenant-monthly exhausted for tenant=acme",
		Budget:                  "tenant-monthly",
		UpstreamStatus:          200,
		Stream:                  true,
		Aborted:                 true,
		Duration:                durationpb.New(2500 * time.Millisecond),
		UpstreamTimeToFirstByte: durationpb.New(180 * time.Millisecond),
		ProcessorTime:           durationpb.New(3 * time.Millisecond),
		UsageSource:             UsageSource_USAGE_SOURCE_ESTIMATED,
		Cut:                     true,
	}
}

// TestSampleSetsEveryField guards the round-trip tests: a field added to the
// .proto but not to sample() would otherwise go untested.
func TestSampleSetsEveryField(t *testing.T) {
	m := sample().ProtoReflect()
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		assert.True(t, m.Has(fields.Get(i)), "sample() leaves %s unset", fields.Get(i).Name())
	}
}

func TestCostReportRoundTrip(t *testing.T) {
	want := sample()

	t.Run("binary", func(t *testing.T) {
		data, err := proto.Marshal(want)
		require.NoError(t, err)
		var got CostReport
		require.NoError(t, proto.Unmarshal(data, &got))
		assert.True(t, proto.Equal(want, &got), "got %v", &got)
		assertFields(t, &got)
	})

	t.Run("json", func(t *testing.T) {
		data, err := protojson.Marshal(want)
		require.NoError(t, err)
		// The JSON names exporters and dashboards will see.
		for _, s := range []string{
			`"requestId":"7f9c2b1e-req"`, `"startTime":"2026-11-03T14:05:06.123456789Z"`,
			`"decision":"DECISION_DOWNGRADED"`, `"costNanoUsd":"1234567"`, `"duration":"2.500s"`,
		} {
			assert.Contains(t, string(compact(t, data)), s)
		}
		var got CostReport
		require.NoError(t, protojson.Unmarshal(data, &got))
		assert.True(t, proto.Equal(want, &got), "got %v", &got)
		assertFields(t, &got)
	})

	t.Run("json with proto field names", func(t *testing.T) {
		data, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(want)
		require.NoError(t, err)
		assert.Contains(t, string(compact(t, data)), `"upstream_time_to_first_byte":"0.180s"`)
		var got CostReport
		require.NoError(t, protojson.Unmarshal(data, &got))
		assert.True(t, proto.Equal(want, &got), "got %v", &got)
	})
}

// assertFields checks a few decoded fields by value, independently of
// proto.Equal.
func assertFields(t *testing.T, got *CostReport) {
	t.Helper()
	assert.Equal(t, "7f9c2b1e-req", got.GetRequestId())
	assert.Equal(t, "acme", got.GetScope()["tenant"])
	assert.Len(t, got.GetScope(), 4)
	assert.Equal(t, int64(1_234_567), got.GetCostNanoUsd())
	assert.Equal(t, got.GetCostNanoUsd(), got.GetInputCostNanoUsd()+got.GetOutputCostNanoUsd())
	assert.Equal(t, Decision_DECISION_DOWNGRADED, got.GetDecision())
	assert.Equal(t, int32(200), got.GetUpstreamStatus())
	assert.True(t, got.GetEstimated() && got.GetStream() && got.GetAborted())
	assert.Equal(t, 123456789, got.GetStartTime().AsTime().Nanosecond())
	assert.Equal(t, 2500*time.Millisecond, got.GetEndTime().AsTime().Sub(got.GetStartTime().AsTime()))
	assert.Equal(t, 180*time.Millisecond, got.GetUpstreamTimeToFirstByte().AsDuration())
}

// compact removes the random spaces protojson inserts to discourage
// byte-for-byte comparisons of its output.
func compact(t *testing.T, data []byte) []byte {
	t.Helper()
	var m map[string]any
	require.NoError(t, json.Unmarshal(data, &m))
	out, err := json.Marshal(m)
	require.NoError(t, err)
	return out
}

func TestDecisionNames(t *testing.T) {
	for d, name := range map[Decision]string{
		Decision_DECISION_UNSPECIFIED: "DECISION_UNSPECIFIED",
		Decision_DECISION_ALLOWED:     "DECISION_ALLOWED",
		Decision_DECISION_DOWNGRADED:  "DECISION_DOWNGRADED",
		Decision_DECISION_REJECTED:    "DECISION_REJECTED",
		Decision_DECISION_UNMETERED:   "DECISION_UNMETERED",
	} {
		assert.Equal(t, name, d.String())
	}
	assert.Len(t, Decision_name, 5)
}
