package memstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/internal/money"
)

// TestRestoreCommittedNeverAdds: restoring the same spend twice, or a
// smaller amount than the counter holds, leaves the larger amount.
func TestRestoreCommittedNeverAdds(t *testing.T) {
	m := memstore.New()
	it := budget.Item{Key: "k@1", Expires: time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)}
	now := time.Date(2026, 11, 25, 10, 0, 0, 0, time.UTC)
	require.NoError(t, m.Settle(context.Background(), "r1", usdOf(t, "2"), []budget.Item{it}, now))
	m.RestoreCommitted(it, usdOf(t, "1.5"))
	m.RestoreCommitted(it, usdOf(t, "3"))
	m.RestoreCommitted(it, usdOf(t, "3"))
	m.RestoreCommitted(it, 0)
	got, err := m.Usage(context.Background(), []budget.Item{it}, now)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: usdOf(t, "3")}, got[0])

	// A restored counter expires like any other.
	later := it.Expires.Add(memstore.Grace)
	_, err = m.Usage(context.Background(), nil, later)
	require.NoError(t, err)
	counters, _ := m.Len()
	assert.Zero(t, counters)
}

func usdOf(t *testing.T, s string) money.Nano {
	t.Helper()
	n, err := money.ParseUSD(s)
	require.NoError(t, err)
	return n
}
