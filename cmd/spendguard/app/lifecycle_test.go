package app_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/pgtest"
)

// lifecycleConfig opens every kind of resource Start closes: a memory
// store with a snapshot file (%s), which Close writes once more, and the
// Postgres ledger at %s, whose connections the exporters' shutdown
// closes.
const lifecycleConfig = `version: 1
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
  backend: memory
  memory:
    snapshot_path: %q
exporters:
  postgres:
    dsn: %q
`

// syncBuffer is a log output that the test reads while the instance's
// goroutines may still write.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// ledgerConnections counts the connections to the ledger's database
// other than the one asking.
func ledgerConnections(t *testing.T, dsn string) int {
	t.Helper()
	ctx := context.Background()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(ctx)
	var n int
	require.NoError(t, conn.QueryRow(ctx,
		"SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()").Scan(&n))
	return n
}

// TestStartThatFailsClosesWhatItOpened makes the last step of Start fail
// (the admin address is taken) after the store, the ledger, the exporters
// and the gRPC listener are open, and checks through their effects that
// each was closed: the memory store wrote its snapshot at close, the
// ledger's connections are gone (the exporters were shut down), and a
// second Start on the same addresses succeeds.
func TestStartThatFailsClosesWhatItOpened(t *testing.T) {
	dir := t.TempDir()
	dsn := pgtest.NewDatabase(t)
	path := filepath.Join(dir, "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(lifecycleConfig, filepath.Join(dir, "counters.snapshot"), dsn)), 0o600))
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	grpcAddr, adminAddr := freeAddr(t), taken.Addr().String()
	logs := &syncBuffer{}
	opts := app.ServeOptions{ConfigPath: path, GRPCAddr: grpcAddr, AdminAddr: adminAddr,
		LogLevel: "info", LogOutput: logs, ShutdownTimeout: 5 * time.Second}

	in, err := app.Start(opts)
	require.ErrorContains(t, err, "admin listener")
	assert.Nil(t, in)
	assert.Contains(t, logs.String(), "memory store snapshot written", "the store was closed")
	assert.Eventually(t, func() bool { return ledgerConnections(t, dsn) == 0 }, 10*time.Second, 50*time.Millisecond,
		"the exporters were shut down: the ledger holds no connection")
	l, err := net.Listen("tcp", grpcAddr)
	require.NoError(t, err, "the gRPC listener was closed")
	require.NoError(t, l.Close())

	require.NoError(t, taken.Close())
	in, err = app.Start(opts)
	require.NoError(t, err, "a second Start on the same addresses")
	assert.Positive(t, ledgerConnections(t, dsn), "the second start's ledger is connected")
	require.NoError(t, in.Shutdown())
	assert.NoError(t, in.Shutdown(), "a second Shutdown has nothing left to close")
	assert.Eventually(t, func() bool { return ledgerConnections(t, dsn) == 0 }, 10*time.Second, 50*time.Millisecond,
		"Shutdown closes the ledger too")
}

// reloadConfig has one budget (%s) and the admin token %s.
const reloadConfig = `version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: "qwen*", input: 0.10, output: 0.20}
budgets:
  - name: %s
    match: {tenant: "*"}
    period: day
    hard_usd: 5
admin:
  token: %s
`

// TestReloadChangesWhatCurrentConfigReturnsOnly checks that every view
// of the running app follows CurrentConfig through a reload — the
// processor and the budgets API see the new budget — while a start-only
// section (admin.token) keeps the value Start read.
func TestReloadChangesWhatCurrentConfigReturnsOnly(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(reloadConfig, "before", "first-token")), 0o600))
	in, err := app.Start(app.ServeOptions{ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogOutput: io.Discard, ShutdownTimeout: 5 * time.Second, ReloadInterval: 20 * time.Millisecond, ReloadDebounce: 5 * time.Millisecond})
	require.NoError(t, err)
	defer in.Shutdown()
	first := in.CurrentConfig()
	assert.Same(t, first.Snapshot, in.Processor.Snapshot())

	require.NoError(t, os.WriteFile(path, []byte(fmt.Sprintf(reloadConfig, "after", "second-token")), 0o600))
	require.Eventually(t, func() bool { return in.CurrentConfig() != first }, 10*time.Second, 10*time.Millisecond)
	assert.Same(t, in.CurrentConfig().Snapshot, in.Processor.Snapshot(), "new streams use the configuration CurrentConfig returns")
	code, _ := get(t, in, "/v1/budgets/after", "first-token")
	assert.Equal(t, http.StatusOK, code, "admin.token is read at start only; the budgets API knows the budgets in force")
	code, _ = get(t, in, "/v1/budgets/before", "first-token")
	assert.Equal(t, http.StatusNotFound, code, "the budget the reload removed")
	code, _ = get(t, in, "/v1/budgets/after", "second-token")
	assert.Equal(t, http.StatusUnauthorized, code)
}
