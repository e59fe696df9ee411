package app_test

import (
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/redistest"
)

// estimatesConfig has a memory store with a snapshot file or a Redis
// store (%s), the admin token s3cret and limits.streams.estimate (%s).
const estimatesConfig = `version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: "qwen*", input: 0.10, output: 0.20}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 5
limits:
  streams:
    estimate: {%s}
store:
%s
admin:
  token: s3cret
`

func startEstimates(t *testing.T, path, store, estimate string, reload time.Duration) *app.Instance {
	t.Helper()
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, estimatesConfig, estimate, store), 0o600))
	in, err := app.Start(app.ServeOptions{ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogOutput: io.Discard, ShutdownTimeout: 5 * time.Second, ReloadInterval: reload, ReloadDebounce: 5 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { in.Shutdown() })
	return in
}

// A single replica with a memory store keeps its learned estimates over
// a restart (Shutdown saves them, the snapshot holds them), shows them in
// /v1/estimates and /metrics, and applies a reloaded configuration.
func TestEstimatesSurviveARestartAndFollowReloads(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "spendguard.yaml")
	store := fmt.Sprintf("  backend: memory\n  memory:\n    snapshot_path: %q", filepath.Join(dir, "counters.snapshot"))
	in := startEstimates(t, path, store, "min_samples: 5", 0)
	for i := int64(1); i <= 10; i++ {
		in.Estimates.Observe("qwen-small", "chat_completions", i*10)
	}
	require.NoError(t, in.Shutdown())

	in = startEstimates(t, path, store, "min_samples: 5", 20*time.Millisecond)
	require.Eventually(t, func() bool { _, _, ok := in.Estimates.Estimate("qwen-small", "chat_completions"); return ok },
		10*time.Second, 10*time.Millisecond, "the restarted instance loads what the last one learned")
	tokens, n, _ := in.Estimates.Estimate("qwen-small", "chat_completions")
	assert.Equal(t, 10, n)
	assert.Equal(t, int64(100), tokens, "p95 of 10..100")

	code, _ := get(t, in, "/v1/estimates", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body := get(t, in, "/v1/estimates", "s3cret")
	require.Equal(t, http.StatusOK, code, body)
	assert.JSONEq(t, `{"quantile":0.95,"window":1000,"min_samples":5,"estimates":[
		{"model":"qwen-small","endpoint":"chat_completions","samples":10,"tokens":100,"active":true}]}`, body)
	code, body = get(t, in, "/metrics", "")
	require.Equal(t, http.StatusOK, code)
	assert.Contains(t, body, `spendguard_output_estimate_tokens{endpoint="chat_completions",model="qwen-small"} 100`)
	assert.Contains(t, body, `spendguard_output_estimate_samples{endpoint="chat_completions",model="qwen-small"} 10`)

	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, estimatesConfig, "quantile: 0.5, min_samples: 5", store), 0o600))
	require.Eventually(t, func() bool { return in.Estimates.Config().Quantile == 0.5 }, 10*time.Second, 10*time.Millisecond)
	tokens, _, _ = in.Estimates.Estimate("qwen-small", "chat_completions")
	assert.Equal(t, int64(50), tokens, "p50 of 10..100 once the reload is in force")
}

// Two replicas on one Redis learn from each other's traffic.
func TestEstimatesAreSharedThroughRedis(t *testing.T) {
	_, prefix := redistest.Shared(t)
	store := fmt.Sprintf("  backend: redis\n  redis:\n    address: %s\n    key_prefix: %q\n    timeout: 2s", redistest.SharedAddr, prefix)
	dir := t.TempDir()
	a := startEstimates(t, filepath.Join(dir, "a.yaml"), store, "min_samples: 4", 0)
	b := startEstimates(t, filepath.Join(dir, "b.yaml"), store, "min_samples: 4", 0)
	for i := int64(1); i <= 2; i++ {
		a.Estimates.Observe("qwen-small", "chat_completions", i)
		b.Estimates.Observe("qwen-small", "chat_completions", 100*i)
	}
	for _, in := range []*app.Instance{a, b} {
		require.Eventually(t, func() bool { _, _, ok := in.Estimates.Estimate("qwen-small", "chat_completions"); return ok },
			30*time.Second, 50*time.Millisecond, "each replica learns the other's samples at its next load")
		tokens, n, _ := in.Estimates.Estimate("qwen-small", "chat_completions")
		assert.Equal(t, 4, n)
		assert.Equal(t, int64(200), tokens)
	}
	code, body := get(t, a, "/v1/estimates", "s3cret")
	require.Equal(t, http.StatusOK, code)
	assert.True(t, strings.Contains(body, `"samples":4`), body)
}
