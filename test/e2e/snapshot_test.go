package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/fakevllm"
)

const snapshotConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
    - {match: free, input: 0, output: 0}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1
store:
  backend: memory
  memory:
    snapshot_path: %s
    snapshot_interval: 1h
`

// TestRestartWithSnapshotKeepsSpend: a replica with the memory store is
// stopped with SIGTERM and started again from its snapshot; the spend it
// reports (and the spend in the file, to the nano-USD) is the same before
// and after, and keeps counting from there.
func TestRestartWithSnapshotKeepsSpend(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	yaml := fmt.Sprintf(snapshotConfig, path)
	cfgPath := writeConfig(t, yaml)
	_, vllmURL := startVLLM(t, fakevllm.Config{PromptTokens: 1})

	first := startReplica(t, "first", cfgPath)
	url := proxyFor(t, first.grpcAddr, vllmURL).URL()
	var charged int64
	for i := range 20 {
		resp, err := postTo(context.Background(), url, smallChat, "x-tenant-id", "acme",
			fakevllm.HeaderCompletionTokens, strconv.Itoa(7*i+3))
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
		charged += usageCost(t, resp.body, 600, 800)
	}
	before := remaining(t, url)
	assert.Equal(t, (money.PerUSD - money.Nano(charged)).USD(), before)
	first.stop()

	// The file holds the exact spend.
	cfg, err := config.Parse([]byte(yaml))
	require.NoError(t, err)
	saved, err := memstore.Load(path)
	require.NoError(t, err)
	scopes := cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	st, err := budget.NewEngine(saved, time.Now).Status(context.Background(), scopes)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: money.Nano(charged)}, st[0].Counter)

	second := startReplica(t, "second", cfgPath)
	url = proxyFor(t, second.grpcAddr, vllmURL).URL()
	assert.Equal(t, before, remaining(t, url), "spend before == spend after the restart")
	resp, err := postTo(context.Background(), url, smallChat, "x-tenant-id", "acme", fakevllm.HeaderCompletionTokens, "50")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.status)
	charged += usageCost(t, resp.body, 600, 800)
	assert.Equal(t, (money.PerUSD - money.Nano(charged)).USD(), remaining(t, url), "and keeps counting")
}

// TestCorruptSnapshotStopsTheStart: a damaged snapshot is a clear startup
// error, never silently empty counters.
func TestCorruptSnapshotStopsTheStart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, writeFile(path, "spendguard-memory-snapshot v1 sha256:00\n{}\n"))
	r := startFailingReplica(t, writeConfig(t, fmt.Sprintf(snapshotConfig, path)))
	assert.Contains(t, r, "corrupt memory-store snapshot")
	assert.Contains(t, r, path)
}

// remaining asks a replica for the tenant's remaining budget with a free
// request (it reserves and spends nothing).
func remaining(t *testing.T, url string) string {
	t.Helper()
	resp, err := postTo(context.Background(), url, freeProbe, "x-tenant-id", "acme")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	return resp.header.Get("x-spendguard-remaining-usd")
}
