package budget_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/internal/money"
)

// flakySettler is a memory store whose Settle fails while down is set and
// applies once per id, like the Redis store.
type flakySettler struct {
	*memstore.Store
	down    atomic.Bool
	mu      sync.Mutex
	settled map[string]bool
}

func (f *flakySettler) SettleIsIdempotent() {}

func (f *flakySettler) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	if f.down.Load() {
		return errors.New("store unreachable")
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.settled[id] {
		return nil
	}
	f.settled[id] = true
	return f.Store.Settle(ctx, id, actual, items, now)
}

func TestSettleIsRetriedUntilTheStoreAnswers(t *testing.T) {
	store := &flakySettler{Store: memstore.New(), settled: map[string]bool{}}
	p, err := budget.Compile([]budget.Config{{Name: "fleet", Period: "total", HardUSD: budget.USDOf(money.PerUSD)}}, budget.Limits{})
	require.NoError(t, err)
	e := budget.NewEngine(store, nil)
	var gaveUp atomic.Int64
	e.RetrySettles(budget.SettleRetry{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond, OnGiveUp: func(string, money.Nano, error) { gaveUp.Add(1) }})
	ctx := context.Background()
	scopes := p.Applicable(nil)
	res, rej, err := e.Reserve(ctx, p, scopes, "m", 100, "r1")
	require.NoError(t, err)
	require.Nil(t, rej)

	store.down.Store(true)
	err = e.Settle(ctx, res, 70)
	require.Error(t, err, "the caller learns the first attempt failed")
	assert.ErrorIs(t, e.Settle(ctx, res, 70), budget.ErrSettled, "the reservation is in the retrier's hands")
	store.down.Store(false)

	require.Eventually(t, func() bool {
		st, err := e.Status(ctx, scopes)
		return err == nil && st[0].Committed == 70 && st[0].Reserved == 0
	}, 5*time.Second, time.Millisecond)
	assert.Zero(t, e.Close())
	assert.Zero(t, gaveUp.Load())
}

func TestCloseAbandonsPendingSettleRetries(t *testing.T) {
	store := &flakySettler{Store: memstore.New(), settled: map[string]bool{}}
	p, err := budget.Compile([]budget.Config{{Name: "fleet", Period: "total", HardUSD: budget.USDOf(money.PerUSD)}}, budget.Limits{})
	require.NoError(t, err)
	e := budget.NewEngine(store, nil)
	e.RetrySettles(budget.SettleRetry{Backoff: time.Hour})
	ctx := context.Background()
	res, _, err := e.Reserve(ctx, p, p.Applicable(nil), "m", 100, "r1")
	require.NoError(t, err)
	store.down.Store(true)
	require.Error(t, e.Settle(ctx, res, 70))
	assert.Equal(t, 1, e.Close(), "one settle given up at close")
}

func TestNoRetryWithoutAnIdempotentStore(t *testing.T) {
	e := budget.NewEngine(memstore.New(), nil)
	e.RetrySettles(budget.SettleRetry{})
	assert.Zero(t, e.Close())
}
