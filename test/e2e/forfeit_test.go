package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/pgtest"
	"github.com/spendguard/spendguard/test/redistest"
)

// forfeitConfig: one tenant budget far above what the test spends (so
// leases carry headroom), leases renewed every 100ms and lasting 1s, and
// the ledger at %s spooled in %s.
const forfeitConfig = `
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
    hard_usd: 100
store:
  backend: redis
  redis:
    address: %s
    key_prefix: "%s"
    timeout: 2s
    leases: {sync_interval: 100ms, ttl: 1s}
exporters:
  postgres:
    dsn: %q
    spool:
      dir: %q
`

// TestADeadReplicasForfeitIsSettledAgainstItsLedgerRows: a replica that
// served requests with a lease holding headroom is killed; its lease is
// forfeited (counted in full, above the truth). A process started on its
// spool directory ships what it left; from then the ledger has every row
// of the dead replica, and the forfeit is settled: Redis's committed
// spend equals the ledger's sum exactly.
func TestADeadReplicasForfeitIsSettledAgainstItsLedgerRows(t *testing.T) {
	_, prefix := redistest.Shared(t)
	dsn := pgtest.NewDatabase(t)
	dir := t.TempDir()
	config := func(spool string) string {
		return writeConfig(t, fmt.Sprintf(forfeitConfig, redistest.SharedAddr, prefix, dsn, filepath.Join(dir, spool)))
	}
	doomedConfig, survivorConfig := config("doomed"), config("survivor")
	_, vllmURL := startVLLM(t, fakevllm.Config{PromptTokens: 7, CompletionTokens: 5})
	doomed := startReplica(t, "doomed", doomedConfig)
	survivor := startReplica(t, "survivor", survivorConfig)
	doomedURL := proxyFor(t, doomed.grpcAddr, vllmURL).URL()
	survivorURL := proxyFor(t, survivor.grpcAddr, vllmURL).URL()
	view := viewStore(t, fmt.Sprintf(forfeitConfig, redistest.SharedAddr, prefix, dsn, dir))
	acme := map[string]string{"tenant": "acme", "model": "Hunyuan"}

	for i := range 15 {
		resp, err := postTo(context.Background(), doomedURL, smallChat, "x-tenant-id", "acme")
		require.NoError(t, err)
		require.Equal(t, http.StatusOK, resp.status, "request %d: %s", i, resp.body)
	}
	perRequest := money.Nano(7*600 + 5*800)
	// The doomed replica's spend reaches Redis with its syncs, and its
	// lease still holds headroom for more.
	require.Eventually(t, func() bool {
		c, err := view.counter(acme)
		return err == nil && c.Committed == 15*perRequest && c.Reserved == 0
	}, 10*time.Second, 20*time.Millisecond)
	doomed.kill()

	// After its lease's TTL a sync of the survivor's on the counter
	// forfeits it: counted in full, above the truth. The survivor takes a
	// lease there by serving paid requests (a free one may need none).
	served := 15
	require.Eventually(t, func() bool {
		resp, err := postTo(context.Background(), survivorURL, smallChat, "x-tenant-id", "acme")
		if err == nil && resp.status == http.StatusOK {
			served++
		}
		c, err := view.counter(acme)
		return err == nil && c.Committed > money.Nano(served)*perRequest
	}, 20*time.Second, 200*time.Millisecond, "the dead replica's lease is forfeited")
	truth := money.Nano(served) * perRequest
	c, err := view.counter(acme)
	require.NoError(t, err)
	t.Logf("forfeit: committed %s, %s above the truth", c.Committed, c.Committed-truth)

	// A process on the dead replica's spool directory ships what it left
	// and records it as drained; the forfeit is then settled.
	heir := startReplica(t, "heir", doomedConfig)
	require.Eventually(t, func() bool {
		c, err := view.counter(acme)
		return err == nil && c.Committed == truth
	}, 30*time.Second, 50*time.Millisecond, "the forfeit is settled against the ledger: committed equals what was spent")
	assert.Contains(t, heir.logs.String()+survivor.logs.String(), "budget leases of a replica that died settled against its ledger rows",
		"one of the live replicas settled it")
	got := queryRows(t, dsn, "SELECT count(*)::int, coalesce(sum(cost_nano_usd), 0)::bigint FROM spendguard_ledger WHERE decision = 'allowed' AND served_model = 'Hunyuan'",
		func(r pgx.CollectableRow) ([2]int64, error) {
			var n int32
			var sum int64
			err := r.Scan(&n, &sum)
			return [2]int64{int64(n), sum}, err
		})
	assert.Equal(t, [2]int64{int64(served), int64(truth)}, got[0], "the ledger holds every served request's row, the dead replica's 15 among them")
	reconciled := queryRows(t, dsn, "SELECT instance FROM spendguard_instances WHERE reconciled_at IS NOT NULL",
		func(r pgx.CollectableRow) (string, error) {
			var s string
			return s, r.Scan(&s)
		})
	require.Len(t, reconciled, 1)
	assert.True(t, strings.Contains(reconciled[0], doomed.holderHint()), "the dead replica is marked reconciled: %v", reconciled)
}
