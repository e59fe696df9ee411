package storetest

import (
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
)

// ListerStore is a store that can also list its counters.
type ListerStore interface {
	budget.Store
	budget.Lister
}

// RunLister checks a store's budget.Lister; newStore returns an empty
// store for each subtest (keys carry the subtest's name, so a shared
// backend works too).
func RunLister(t *testing.T, newStore func(t *testing.T) ListerStore) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s ListerStore, k keys)
	}{
		{"ListsReservedAndSettledCounters", testListsCounters},
		{"PrefixIsLiteral", testPrefixIsLiteral},
		{"StopsAtLimit", testListLimit},
		{"CanceledContext", testListCanceled},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t), keys(t.Name()+"/"))
		})
	}
}

func listed(t *testing.T, s budget.Lister, prefix string, limit int) ([]string, bool) {
	t.Helper()
	got, more, err := s.CounterKeys(context.Background(), prefix, limit)
	require.NoError(t, err)
	slices.Sort(got)
	return slices.Compact(got), more
}

func testListsCounters(t *testing.T, s ListerStore, k keys) {
	got, more := listed(t, s, string(k), 100)
	assert.Empty(t, got)
	assert.False(t, more)

	reserved, settled := k.item("b|day|tenant=acme@1", usd(10)), k.item("b|day|tenant=zed@1", usd(10))
	reserve(t, s, "r1", usd(1), T0, reserved)
	settle(t, s, "s1", usd(2), T0, settled)
	settle(t, s, "s2", 0, T0, k.item("released-only@1", usd(10))) // creates nothing
	got, more = listed(t, s, string(k), 100)
	assert.Equal(t, []string{reserved.Key, settled.Key}, got)
	assert.False(t, more)
}

func testPrefixIsLiteral(t *testing.T, s ListerStore, k keys) {
	glob := k.item("a*[x]?\\@1", usd(1))
	other := k.item("aZxQ\\@1", usd(1))
	settle(t, s, "s1", usd(1), T0, glob, other)
	got, _ := listed(t, s, string(k)+"a*[x]?", 100)
	assert.Equal(t, []string{glob.Key}, got, "glob characters in a prefix match only themselves")
	got, _ = listed(t, s, string(k)+"a", 100)
	assert.Len(t, got, 2)
}

func testListLimit(t *testing.T, s ListerStore, k keys) {
	var items []budget.Item
	for _, n := range []string{"1", "2", "3", "4", "5"} {
		items = append(items, k.item(n+"@1", usd(1)))
	}
	settle(t, s, "s1", usd(1), T0, items...)
	got, more := listed(t, s, string(k), 3)
	assert.Len(t, got, 3)
	assert.True(t, more)
	got, _ = listed(t, s, string(k), 100)
	assert.Len(t, got, 5)
}

func testListCanceled(t *testing.T, s ListerStore, k keys) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.CounterKeys(ctx, string(k), 10)
	assert.ErrorIs(t, err, context.Canceled)
}
