package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/exporters/helicone"
	"github.com/spendguard/spendguard/exporters/jsonlog"
	"github.com/spendguard/spendguard/exporters/otlp"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/metrics"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/envoysim"
	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/heliconesink"
	"github.com/spendguard/spendguard/test/otlpsink"
)

const exportersConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
      - default: anonymous
    user:
      - header: x-user-id
      - default: anonymous
pricing:
  models:
    - {match: "meta-llama/*", input: 0.30, cached_input: 0.15, output: 0.90}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 100
metrics:
  label_dimensions: [tenant]
`

// tee hands every report to the metrics and the fan-out, composed as the
// app composes its own, and keeps a copy for the test.
type tee struct {
	m    *metrics.Metrics
	f    *exporters.Fanout
	mu   sync.Mutex
	list []*spendguardv1.CostReport
}

func (t *tee) Report(r *spendguardv1.CostReport) {
	t.mu.Lock()
	t.list = append(t.list, r)
	t.mu.Unlock()
	t.m.ObserveReport(r)
	t.f.Report(&sink.Event{Report: r})
}

func (t *tee) reports() []*spendguardv1.CostReport {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]*spendguardv1.CostReport(nil), t.list...)
}

// Must show, through the whole stack: real requests through envoysim and
// spendguard to fake vLLM; every CostReport goes to a real OTLP/HTTP
// receiver decoding protobuf (one span per request, the report's tokens
// and costs), to a Helicone-shaped receiver (the documented JSON) and to
// the Prometheus metrics, whose scrape passes promtool check metrics.
func TestExportersReceiveEveryRequestThroughTheStack(t *testing.T) {
	promtool, err := exec.LookPath("promtool")
	require.NoError(t, err, "promtool is missing: apt-get install -y prometheus (.ci/run installs it)")

	traces, logs := otlpsink.New(), heliconesink.New()
	defer traces.Close()
	defer logs.Close()
	m, err := metrics.New([]string{"tenant"})
	require.NoError(t, err)
	f, err := exporters.New(exporters.Config{
		OTLP:     &otlp.Config{Endpoint: traces.URL() + "/api/public/otel/v1/traces", Headers: map[string]string{"x-langfuse-ingestion-version": "4"}},
		Helicone: &helicone.Config{Endpoint: logs.URL() + "/custom/v1/log", APIKey: "sk-test"},
		Log:      &jsonlog.Config{Path: filepath.Join(t.TempDir(), "spend.jsonl")},
	}, zap.NewNop())
	require.NoError(t, err)
	m.SetExporterStats(f.Stats)
	rec := &tee{m: m, f: f}

	vllm := fakevllm.New(fakevllm.Config{})
	vllmURL, err := vllm.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer vllm.Close()
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(exportersConfig), 0o600))
	sg, err := app.Start(app.ServeOptions{ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "warn", LogOutput: testWriter{t}, ShutdownTimeout: 5 * time.Second, Reporter: rec})
	require.NoError(t, err)
	pcfg := envoysim.DefaultConfig(sg.GRPCAddr(), vllmURL)
	pcfg.MessageTimeout = 5 * time.Second
	px, err := envoysim.New(pcfg)
	require.NoError(t, err)
	proxy, err := px.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer proxy.Close()

	post := func(path, body, tenant string) int {
		req, err := http.NewRequest(http.MethodPost, proxy.URL()+path, strings.NewReader(body))
		require.NoError(t, err)
		req.Header.Set("content-type", "application/json")
		req.Header.Set("x-tenant-id", tenant)
		req.Header.Set("x-user-id", "u-7")
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.StatusCode
	}
	const model = "meta-llama/Llama-3.1-8B-Instruct"
	chat := fmt.Sprintf(`{"model":%q,"max_tokens":50,"messages":[{"role":"user","content":"hello"}]}`, model)
	stream := fmt.Sprintf(`{"model":%q,"max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hello"}]}`, model)
	embed := fmt.Sprintf(`{"model":%q,"input":["a","b"]}`, model)
	for range 3 {
		require.Equal(t, 200, post("/v1/chat/completions", chat, "acme"))
	}
	for range 2 {
		require.Equal(t, 200, post("/v1/chat/completions", stream, "acme"))
	}
	require.Equal(t, 200, post("/v1/embeddings", embed, "acme"))

	require.NoError(t, sg.Shutdown(), "ends every stream, so every report is in")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, f.Shutdown(ctx), "the receivers are healthy: everything is flushed")

	reports := rec.reports()
	require.Len(t, reports, 6)
	spans := map[string]otlpsink.Span{}
	for _, sp := range traces.Spans() {
		spans[sp.Attrs["spendguard.request_id"].(string)] = sp
	}
	require.Len(t, spans, 6, "one span per request")
	helic := map[string]heliconesink.Log{}
	for _, l := range logs.Logs() {
		helic[l.ProviderRequest.Meta["Helicone-Property-Spendguard-Request-Id"]] = l
	}
	require.Len(t, helic, 6, "one log per request")

	for _, r := range reports {
		sp, ok := spans[r.GetRequestId()]
		require.True(t, ok, r.GetRequestId())
		a := sp.Attrs
		assert.Equal(t, r.GetPromptTokens(), a["gen_ai.usage.input_tokens"])
		assert.Equal(t, r.GetCompletionTokens(), a["gen_ai.usage.output_tokens"])
		assert.Equal(t, r.GetCachedPromptTokens(), a["gen_ai.usage.cache_read.input_tokens"])
		assert.Equal(t, r.GetCostNanoUsd(), a["spendguard.cost_nano_usd"])
		assert.Equal(t, sink.USDFloat(r.GetCostNanoUsd()), a["gen_ai.usage.cost"])
		assert.Equal(t, fmt.Sprintf(`{"input":%s,"output":%s,"total":%s}`, sink.USDExact(r.GetInputCostNanoUsd()),
			sink.USDExact(r.GetOutputCostNanoUsd()), sink.USDExact(r.GetCostNanoUsd())), a["langfuse.observation.cost_details"])
		assert.Equal(t, "generation", a["langfuse.observation.type"])
		assert.Equal(t, "u-7", a["user.id"])
		assert.Equal(t, r.GetScope()["tenant"], a["spendguard.scope.tenant"])
		assert.Equal(t, otlp.TraceID(r.GetRequestId()).String(), sp.TraceID)
		assert.Positive(t, r.GetCostNanoUsd())
		l, ok := helic[r.GetRequestId()]
		require.True(t, ok, r.GetRequestId())
		assert.Equal(t, "Bearer sk-test", l.Authorization)
		assert.Equal(t, "custom-model-nopath", l.ProviderRequest.URL)
		assert.Equal(t, model, l.ProviderRequest.JSON["model"])
		assert.Equal(t, "u-7", l.ProviderRequest.Meta["Helicone-User-Id"])
		assert.Equal(t, "acme", l.ProviderRequest.Meta["Helicone-Property-Tenant"])
		assert.Equal(t, 200, l.ProviderResponse.Status)
		usage, ok := l.ProviderResponse.JSON["usage"].(map[string]any)
		require.True(t, ok, "Helicone counts tokens from providerResponse.json.usage")
		assert.Equal(t, float64(r.GetPromptTokens()), usage["prompt_tokens"])
		assert.Equal(t, float64(r.GetCompletionTokens()), usage["completion_tokens"])
	}
	assert.Zero(t, traces.Invalid())
	assert.Zero(t, logs.Invalid())

	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	resp, err := http.Get(srv.URL)
	require.NoError(t, err)
	scrape, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	cmd := exec.Command(promtool, "check", "metrics")
	cmd.Stdin = bytes.NewReader(scrape)
	out, err := cmd.CombinedOutput()
	require.NoError(t, err, "promtool check metrics:\n%s", out)
	assert.Empty(t, strings.TrimSpace(string(out)))
	assert.Contains(t, string(scrape), "\nspendguard_requests_total{decision=\"allowed\",tenant=\"acme\"} 6\n")
	assert.Contains(t, string(scrape), "\nspendguard_exporter_sent_total{exporter=\"otlp\"} 6\n")
	assert.Contains(t, string(scrape), "\nspendguard_exporter_sent_total{exporter=\"helicone\"} 6\n")
}
