package otlp_test

import (
	"context"
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/otlp"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/otlpsink"
)

const langfusePath = "/api/public/otel/v1/traces"

func newExporter(t *testing.T, s *otlpsink.Sink, mod func(*otlp.Config)) *otlp.Exporter {
	t.Helper()
	cfg := otlp.Config{
		Endpoint: s.URL() + langfusePath,
		Headers:  map[string]string{"Authorization": "Basic cGs6c2s=", "x-langfuse-ingestion-version": "4"},
	}
	if mod != nil {
		mod(&cfg)
	}
	e, err := otlp.New(cfg, "1.2.3")
	require.NoError(t, err)
	t.Cleanup(func() { _ = e.Close(context.Background()) })
	return e
}

func TestExportSendsOneSpanPerReportWithLangfuseAndGenAIAttributes(t *testing.T) {
	s := otlpsink.New()
	defer s.Close()
	e := newExporter(t, s, nil)

	require.NoError(t, e.Export(context.Background(), sinktest.Events(3)))

	spans := s.Spans()
	require.Len(t, spans, 3)
	assert.Zero(t, s.Invalid())
	reqs := s.Requests()
	require.Len(t, reqs, 1, "one batch, one OTLP request")
	assert.Equal(t, langfusePath, reqs[0].Path, "the endpoint's path is used as is")
	assert.Equal(t, "Basic cGs6c2s=", reqs[0].Header.Get("Authorization"))
	assert.Equal(t, "4", reqs[0].Header.Get("x-langfuse-ingestion-version"))
	assert.Equal(t, "gzip", reqs[0].Header.Get("Content-Encoding"))

	rep := sinktest.Report(0)
	sp := spans[0]
	assert.Equal(t, "chat meta-llama/Llama-3.1-70B-Instruct", sp.Name)
	assert.Equal(t, otlp.TraceID("req-0000").String(), sp.TraceID)
	assert.Empty(t, sp.ParentID)
	assert.Equal(t, "SPAN_KIND_CLIENT", sp.Kind)
	assert.True(t, sp.Start.Equal(rep.GetStartTime().AsTime()))
	assert.True(t, sp.End.Equal(rep.GetEndTime().AsTime()))
	assert.Equal(t, "STATUS_CODE_UNSET", sp.Status)
	assert.Equal(t, "spendguard", sp.Resource["service.name"])
	assert.Equal(t, "1.2.3", sp.Resource["service.version"])

	a := sp.Attrs
	for k, want := range map[string]any{
		"gen_ai.operation.name":                "chat",
		"gen_ai.provider.name":                 "vllm",
		"gen_ai.request.model":                 "meta-llama/Llama-3.1-70B-Instruct",
		"gen_ai.response.model":                "meta-llama/Llama-3.1-70B-Instruct",
		"gen_ai.usage.input_tokens":            int64(1000),
		"gen_ai.usage.output_tokens":           int64(100),
		"gen_ai.usage.cache_read.input_tokens": int64(200),
		"gen_ai.usage.cost":                    0.00062,
		"langfuse.observation.type":            "generation",
		"langfuse.observation.model.name":      "meta-llama/Llama-3.1-70B-Instruct",
		"user.id":                              "u-0",
		"spendguard.scope.tenant":              "acme",
		"spendguard.scope.team":                "search",
		"spendguard.scope.use_case":            "rag",
		"langfuse.trace.metadata.tenant":       "acme",
		"spendguard.request_id":                "req-0000",
		"spendguard.decision":                  "allowed",
		"spendguard.budget":                    "tenant-monthly",
		"spendguard.cost_nano_usd":             int64(620_000),
		"spendguard.estimated":                 false,
		"spendguard.usage_source":              "reported",
		"http.response.status_code":            int64(200),
	} {
		assert.Equal(t, want, a[k], k)
	}
	var usage map[string]int64
	require.NoError(t, json.Unmarshal([]byte(a["langfuse.observation.usage_details"].(string)), &usage))
	assert.Equal(t, map[string]int64{"input": 800, "input_cached_tokens": 200, "output": 90, "output_reasoning_tokens": 10, "total": 1100}, usage)
	var cost map[string]json.Number
	require.NoError(t, json.Unmarshal([]byte(a["langfuse.observation.cost_details"].(string)), &cost))
	assert.Equal(t, map[string]json.Number{"input": "0.00054", "output": "0.00008", "total": "0.00062"}, cost)
	assert.NotContains(t, a, "session.id")
}

func TestRetriedBatchResendsTheSameSpans(t *testing.T) {
	s := otlpsink.New()
	defer s.Close()
	e := newExporter(t, s, func(c *otlp.Config) { c.Compression = "none" })
	batch := sinktest.Events(2)
	require.NoError(t, e.Export(context.Background(), batch))
	require.NoError(t, e.Export(context.Background(), batch))
	spans := s.Spans()
	require.Len(t, spans, 4)
	assert.Equal(t, spans[0].SpanID, spans[2].SpanID)
	assert.Equal(t, spans[1].TraceID, spans[3].TraceID)
	assert.NotEqual(t, spans[0].TraceID, spans[1].TraceID)
	assert.Empty(t, s.Requests()[0].Header.Get("Content-Encoding"))
}

func TestRejectedAndFailedRequestsAreErrorSpans(t *testing.T) {
	s := otlpsink.New()
	defer s.Close()
	e := newExporter(t, s, func(c *otlp.Config) { c.SessionDimension = "team"; c.UserDimension = "tenant" })

	rejected := sinktest.Report(0)
	rejected.Decision = spendguardv1.Decision_DECISION_REJECTED
	rejected.RejectReason = "budget tenant-monthly exhausted for tenant=acme"
	rejected.ServedModel, rejected.ResponseModel, rejected.UpstreamStatus = "", "", 0
	rejected.CostNanoUsd, rejected.InputCostNanoUsd, rejected.OutputCostNanoUsd = 0, 0, 0
	failed := sinktest.Report(1)
	failed.UpstreamStatus = 500
	embed := sinktest.Report(2)
	embed.Endpoint = "/v1/embeddings"

	require.NoError(t, e.Export(context.Background(), []*sink.Event{{Report: rejected}, {Report: failed}, {Report: embed}}))
	spans := s.Spans()
	require.Len(t, spans, 3)
	assert.Equal(t, "STATUS_CODE_ERROR", spans[0].Status)
	assert.Equal(t, rejected.RejectReason, spans[0].Message)
	assert.Equal(t, "WARNING", spans[0].Attrs["langfuse.observation.level"])
	assert.Equal(t, "rejected", spans[0].Attrs["spendguard.decision"])
	assert.Equal(t, 0.0, spans[0].Attrs["gen_ai.usage.cost"])
	assert.Equal(t, "acme", spans[0].Attrs["user.id"])
	assert.Equal(t, "search", spans[0].Attrs["session.id"])
	assert.Equal(t, "STATUS_CODE_ERROR", spans[1].Status)
	assert.Equal(t, "ERROR", spans[1].Attrs["langfuse.observation.level"])
	assert.Equal(t, "embeddings meta-llama/Llama-3.1-70B-Instruct", spans[2].Name)
	assert.Equal(t, "embeddings", spans[2].Attrs["gen_ai.operation.name"])
}

func TestErrorAnswersAreClassifiedForRetries(t *testing.T) {
	for _, tc := range []struct {
		status    int
		permanent bool
	}{
		{http.StatusBadRequest, true},
		{http.StatusUnauthorized, true},
		{http.StatusRequestEntityTooLarge, true},
		{http.StatusTooManyRequests, false},
		{http.StatusInternalServerError, false},
		{http.StatusServiceUnavailable, false},
	} {
		t.Run(http.StatusText(tc.status), func(t *testing.T) {
			s := otlpsink.New()
			defer s.Close()
			s.SetStatus(tc.status)
			e := newExporter(t, s, nil)
			err := e.Export(context.Background(), sinktest.Events(1))
			require.Error(t, err)
			assert.Equal(t, tc.permanent, sink.IsPermanent(err))
		})
	}
}

func TestConfigValidation(t *testing.T) {
	assert.Empty(t, otlp.Config{Endpoint: "https://cloud.langfuse.com/api/public/otel/v1/traces"}.Validate())
	errs := otlp.Config{Endpoint: "cloud.langfuse.com", Compression: "zstd"}.Validate()
	require.Len(t, errs, 2)
	assert.Equal(t, "endpoint", errs[0].Field)
	assert.Equal(t, "compression", errs[1].Field)
	_, err := otlp.New(otlp.Config{}, "")
	assert.Error(t, err)
}
