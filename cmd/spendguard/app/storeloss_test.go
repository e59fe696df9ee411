package app_test

import (
	"context"
	"fmt"
	"net/http"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/test/pgtest"
	"github.com/spendguard/spendguard/test/redistest"
)

// TestRedisThatLostItsDataIsRebuiltFromTheLedger: a tenant spends past
// its hard cap through spendguard on Redis with the ledger; Redis then
// restarts without persistence and forgets every counter. spendguard
// notices (its epoch is gone), refuses while the store is lost, raises
// the counters back to the ledger's sums, and re-establishes the store:
// the exhausted tenant is still refused, the others are served, and
// /readyz is green again.
func TestRedisThatLostItsDataIsRebuiltFromTheLedger(t *testing.T) {
	srv := redistest.Start(t)
	dsn := pgtest.NewDatabase(t)
	store := fmt.Sprintf("  backend: redis\n  redis:\n    address: %s\n    timeout: 2s\n    epoch_check_interval: 50ms\n"+
		"    leases: {sync_interval: 100ms, ttl: 2s}\nexporters:\n  postgres:\n    dsn: %q", srv.Addr, dsn)
	s := newSpendStack(t, store)
	s.seed() // initech 0.12 of a 0.1 cap: refused from now on
	require.Equal(t, http.StatusPaymentRequired, s.spend("initech", "", 1, 1))

	// Every request (five charged, one refused) is in the ledger before
	// Redis forgets.
	require.Eventually(t, func() bool { return ledgerRows(t, dsn) == 6 }, 10*time.Second, 20*time.Millisecond)
	rs := stores.AsRedis(s.sg.Store)
	require.NotNil(t, rs)
	require.NoError(t, rs.Leases().Flush(context.Background()))
	losses := rs.Losses()

	srv.Stop()
	srv.Restart()
	require.Eventually(t, func() bool { return rs.Losses() > losses }, 10*time.Second, 10*time.Millisecond, "the loss is noticed")
	require.Eventually(t, func() bool { return !rs.Lost() }, 20*time.Second, 20*time.Millisecond, "rebuilt and re-established")

	assert.Equal(t, http.StatusPaymentRequired, s.spend("initech", "", 1, 1), "the exhausted tenant stays refused")
	assert.Equal(t, http.StatusOK, s.spend("globex", "ads", 1, 1), "the others are served")
	resp, err := http.Get("http://" + s.sg.AdminAddr() + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Eventually(t, func() bool {
		_, r, _ := budgets(t, s.sg.AdminAddr(), "s3cret", "?tenant=initech")
		d := digest(r)
		return len(d) > 0 && d[0] == "tenant-daily tenant=initech 0.120000 0.000000 hard"
	}, 5*time.Second, 20*time.Millisecond, "the counter holds the ledger's sum again")
}

// ledgerRows counts the rows of the ledger at dsn.
func ledgerRows(t *testing.T, dsn string) int {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var n int
	if err := conn.QueryRow(context.Background(), "SELECT count(*) FROM spendguard_ledger").Scan(&n); err != nil {
		return -1
	}
	return n
}
