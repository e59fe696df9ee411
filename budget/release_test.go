package budget_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/internal/money"
)

// lateStore is a memory store whose Reserve, while fail is set, applies
// the reservation and then answers fail, as a networked store's Reserve
// does when its answer is lost; its Settle applies once per id.
type lateStore struct {
	*memstore.Store
	fail    error
	mu      sync.Mutex
	settled map[string]int
}

func (l *lateStore) SettleIsIdempotent() {}

func (l *lateStore) Reserve(ctx context.Context, id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (budget.Outcome, error) {
	out, err := l.Store.Reserve(ctx, id, amount, items, ttl, now)
	if err == nil && l.fail != nil {
		return budget.Outcome{}, l.fail
	}
	return out, err
}

func (l *lateStore) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.settled[id]++
	if l.settled[id] > 1 {
		return nil
	}
	return l.Store.Settle(ctx, id, actual, items, now)
}

func (l *lateStore) settles(id string) int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.settled[id]
}

// released runs one Reserve of 1 USD on a 10 USD budget through an engine
// with settle retries on a store whose Reserve applies and then fails
// with fail, and returns the engine, the store, the scopes and what
// OnRelease was told.
func releaseEngine(t *testing.T, fail error) (*budget.Engine, *lateStore, []budget.Scope, *[]string) {
	t.Helper()
	store := &lateStore{Store: memstore.New(), fail: fail, settled: map[string]int{}}
	p, err := budget.Compile([]budget.Config{{Name: "fleet", Period: "total", HardUSD: budget.USDOf(10 * money.PerUSD)}}, budget.Limits{})
	require.NoError(t, err)
	e := budget.NewEngine(store, nil)
	var mu sync.Mutex
	var told []string
	e.RetrySettles(budget.SettleRetry{Backoff: time.Millisecond, MaxBackoff: 5 * time.Millisecond,
		OnRelease: func(id, reason string, err error) {
			mu.Lock()
			defer mu.Unlock()
			told = append(told, id+" "+reason)
		}})
	t.Cleanup(func() { assert.Zero(t, e.Close(), "no release abandoned") })
	scopes := p.Applicable(nil)
	_, rej, err := e.Reserve(context.Background(), p, scopes, "m", money.PerUSD, "r1")
	require.Error(t, err)
	require.Nil(t, rej)
	return e, store, scopes, &told
}

// TestUnknownReserveOutcomeIsReleased: a Reserve that the store applied
// but whose answer was lost (a timeout, a broken connection, the caller
// cancelling) is released by id in the background, exactly once, and
// reported to OnRelease with its reason.
func TestUnknownReserveOutcomeIsReleased(t *testing.T) {
	for _, tt := range []struct {
		name, reason string
		err          error
	}{
		{"Timeout", budget.ReleaseTimeout, fmt.Errorf("redis reserve: %w: i/o timeout", context.DeadlineExceeded)},
		{"Canceled", budget.ReleaseCanceled, context.Canceled},
		{"ConnectionReset", budget.ReleaseConnection, fmt.Errorf("redis reserve: %w", &net.OpError{Op: "read", Net: "tcp", Err: syscall.ECONNRESET})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, store, scopes, told := releaseEngine(t, tt.err)
			require.Eventually(t, func() bool { return store.settles("r1") > 0 }, 10*time.Second, time.Millisecond)
			st, err := e.Status(context.Background(), scopes)
			require.NoError(t, err)
			assert.Zero(t, st[0].Reserved, "the reservation nobody owns is released")
			assert.Zero(t, st[0].Committed, "with nothing charged")
			assert.Equal(t, 1, store.settles("r1"), "released once")
			assert.Equal(t, int64(1), e.Released())
			assert.Equal(t, []string{"r1 " + tt.reason}, *told)
		})
	}
}

// TestRefusedReserveIsNotReleased: a Reserve the store refused changed
// nothing, so nothing is sent after it.
func TestRefusedReserveIsNotReleased(t *testing.T) {
	for _, tt := range []struct {
		name string
		err  error
	}{
		{"Duplicate", fmt.Errorf("%w: \"r1\"", budget.ErrDuplicateReservation)},
		{"Invalid", fmt.Errorf("%w: ttl", budget.ErrInvalidArgument)},
		{"StoreError", errors.New("redis reserve: ERR spendguard: limit is not an amount")},
		{"DialFailed", fmt.Errorf("redis reserve: %w", &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED})},
		{"DialTimedOut", fmt.Errorf("redis reserve: %w: %w", context.DeadlineExceeded, &net.OpError{Op: "dial", Net: "tcp", Err: errors.New("i/o timeout")})},
	} {
		t.Run(tt.name, func(t *testing.T) {
			e, store, _, told := releaseEngine(t, tt.err)
			assert.Zero(t, store.settles("r1"))
			assert.Zero(t, e.Released())
			assert.Empty(t, *told)
		})
	}
}

// TestNoReleaseWithoutRetries: an engine without RetrySettles (or on a
// store that cannot settle an id once) sends no release.
func TestNoReleaseWithoutRetries(t *testing.T) {
	store := &lateStore{Store: memstore.New(), fail: context.DeadlineExceeded, settled: map[string]int{}}
	p, err := budget.Compile([]budget.Config{{Name: "fleet", Period: "total", HardUSD: budget.USDOf(money.PerUSD)}}, budget.Limits{})
	require.NoError(t, err)
	e := budget.NewEngine(store, nil)
	_, _, err = e.Reserve(context.Background(), p, p.Applicable(nil), "m", 1, "r1")
	require.ErrorIs(t, err, context.DeadlineExceeded)
	assert.Zero(t, e.Released())
	assert.Zero(t, store.settles("r1"))
}
