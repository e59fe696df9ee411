package helicone_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/helicone"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/heliconesink"
)

func newExporter(s *heliconesink.Sink, mod func(*helicone.Config)) *helicone.Exporter {
	cfg := helicone.Config{Endpoint: s.URL() + "/custom/v1/log", APIKey: "sk-helicone-test"}
	if mod != nil {
		mod(&cfg)
	}
	return helicone.New(cfg)
}

func TestExportSendsTheDocumentedJSON(t *testing.T) {
	s := heliconesink.New()
	defer s.Close()
	e := newExporter(s, nil)

	ev := sinktest.Event(0)
	ev.Report.RequestId = "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b"
	require.NoError(t, e.Export(context.Background(), []*sink.Event{ev}))

	require.Zero(t, s.Invalid())
	logs := s.Logs()
	require.Len(t, logs, 1)
	l := logs[0]
	assert.Equal(t, "Bearer sk-helicone-test", l.Authorization)
	assert.Equal(t, "custom-model-nopath", l.ProviderRequest.URL)
	assert.Equal(t, "meta-llama/Llama-3.1-70B-Instruct", l.ProviderRequest.JSON["model"])
	assert.Equal(t, float64(100), l.ProviderRequest.JSON["max_tokens"], "the request JSON as forwarded")
	assert.Equal(t, map[string]string{
		"Helicone-User-Id":                          "u-0",
		"Helicone-Request-Id":                       "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b",
		"Helicone-Property-Tenant":                  "acme",
		"Helicone-Property-Team":                    "search",
		"Helicone-Property-Use-Case":                "rag",
		"Helicone-Property-Spendguard-Request-Id":   "6f1c2a3b-4d5e-4f60-8a9b-0c1d2e3f4a5b",
		"Helicone-Property-Spendguard-Decision":     "allowed",
		"Helicone-Property-Spendguard-Budget":       "tenant-monthly",
		"Helicone-Property-Spendguard-Cost-Usd":     "0.000620",
		"Helicone-Property-Spendguard-Estimated":    "false",
		"Helicone-Property-Spendguard-Usage-Source": "reported",
	}, l.ProviderRequest.Meta)

	assert.Equal(t, 200, l.ProviderResponse.Status)
	assert.Equal(t, map[string]string{}, l.ProviderResponse.Headers)
	resp := l.ProviderResponse.JSON
	assert.Equal(t, "chat.completion", resp["object"])
	assert.Equal(t, "meta-llama/Llama-3.1-70B-Instruct", resp["model"])
	assert.Equal(t, map[string]any{
		"prompt_tokens": float64(1000), "completion_tokens": float64(100), "total_tokens": float64(1100),
		"prompt_tokens_details":     map[string]any{"cached_tokens": float64(200)},
		"completion_tokens_details": map[string]any{"reasoning_tokens": float64(10)},
	}, resp["usage"], "Helicone counts tokens only from providerResponse.json.usage")
	assert.Equal(t, true, resp["spendguard"].(map[string]any)["synthetic"])

	require.NotNil(t, l.Timing)
	start := sinktest.Start
	assert.Equal(t, heliconesink.Stamp{Seconds: start.Unix(), Milliseconds: 0}, l.Timing.StartTime)
	assert.Equal(t, heliconesink.Stamp{Seconds: start.Unix() + 1, Milliseconds: 500}, l.Timing.EndTime)
	require.NotNil(t, l.Timing.TimeToFirstToken)
	assert.Equal(t, 250.0, *l.Timing.TimeToFirstToken)
}

func TestExportSynthesisesTheResponseAndStubsMissingOrLargeRequests(t *testing.T) {
	s := heliconesink.New()
	defer s.Close()
	e := newExporter(s, func(c *helicone.Config) { c.MaxRequestBytes = 64 })

	kept := sinktest.Event(0)
	kept.RequestJSON = []byte(`{"model":"m","input":"short"}`)
	kept.Report.Endpoint = "/v1/embeddings"
	large := sinktest.Event(1)
	large.RequestJSON = []byte(`{"model":"m","prompt":"` + strings.Repeat("x", 100) + `"}`)
	missing := sinktest.Event(2)
	missing.RequestJSON = nil
	failed := sinktest.Event(3)
	failed.Report.UpstreamStatus = 503
	failed.Report.CostNanoUsd = 0

	require.NoError(t, e.Export(context.Background(), []*sink.Event{kept, large, missing, failed}))
	logs := s.Logs()
	require.Len(t, logs, 4)
	assert.Equal(t, "short", logs[0].ProviderRequest.JSON["input"])
	assert.Equal(t, "list", logs[0].ProviderResponse.JSON["object"])
	assert.Contains(t, logs[0].ProviderResponse.JSON, "spendguard", "spendguard keeps no response body: the response is synthesised")
	assert.Equal(t, "125 bytes, over max_request_bytes", logs[1].ProviderRequest.JSON["spendguard_request_omitted"])
	assert.Equal(t, "meta-llama/Llama-3.1-70B-Instruct", logs[1].ProviderRequest.JSON["model"])
	assert.Equal(t, "not captured", logs[2].ProviderRequest.JSON["spendguard_request_omitted"])
	assert.Equal(t, 503, logs[3].ProviderResponse.Status)
	assert.Contains(t, logs[3].ProviderResponse.JSON, "error")
	assert.NotContains(t, logs[3].ProviderResponse.JSON, "usage")
}

func TestAcceptSkipsRequestsSpendguardRejected(t *testing.T) {
	ev := sinktest.Event(0)
	assert.True(t, helicone.Accept(ev))
	ev.Report.Decision = spendguardv1.Decision_DECISION_REJECTED
	assert.False(t, helicone.Accept(ev))
}

func TestErrorsAreClassified(t *testing.T) {
	s := heliconesink.New()
	defer s.Close()
	e := newExporter(s, nil)
	s.SetStatus(http.StatusUnauthorized)
	err := e.Export(context.Background(), sinktest.Events(1))
	require.Error(t, err)
	assert.True(t, sink.IsPermanent(err))
	s.SetStatus(http.StatusBadGateway)
	err = e.Export(context.Background(), sinktest.Events(1))
	require.Error(t, err)
	assert.False(t, sink.IsPermanent(err))
}

func TestConfig(t *testing.T) {
	errs := helicone.Config{Endpoint: "ftp://x", Concurrency: 100, MaxRequestBytes: 11 << 20}.Validate()
	fields := []string{}
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	assert.Equal(t, []string{"endpoint", "api_key", "concurrency", "max_request_bytes"}, fields)
	c := helicone.Config{APIKey: "k"}.WithDefaults()
	assert.Equal(t, helicone.DefaultEndpoint, c.Endpoint)
	assert.Equal(t, 4, c.Concurrency)
}
