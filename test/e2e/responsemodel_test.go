package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/heliconesink"
	"github.com/spendguard/spendguard/test/otlpsink"
	"github.com/spendguard/spendguard/test/pgtest"
)

// responseModelExporters sends every report to every exporter that
// carries a model, one report per batch: OTLP (%s), Helicone (%s), the
// JSON log (%s) and the ledger (%s); it follows the enforcement tests'
// capConfig.
const responseModelExporters = `exporters:
  batch_size: 1
  otlp:
    endpoint: %q
  helicone:
    endpoint: %q
    api_key: sk-test
  log:
    path: %q
  postgres:
    dsn: %q
`

// TestResponseModelReachesEveryExporter: the upstream answers under
// another name than the one requested (vLLM's --served-model-name); every
// report carries that name as response_model, JSON or streamed, chat or
// Responses API, and every exporter that shows a model receives it: the
// OTLP span (gen_ai.response.model), the Helicone log (the response's
// model), the JSON log line and the ledger row. (The webhook sends budget
// alerts, which name no model.)
func TestResponseModelReachesEveryExporter(t *testing.T) {
	const served = "vllm/served-name"
	traces, logs := otlpsink.New(), heliconesink.New()
	defer traces.Close()
	defer logs.Close()
	logPath := filepath.Join(t.TempDir(), "spend.jsonl")
	dsn := pgtest.NewDatabase(t)
	s := newStack(t, fmt.Sprintf(capConfig, "100")+fmt.Sprintf(responseModelExporters, traces.URL()+"/v1/traces", logs.URL()+"/custom/v1/log", logPath, dsn),
		fakevllm.Config{ServedModelName: served})

	requests := []struct{ path, body string }{
		{"/v1/chat/completions", smallChat},
		{"/v1/chat/completions", `{"model":"Hunyuan","max_tokens":20,"stream":true,"messages":[{"role":"user","content":"hi"}]}`},
		{"/v1/responses", `{"model":"Hunyuan","max_output_tokens":20,"input":"hi"}`},
		{"/v1/responses", `{"model":"Hunyuan","max_output_tokens":20,"stream":true,"input":"hi"}`},
	}
	for _, r := range requests {
		resp := s.post(r.path, r.body, "x-tenant-id", "acme")
		require.Equal(t, http.StatusOK, resp.status, "%s %s", r.path, resp.body)
	}
	reports := s.reports.all()
	require.Len(t, reports, len(requests))
	ids := map[string]bool{}
	for _, r := range reports {
		assert.Equal(t, "Hunyuan", r.GetRequestedModel())
		assert.Equal(t, served, r.GetResponseModel(), "%s stream=%v", r.GetEndpoint(), r.GetStream())
		ids[r.GetRequestId()] = true
	}
	require.Len(t, ids, len(requests))

	wait := func(what string, got func() map[string]string) {
		t.Helper()
		var last map[string]string
		if !assert.Eventually(t, func() bool { last = got(); return len(last) == len(requests) }, 30*time.Second, 50*time.Millisecond, what) {
			return
		}
		for id := range ids {
			assert.Equal(t, served, last[id], "%s: request %s", what, id)
		}
	}
	wait("OTLP spans", func() map[string]string {
		out := map[string]string{}
		for _, sp := range traces.Spans() {
			id, _ := sp.Attrs["spendguard.request_id"].(string)
			out[id], _ = sp.Attrs["gen_ai.response.model"].(string)
		}
		return out
	})
	wait("Helicone logs", func() map[string]string {
		out := map[string]string{}
		for _, l := range logs.Logs() {
			out[l.ProviderRequest.Meta["Helicone-Property-Spendguard-Request-Id"]], _ = l.ProviderResponse.JSON["model"].(string)
		}
		return out
	})
	wait("JSON log lines", func() map[string]string {
		out := map[string]string{}
		b, _ := os.ReadFile(logPath)
		for sc := bufio.NewScanner(bytes.NewReader(b)); sc.Scan(); {
			var rec struct {
				RequestID     string `json:"request_id"`
				ResponseModel string `json:"response_model"`
			}
			if json.Unmarshal(sc.Bytes(), &rec) == nil {
				out[rec.RequestID] = rec.ResponseModel
			}
		}
		return out
	})
	wait("ledger rows", func() map[string]string {
		out := map[string]string{}
		for _, r := range queryRows(t, dsn, `SELECT request_id, response_model FROM spendguard_ledger`, pgx.RowToStructByPos[struct{ ID, Model string }]) {
			out[r.ID] = r.Model
		}
		return out
	})
	assert.Zero(t, traces.Invalid())
	assert.Zero(t, logs.Invalid())
}
