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

// spoolConfig: one tenant budget, the store section %s, and a ledger at
// an address nothing listens at, spooled in %s, its readiness gate %t.
const spoolConfig = `version: 1
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
store:
%s
exporters:
  postgres:
    dsn: "postgres://postgres@127.0.0.1:1/ledger?sslmode=disable&connect_timeout=1"
    start_timeout: 1s
    ready_requires_ledger: %t
    spool:
      dir: %q
`

func startWithSpool(t *testing.T, store string, gate bool) (*app.Instance, error) {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(spoolConfig, store, gate, filepath.Join(dir, "spool"))), 0o600))
	return app.Start(app.ServeOptions{ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "error", LogOutput: &syncBuffer{}, ShutdownTimeout: 5 * time.Second, ExporterFlushTimeout: time.Second})
}

func readyz(t *testing.T, in *app.Instance) (int, string) {
	t.Helper()
	resp, err := http.Get("http://" + in.AdminAddr() + "/readyz")
	require.NoError(t, err)
	defer resp.Body.Close()
	var b [256]byte
	n, _ := resp.Body.Read(b[:])
	return resp.StatusCode, string(b[:n])
}

// With the Redis store nothing at start needs the ledger: spendguard
// starts while PostgreSQL is away, and is ready unless the operator made
// the ledger a condition of readiness.
func TestRedisStoreStartsWithTheLedgerAway(t *testing.T) {
	_, prefix := redistest.Shared(t)
	store := fmt.Sprintf("  backend: redis\n  redis:\n    address: %s\n    key_prefix: %q\n    timeout: 2s", redistest.SharedAddr, prefix)
	for _, gate := range []bool{false, true} {
		t.Run(fmt.Sprintf("ready_requires_ledger=%t", gate), func(t *testing.T) {
			in, err := startWithSpool(t, store, gate)
			require.NoError(t, err)
			defer in.Shutdown()
			if !gate {
				code, body := readyz(t, in)
				assert.Equal(t, http.StatusOK, code, body)
				resp, err := http.Get("http://" + in.AdminAddr() + "/metrics")
				require.NoError(t, err)
				defer resp.Body.Close()
				b, err := io.ReadAll(resp.Body)
				require.NoError(t, err)
				for _, want := range []string{"spendguard_ledger_spool_rows 0", "spendguard_ledger_writable ",
					`spendguard_exporter_queue_depth{exporter="postgres"} 0`, `spendguard_ledger_rows_dropped_total{reason="spool_full"} 0`} {
					assert.Contains(t, string(b), want)
				}
				return
			}
			require.Eventually(t, func() bool {
				code, body := readyz(t, in)
				return code == http.StatusServiceUnavailable && strings.Contains(body, "ledger not writable")
			}, 10*time.Second, 20*time.Millisecond)
		})
	}
}

// The memory store rebuilds its counters from the ledger: it does not
// start without it, and says why.
func TestMemoryStoreDoesNotStartWithoutItsLedger(t *testing.T) {
	in, err := startWithSpool(t, "  backend: memory", false)
	require.Error(t, err)
	assert.Nil(t, in)
	assert.Contains(t, err.Error(), "start_timeout")
	assert.Contains(t, err.Error(), "memory store rebuilds its counters from the ledger")
}
