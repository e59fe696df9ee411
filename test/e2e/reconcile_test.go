package e2e

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/pgtest"
)

// reconcileConfig reconciles with the fake vLLM at %s every 100ms, a
// window being compared once it is a second old; the ledger is at %s.
const reconcileConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
      - default: acme
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
    - {match: embedder, input: 0.01, output: 0}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 100
exporters:
  postgres:
    dsn: %q
    reconcile:
      vllm_metrics_urls: [%q]
      interval: 100ms
      settle_delay: 1s
`

// TestReconciliationWithVLLM: traffic metered by spendguard (plain,
// streamed, embeddings) reconciles with the fake vLLM's own
// vllm:*_tokens_total counters with zero drift; requests sent straight
// to the fake vLLM, around spendguard, show up as drift of exactly their
// tokens, in the Prometheus metrics and in `spendguard report`.
func TestReconciliationWithVLLM(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	vllm, vllmURL := startVLLM(t, fakevllm.Config{})
	sg, err := app.Start(app.ServeOptions{
		ConfigPath: writeConfig(t, fmt.Sprintf(reconcileConfig, dsn, vllmURL+"/metrics")),
		GRPCAddr:   "127.0.0.1:0", AdminAddr: "127.0.0.1:0", LogLevel: "warn", LogOutput: testWriter{t}, ShutdownTimeout: 5 * time.Second,
	})
	require.NoError(t, err)
	t.Cleanup(func() { sg.Shutdown() })
	url := proxyFor(t, sg.GRPCAddr(), vllmURL).URL()
	// vLLM's counters are compared from the reconciler's first sample on.
	require.Eventually(t, func() bool {
		for _, r := range vllm.Requests() {
			if r.Path == "/metrics" {
				return true
			}
		}
		return false
	}, 30*time.Second, 20*time.Millisecond, "the reconciler never scraped the fake vLLM")

	send := func(base, path, body string) {
		t.Helper()
		resp, err := http.Post(base+path, "application/json", strings.NewReader(body))
		require.NoError(t, err)
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		require.Equal(t, http.StatusOK, resp.StatusCode, "%s", b)
	}
	for i := range 6 {
		send(url, "/v1/chat/completions", fmt.Sprintf(`{"model":"Hunyuan","max_tokens":%d,"messages":[{"role":"user","content":"%s"}]}`, 10+i, strings.Repeat("word ", 4*i+1)))
		send(url, "/v1/chat/completions", fmt.Sprintf(`{"model":"Hunyuan","max_tokens":%d,"stream":true,"messages":[{"role":"user","content":"hello"}]}`, 3+i))
		send(url, "/v1/embeddings", fmt.Sprintf(`{"model":"embedder","input":"%s"}`, strings.Repeat("text ", i+1)))
	}
	served := func(m string) [2]float64 {
		p, g := vllm.Tokens(m)
		return [2]float64{float64(p), float64(g)}
	}
	chat, emb := served("Hunyuan"), served("embedder")
	require.Positive(t, chat[0]*chat[1]*emb[0])

	// Wait until the reconciliation has compared windows holding all of
	// it: vLLM's side reaches what the fake served, and the ledger's side
	// (a request that vLLM counted before a window's end and spendguard
	// recorded after it lands in the next window) has caught up.
	var m map[string][2]float64
	require.Eventually(t, func() bool {
		m = scrapeDrift(t, sg.AdminAddr())
		return m["upstream Hunyuan"] == chat && m["upstream embedder"] == emb &&
			m["recorded Hunyuan"] == chat && m["recorded embedder"] == emb
	}, 60*time.Second, 50*time.Millisecond, "the reconciliation never covered the metered traffic (served %v, %v)", chat, emb)
	assert.Equal(t, [2]float64{}, m["drift Hunyuan"], "metered traffic: no drift")
	assert.Equal(t, [2]float64{}, m["drift embedder"])

	// Around spendguard: straight to vLLM.
	send(vllmURL, "/v1/chat/completions", `{"model":"Hunyuan","max_tokens":40,"messages":[{"role":"user","content":"abcdefghijklmnop"}]}`)
	send(vllmURL, "/v1/chat/completions", `{"model":"Hunyuan","max_tokens":2,"n":3,"messages":[{"role":"user","content":"abcd"}]}`)
	bypass := served("Hunyuan")
	bypass[0] -= chat[0]
	bypass[1] -= chat[1]
	require.Equal(t, [2]float64{4 + 1, 40 + 6}, bypass)
	require.Eventually(t, func() bool { return scrapeDrift(t, sg.AdminAddr())["upstream Hunyuan"] == served("Hunyuan") }, 60*time.Second,
		50*time.Millisecond, "the reconciliation never covered the bypassing requests")
	m = scrapeDrift(t, sg.AdminAddr())
	assert.Equal(t, bypass, m["drift Hunyuan"], "drift: exactly the bypassing requests' tokens")
	assert.Equal(t, chat, m["recorded Hunyuan"], "the ledger never saw them")
	assert.Equal(t, [2]float64{}, m["drift embedder"])

	// The report shows the same.
	var out, errOut bytes.Buffer
	code := app.Main(context.Background(), []string{"report", "--dsn", dsn, "--drift", "--csv", "--period", "total"}, &out, &errOut)
	require.Equal(t, 0, code, errOut.String())
	var hunyuan string
	for line := range strings.SplitSeq(out.String(), "\n") {
		if strings.Contains(line, ",Hunyuan,") {
			hunyuan = line
		}
	}
	f := strings.Split(hunyuan, ",")
	require.Len(t, f, 11, out.String())
	assert.Equal(t, []string{fmt.Sprint(bypass[0]), fmt.Sprint(bypass[1])}, []string{f[7], f[10]}, "prompt and generation drift in the report")
}

// scrapeDrift reads spendguard's reconciliation metrics:
// "upstream|recorded|drift <model>" -> {prompt, generation}.
func scrapeDrift(t *testing.T, adminAddr string) map[string][2]float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	p := expfmt.NewTextParser(model.UTF8Validation)
	families, err := p.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := map[string][2]float64{}
	for kind, name := range map[string]string{"upstream": "spendguard_reconcile_upstream_tokens_total",
		"recorded": "spendguard_reconcile_recorded_tokens_total", "drift": "spendguard_reconcile_drift_tokens"} {
		for _, m := range families[name].GetMetric() {
			var mod, typ string
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "model":
					mod = l.GetValue()
				case "type":
					typ = l.GetValue()
				}
			}
			v := m.GetCounter().GetValue() + m.GetGauge().GetValue()
			k := kind + " " + mod
			x := out[k]
			if typ == "generation" {
				x[1] = v
			} else {
				x[0] = v
			}
			out[k] = x
		}
	}
	return out
}
