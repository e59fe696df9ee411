// Package storetest is the conformance suite of budget.Store: every store
// implementation (in memory, Redis, ...) runs Run from its tests and Bench
// from its benchmarks, so all of them keep the same atomic semantics.
package storetest

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// T0 is the time the suite starts its clock at.
var T0 = time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)

// periodEnd is the Expires of the suite's items: far enough for no store
// to drop a counter during a test.
var periodEnd = T0.AddDate(0, 1, 0)

const ttl = 10 * time.Minute

// Run runs the conformance suite; newStore returns an empty store for each
// subtest (keys are also prefixed with the subtest name, so a shared
// backend works too).
func Run(t *testing.T, newStore func(t *testing.T) budget.Store) {
	tests := []struct {
		name string
		fn   func(t *testing.T, s budget.Store, k keys)
	}{
		{"ReserveWithinLimit", testReserveWithinLimit},
		{"ExactFit", testExactFit},
		{"AllOrNothing", testAllOrNothing},
		{"FirstBlockingIndex", testFirstBlockingIndex},
		{"NotEnforcedCountsButNeverBlocks", testNotEnforced},
		{"ReachedLimitBlocksZeroAmount", testReachedLimit},
		{"WindowCountsAgainstLimit", testWindow},
		{"SettleCommitsAndReleases", testSettle},
		{"SettleZeroReleases", testSettleZero},
		{"SettleUnknownIDCommits", testSettleUnknown},
		{"ReservationExpiresAfterTTL", testExpiry},
		{"SettleAfterExpiryCommits", testSettleAfterExpiry},
		{"DuplicateID", testDuplicateID},
		{"InvalidArguments", testInvalid},
		{"CanceledContext", testCanceled},
		{"ConcurrentExactlyFits", testConcurrentFits},
		{"ConcurrentNeverOvershoots", testConcurrentNeverOvershoots},
	}
	tests = append(tests, absurdTests...)
	tests = append(tests, extendTests...)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tt.fn(t, newStore(t), keys(t.Name()+"/"))
		})
	}
}

// keys makes counter keys unique to one subtest.
type keys string

func (k keys) item(name string, limit money.Nano) budget.Item {
	return budget.Item{Key: string(k) + name, Limit: limit, Enforce: true, Expires: periodEnd}
}

func usd(n int64) money.Nano { return money.Nano(n) * money.PerUSD }

func counter(committed, reserved int64) budget.Counter {
	return budget.Counter{Committed: usd(committed), Reserved: usd(reserved)}
}

func usage(t *testing.T, s budget.Store, now time.Time, items ...budget.Item) []budget.Counter {
	t.Helper()
	c, err := s.Usage(context.Background(), items, now)
	require.NoError(t, err)
	return c
}

func reserve(t *testing.T, s budget.Store, id string, amount money.Nano, now time.Time, items ...budget.Item) budget.Outcome {
	t.Helper()
	out, err := s.Reserve(context.Background(), id, amount, items, ttl, now)
	require.NoError(t, err)
	return out
}

func settle(t *testing.T, s budget.Store, id string, actual money.Nano, now time.Time, items ...budget.Item) {
	t.Helper()
	require.NoError(t, s.Settle(context.Background(), id, actual, items, now))
}

func testReserveWithinLimit(t *testing.T, s budget.Store, k keys) {
	a, b := k.item("a", usd(10)), k.item("b", usd(100))
	out := reserve(t, s, "r1", usd(3), T0, a, b)
	assert.True(t, out.OK())
	assert.Equal(t, -1, out.Blocked)
	assert.Equal(t, []budget.Counter{counter(0, 3), counter(0, 3)}, out.Counters)
	out = reserve(t, s, "r2", usd(4), T0, a)
	assert.Equal(t, []budget.Counter{counter(0, 7)}, out.Counters)
	assert.Equal(t, []budget.Counter{counter(0, 7), counter(0, 3), {}},
		usage(t, s, T0, a, b, k.item("unknown", 0)))
}

func testExactFit(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	assert.True(t, reserve(t, s, "r1", usd(7), T0, a).OK())
	assert.True(t, reserve(t, s, "r2", usd(3), T0, a).OK(), "7+3 reaches the limit without passing it")
	out := reserve(t, s, "r3", 1, T0, a)
	assert.Equal(t, 0, out.Blocked, "one nano-USD more passes it")
	assert.Equal(t, []budget.Counter{counter(0, 10)}, out.Counters)
}

func testAllOrNothing(t *testing.T, s budget.Store, k keys) {
	wide, narrow := k.item("wide", usd(100)), k.item("narrow", usd(5))
	require.True(t, reserve(t, s, "r1", usd(4), T0, narrow).OK())
	out := reserve(t, s, "r2", usd(2), T0, wide, narrow)
	assert.False(t, out.OK())
	assert.Equal(t, 1, out.Blocked)
	assert.Equal(t, []budget.Counter{counter(0, 0), counter(0, 4)}, out.Counters, "state before the refused reservation")
	assert.Equal(t, []budget.Counter{counter(0, 0), counter(0, 4)}, usage(t, s, T0, wide, narrow),
		"nothing reserved on the budget that had room")
	settle(t, s, "r2", 0, T0, wide, narrow) // settling a refused id commits nothing
	assert.Equal(t, []budget.Counter{counter(0, 0), counter(0, 4)}, usage(t, s, T0, wide, narrow))
}

func testFirstBlockingIndex(t *testing.T, s budget.Store, k keys) {
	items := []budget.Item{k.item("a", usd(10)), k.item("b", usd(1)), k.item("c", usd(1))}
	out := reserve(t, s, "r1", usd(2), T0, items...)
	assert.Equal(t, 1, out.Blocked)
	assert.Len(t, out.Counters, 3)
}

func testNotEnforced(t *testing.T, s budget.Store, k keys) {
	free := k.item("a", 0)
	free.Enforce = false
	capped := k.item("a", usd(1)) // same counter, enforced: sees the spend
	out := reserve(t, s, "r1", usd(5), T0, free)
	assert.True(t, out.OK(), "an item that is not enforced never blocks")
	settle(t, s, "r1", usd(5), T0, free)
	assert.Equal(t, []budget.Counter{counter(5, 0)}, usage(t, s, T0, capped), "but its spend counts")
	assert.Equal(t, 0, reserve(t, s, "r2", 0, T0, capped).Blocked)
}

func testReachedLimit(t *testing.T, s budget.Store, k keys) {
	zero := k.item("zero", 0)
	assert.Equal(t, 0, reserve(t, s, "r1", 0, T0, zero).Blocked, "a zero cap admits nothing")
	a := k.item("a", usd(10))
	settle(t, s, "seed", usd(9), T0, a)
	assert.True(t, reserve(t, s, "r2", 0, T0, a).OK(), "a free request below the cap passes")
	settle(t, s, "r2", 0, T0, a)
	settle(t, s, "seed2", usd(1), T0, a)
	assert.Equal(t, 0, reserve(t, s, "r3", 0, T0, a).Blocked, "a reached cap admits nothing")
}

func testWindow(t *testing.T, s budget.Store, k keys) {
	old, older := k.item("b1", 0), k.item("b0", 0)
	old.Enforce, older.Enforce = false, false
	settle(t, s, "old", usd(4), T0, old)
	settle(t, s, "older", usd(3), T0, older)
	require.True(t, reserve(t, s, "r0", usd(1), T0, old).OK())
	cur := k.item("b2", usd(10))
	cur.Window = []string{old.Key, older.Key}
	assert.Equal(t, []budget.Counter{counter(7, 1)}, usage(t, s, T0, cur))
	out := reserve(t, s, "r1", usd(3), T0, cur)
	assert.Equal(t, 0, out.Blocked, "4+3+1+3 passes 10")
	assert.Equal(t, []budget.Counter{counter(7, 1)}, out.Counters)
	out = reserve(t, s, "r2", usd(2), T0, cur)
	assert.True(t, out.OK())
	assert.Equal(t, []budget.Counter{counter(7, 3)}, out.Counters)
	assert.Equal(t, []budget.Counter{counter(0, 2), counter(4, 1)}, usage(t, s, T0, k.item("b2", 0), old),
		"the amount is recorded on Key only")
}

func testSettle(t *testing.T, s budget.Store, k keys) {
	a, b := k.item("a", usd(10)), k.item("b", usd(10))
	require.True(t, reserve(t, s, "r1", usd(5), T0, a, b).OK())
	require.True(t, reserve(t, s, "r2", usd(2), T0, a).OK())
	settle(t, s, "r1", usd(3), T0.Add(time.Minute), a, b)
	assert.Equal(t, []budget.Counter{counter(3, 2), counter(3, 0)}, usage(t, s, T0.Add(time.Minute), a, b))
}

func testSettleZero(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	require.True(t, reserve(t, s, "r1", usd(5), T0, a).OK())
	settle(t, s, "r1", 0, T0, a)
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0, a))
}

func testSettleUnknown(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	require.True(t, reserve(t, s, "other", usd(2), T0, a).OK())
	settle(t, s, "never-reserved", usd(4), T0, a)
	assert.Equal(t, []budget.Counter{counter(4, 2)}, usage(t, s, T0, a))
}

func testExpiry(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	require.True(t, reserve(t, s, "r1", usd(8), T0, a).OK())
	assert.Equal(t, []budget.Counter{counter(0, 8)}, usage(t, s, T0.Add(ttl-time.Nanosecond), a))
	assert.Equal(t, 0, reserve(t, s, "r2", usd(5), T0.Add(ttl-time.Nanosecond), a).Blocked)
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0.Add(ttl), a), "expired at reserve time + ttl")
	assert.True(t, reserve(t, s, "r3", usd(5), T0.Add(ttl), a).OK())
}

func testSettleAfterExpiry(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	require.True(t, reserve(t, s, "crashed", usd(6), T0, a).OK())
	require.True(t, reserve(t, s, "slow", usd(3), T0.Add(time.Minute), a).OK())
	later := T0.Add(ttl + 2*time.Minute)
	require.True(t, reserve(t, s, "live", usd(2), later, a).OK())
	settle(t, s, "slow", usd(3), later, a)
	assert.Equal(t, []budget.Counter{counter(3, 2)}, usage(t, s, later, a),
		"the spend of an expired reservation is committed; live reservations are untouched")
}

func testDuplicateID(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	require.True(t, reserve(t, s, "r1", usd(1), T0, a).OK())
	_, err := s.Reserve(context.Background(), "r1", usd(1), []budget.Item{a}, ttl, T0)
	assert.ErrorIs(t, err, budget.ErrDuplicateReservation)
	assert.Equal(t, []budget.Counter{counter(0, 1)}, usage(t, s, T0, a))
	settle(t, s, "r1", usd(1), T0, a)
	if _, ok := s.(budget.IdempotentSettler); ok {
		_, err = s.Reserve(context.Background(), "r1", usd(1), []budget.Item{a}, ttl, T0)
		assert.ErrorIs(t, err, budget.ErrDuplicateReservation,
			"a store that settles an id once refuses to reserve a settled id: it may be a Reserve that arrives after its release")
		assert.Equal(t, []budget.Counter{counter(1, 0)}, usage(t, s, T0, a), "and holds nothing for it")
	} else {
		assert.True(t, reserve(t, s, "r1", usd(1), T0, a).OK(), "a settled id may be used again")
		settle(t, s, "r1", 0, T0, a)
	}
	require.True(t, reserve(t, s, "r2", usd(1), T0, a).OK())
	assert.True(t, reserve(t, s, "r2", usd(1), T0.Add(ttl), a).OK(), "an expired id may be used again")
}

func testInvalid(t *testing.T, s budget.Store, k keys) {
	ctx, items := context.Background(), []budget.Item{k.item("a", usd(10))}
	_, err := s.Reserve(ctx, "r1", -1, items, ttl, T0)
	assert.ErrorIs(t, err, budget.ErrInvalidArgument)
	_, err = s.Reserve(ctx, "r1", 1, items, 0, T0)
	assert.ErrorIs(t, err, budget.ErrInvalidArgument)
	_, err = s.Reserve(ctx, "", 1, items, ttl, T0)
	assert.ErrorIs(t, err, budget.ErrInvalidArgument)
	assert.ErrorIs(t, s.Settle(ctx, "r1", -1, items, T0), budget.ErrInvalidArgument)
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0, items...))
}

func testCanceled(t *testing.T, s budget.Store, k keys) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	items := []budget.Item{k.item("a", usd(10))}
	_, err := s.Reserve(ctx, "r1", 1, items, ttl, T0)
	assert.ErrorIs(t, err, context.Canceled)
	assert.ErrorIs(t, s.Settle(ctx, "r1", 1, items, T0), context.Canceled)
	_, err = s.Usage(ctx, items, T0)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0, items...))
}

// testConcurrentFits: 100 requests race for a cap that fits exactly 10
// worst cases; exactly 10 win, and settling at most the reserved amount
// keeps committed spend within the cap.
func testConcurrentFits(t *testing.T, s budget.Store, k keys) {
	const worst = 3 * money.PerUSD
	capped, shared := k.item("tenant", 10*worst), k.item("fleet", usd(1_000_000))
	var wins atomic.Int32
	var wg sync.WaitGroup
	won := make([]bool, 100)
	for i := range 100 {
		wg.Go(func() {
			out, err := s.Reserve(context.Background(), fmt.Sprint("r", i), worst, []budget.Item{shared, capped}, ttl, T0)
			if !assert.NoError(t, err) {
				return
			}
			if out.OK() {
				wins.Add(1)
				won[i] = true
			} else {
				assert.Equal(t, 1, out.Blocked)
			}
		})
	}
	wg.Wait()
	require.Equal(t, int32(10), wins.Load())
	assert.Equal(t, []budget.Counter{{Reserved: 10 * worst}, {Reserved: 10 * worst}}, usage(t, s, T0, shared, capped))

	for i, ok := range won {
		if ok {
			wg.Go(func() {
				assert.NoError(t, s.Settle(context.Background(), fmt.Sprint("r", i), worst-money.Nano(i), []budget.Item{shared, capped}, T0))
			})
		}
	}
	wg.Wait()
	c := usage(t, s, T0, capped)[0]
	assert.Zero(t, c.Reserved)
	assert.LessOrEqual(t, c.Committed, capped.Limit)
	assert.Positive(t, c.Committed)
}

// testConcurrentNeverOvershoots: goroutines reserve and settle in a loop
// until they are refused; committed spend never passes the cap.
func testConcurrentNeverOvershoots(t *testing.T, s budget.Store, k keys) {
	const worst = money.PerUSD
	capped := k.item("team", usd(25)+worst/2)
	var wg sync.WaitGroup
	var seq atomic.Int64
	for g := range 20 {
		wg.Go(func() {
			for {
				id := fmt.Sprint("g", g, "-", seq.Add(1))
				out, err := s.Reserve(context.Background(), id, worst, []budget.Item{capped}, ttl, T0)
				if !assert.NoError(t, err) || !out.OK() {
					return
				}
				actual := worst - money.Nano(seq.Load()%3)*worst/4
				if !assert.NoError(t, s.Settle(context.Background(), id, actual, []budget.Item{capped}, T0)) {
					return
				}
			}
		})
	}
	wg.Wait()
	c := usage(t, s, T0, capped)[0]
	assert.Zero(t, c.Reserved)
	assert.LessOrEqual(t, c.Committed, capped.Limit)
	assert.Greater(t, c.Committed, capped.Limit-worst, "refused only when a worst case no longer fits")
}
