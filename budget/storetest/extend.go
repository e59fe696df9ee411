package storetest

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// The Extend cases: a reservation grows by what every enforced budget
// still has room for (all budgets alike, in one step), its expiry is
// renewed, and Settle releases it whole.
var extendTests = []struct {
	name string
	fn   func(t *testing.T, s budget.Store, k keys)
}{
	{"ExtendGrantsInFull", testExtendInFull},
	{"ExtendCappedByTightestItem", testExtendTightest},
	{"ExtendNotEnforcedIsUnlimited", testExtendNotEnforced},
	{"ExtendFullItemGrantsZero", testExtendFull},
	{"ExtendCountsWindow", testExtendWindow},
	{"ExtendComparesCapExactly", testExtendExactCap},
	{"ExtendZeroRenewsOnly", testExtendZero},
	{"ExtendRenewsExpiry", testExtendRenews},
	{"ExtendRecreatesExpired", testExtendRecreates},
	{"ExtendUnknownCreates", testExtendUnknown},
	{"SettleAfterExtendsReleasesAll", testSettleAfterExtends},
	{"ExtendAfterSettle", testExtendAfterSettle},
	{"ExtendInvalidArguments", testExtendInvalid},
	{"ExtendCanceledContext", testExtendCanceled},
	{"ConcurrentExtendsNeverPassCap", testConcurrentExtends},
}

func extend(t *testing.T, s budget.Store, id string, want money.Nano, now time.Time, items ...budget.Item) (money.Nano, budget.Outcome) {
	t.Helper()
	granted, out, err := s.Extend(context.Background(), id, want, items, ttl, now)
	require.NoError(t, err)
	return granted, out
}

func testExtendInFull(t *testing.T, s budget.Store, k keys) {
	a, b := k.item("a", usd(10)), k.item("b", usd(100))
	require.True(t, reserve(t, s, "r1", usd(3), T0, a, b).OK())
	granted, out := extend(t, s, "r1", usd(2), T0, a, b)
	assert.Equal(t, usd(2), granted)
	assert.Equal(t, -1, out.Blocked)
	assert.True(t, out.OK())
	assert.Equal(t, []budget.Counter{counter(0, 5), counter(0, 5)}, out.Counters, "after the call")
	assert.Equal(t, []budget.Counter{counter(0, 5), counter(0, 5)}, usage(t, s, T0, a, b))
	granted, _ = extend(t, s, "r1", usd(5), T0, a, b)
	assert.Equal(t, usd(5), granted, "3+2+5 reaches a's cap without passing it")
	assert.Equal(t, []budget.Counter{counter(0, 10), counter(0, 10)}, usage(t, s, T0, a, b))
}

func testExtendTightest(t *testing.T, s budget.Store, k keys) {
	wide, tight, twin := k.item("wide", usd(100)), k.item("tight", usd(10)), k.item("twin", usd(9))
	settle(t, s, "spent", usd(4), T0, tight)
	settle(t, s, "spent2", usd(3), T0, twin)
	require.True(t, reserve(t, s, "other", usd(1), T0, tight).OK())
	require.True(t, reserve(t, s, "r1", usd(2), T0, wide, tight, twin).OK())
	// room: wide 98, tight 10-4-1-2 = 3, twin 9-3-2 = 4
	granted, out := extend(t, s, "r1", usd(20), T0, wide, tight, twin)
	assert.Equal(t, usd(3), granted, "the least room of the enforced items")
	assert.Equal(t, 1, out.Blocked, "the item whose room was granted")
	assert.False(t, out.OK())
	assert.Equal(t, []budget.Counter{counter(0, 5), counter(4, 6), counter(3, 5)}, out.Counters)

	// twin now has 1 left and tight 0: tight (earlier, room 0) limits.
	granted, out = extend(t, s, "r1", 1, T0, wide, tight, twin)
	assert.Zero(t, granted)
	assert.Equal(t, 1, out.Blocked)

	// Two items with the same least room: the first of them is named.
	a, b, c := k.item("a", usd(10)), k.item("b", usd(5)), k.item("c", usd(5))
	require.True(t, reserve(t, s, "r2", usd(1), T0, a, b, c).OK())
	granted, out = extend(t, s, "r2", usd(7), T0, a, b, c)
	assert.Equal(t, usd(4), granted)
	assert.Equal(t, 1, out.Blocked)
	assert.Equal(t, []budget.Counter{counter(0, 5), counter(0, 5), counter(0, 5)}, usage(t, s, T0, a, b, c))
}

func testExtendNotEnforced(t *testing.T, s budget.Store, k keys) {
	free, roomy := k.item("free", 0), k.item("roomy", usd(2_000_000))
	free.Enforce = false
	settle(t, s, "spent", usd(50), T0, free)
	require.True(t, reserve(t, s, "r1", usd(1), T0, free, roomy).OK())
	granted, out := extend(t, s, "r1", usd(1_000_000), T0, free, roomy)
	assert.Equal(t, usd(1_000_000), granted, "an item that is not enforced has no bound (its Limit is 0)")
	assert.Equal(t, -1, out.Blocked)
	assert.Equal(t, []budget.Counter{counter(50, 1_000_001), counter(0, 1_000_001)}, out.Counters)
	settle(t, s, "r1", 0, T0, free, roomy)
	assert.Equal(t, []budget.Counter{counter(50, 0), counter(0, 0)}, usage(t, s, T0, free, roomy))
}

func testExtendFull(t *testing.T, s budget.Store, k keys) {
	a, b := k.item("a", usd(100)), k.item("b", usd(10))
	settle(t, s, "spent", usd(7), T0, b)
	require.True(t, reserve(t, s, "r1", usd(3), T0, a, b).OK())
	granted, out := extend(t, s, "r1", 1, T0, a, b)
	assert.Zero(t, granted, "b is full")
	assert.Equal(t, 1, out.Blocked)
	assert.Equal(t, []budget.Counter{counter(0, 3), counter(7, 3)}, out.Counters, "nothing added")
	assert.Equal(t, []budget.Counter{counter(0, 3), counter(7, 3)}, usage(t, s, T0, a, b))

	settle(t, s, "spent2", usd(1), T0, b) // now past its cap
	granted, out = extend(t, s, "r1", usd(1), T0, a, b)
	assert.Zero(t, granted)
	assert.Equal(t, 1, out.Blocked)
	assert.Equal(t, []budget.Counter{counter(0, 3), counter(8, 3)}, out.Counters)

	zero := k.item("zero", 0)
	granted, out = extend(t, s, "r2", 1, T0, zero)
	assert.Zero(t, granted, "a zero cap has no room")
	assert.Equal(t, 0, out.Blocked)
}

func testExtendWindow(t *testing.T, s budget.Store, k keys) {
	old := k.item("b1", 0)
	old.Enforce = false
	settle(t, s, "old", usd(4), T0, old)
	cur := k.item("b2", usd(10))
	cur.Window = []string{old.Key}
	require.True(t, reserve(t, s, "r1", usd(1), T0, cur).OK())
	granted, out := extend(t, s, "r1", usd(10), T0, cur)
	assert.Equal(t, usd(5), granted, "10 - 4 in the window - 1 reserved")
	assert.Equal(t, 0, out.Blocked)
	assert.Equal(t, []budget.Counter{counter(4, 6)}, out.Counters)
	assert.Equal(t, []budget.Counter{counter(0, 6), counter(4, 0)}, usage(t, s, T0, k.item("b2", 0), old),
		"the grant is recorded on Key only")
}

func testExtendExactCap(t *testing.T, s budget.Store, k keys) {
	top := k.item("top", maxNano)
	require.True(t, reserve(t, s, "r1", 2, T0, top).OK())
	granted, out := extend(t, s, "r1", maxNano, T0, top)
	assert.Equal(t, maxNano-2, granted, "exactly what is left below 2^63-1")
	assert.Equal(t, 0, out.Blocked)
	assert.Equal(t, []budget.Counter{{Reserved: maxNano}}, out.Counters)
	granted, out = extend(t, s, "r1", 1, T0, top)
	assert.Zero(t, granted)
	assert.Equal(t, 0, out.Blocked)

	free := k.item("free", 0)
	free.Enforce = false
	require.True(t, reserve(t, s, "r2", maxNano-5, T0, free).OK())
	granted, out = extend(t, s, "r2", 10, T0, free)
	assert.Equal(t, money.Nano(10), granted, "no cap: granted in full")
	assert.Equal(t, []budget.Counter{{Reserved: maxNano}}, out.Counters, "the counter saturates")
	settle(t, s, "r2", 0, T0, free)
	settle(t, s, "r1", 0, T0, top)
	assert.Equal(t, []budget.Counter{{}, {}}, usage(t, s, T0, top, free))
}

func testExtendZero(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	settle(t, s, "spent", usd(10), T0, a)
	require.True(t, reserve(t, s, "r1", 0, T0, k.item("b", usd(1))).OK())
	granted, out := extend(t, s, "r1", 0, T0, k.item("b", usd(1)))
	assert.Zero(t, granted)
	assert.Equal(t, -1, out.Blocked, "nothing asked, all granted")
	granted, out = extend(t, s, "r2", 0, T0, a)
	assert.Zero(t, granted)
	assert.Equal(t, -1, out.Blocked, "even on a full budget")
	assert.Equal(t, []budget.Counter{counter(10, 0)}, out.Counters)
}

func testExtendRenews(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	require.True(t, reserve(t, s, "r1", usd(4), T0, a).OK())
	renewed := T0.Add(ttl - time.Second) // whole seconds: Redis keeps expiry in µs
	granted, _ := extend(t, s, "r1", usd(1), renewed, a)
	require.Equal(t, usd(1), granted)
	assert.Equal(t, []budget.Counter{counter(0, 5)}, usage(t, s, T0.Add(ttl+time.Minute), a),
		"still live after the first TTL: the extension renewed it")
	assert.Equal(t, []budget.Counter{counter(0, 5)}, usage(t, s, renewed.Add(ttl-time.Nanosecond), a))
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, renewed.Add(ttl), a), "expired a TTL after the extension")
}

func testExtendRecreates(t *testing.T, s budget.Store, k keys) {
	a, b := k.item("a", usd(10)), k.item("b", usd(10))
	require.True(t, reserve(t, s, "r1", usd(5), T0, a, b).OK())
	later := T0.Add(ttl)
	granted, out := extend(t, s, "r1", usd(2), later, a, b)
	assert.Equal(t, usd(2), granted)
	assert.Equal(t, []budget.Counter{counter(0, 2), counter(0, 2)}, out.Counters,
		"an expired reservation is made again with the grant alone")
	assert.True(t, reserve(t, s, "r2", usd(8), later, a).OK(), "its old amount no longer counts")
	settle(t, s, "r1", usd(1), later, a, b)
	assert.Equal(t, []budget.Counter{counter(1, 8), counter(1, 0)}, usage(t, s, later, a, b))
	assert.Equal(t, []budget.Counter{counter(1, 0), counter(1, 0)}, usage(t, s, later.Add(ttl), a, b),
		"the re-created reservation is gone: settled, and nothing of it expires later")
}

func testExtendUnknown(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	require.True(t, reserve(t, s, "other", usd(7), T0, a).OK())
	granted, out := extend(t, s, "new", usd(5), T0, a)
	assert.Equal(t, usd(3), granted)
	assert.Equal(t, 0, out.Blocked)
	assert.Equal(t, []budget.Counter{counter(0, 10)}, usage(t, s, T0, a))
	settle(t, s, "new", 0, T0, a)
	assert.Equal(t, []budget.Counter{counter(0, 7)}, usage(t, s, T0, a))
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0.Add(ttl), a), "nothing left behind")
}

func testSettleAfterExtends(t *testing.T, s budget.Store, k keys) {
	a, b := k.item("a", usd(100)), k.item("b", usd(100))
	require.True(t, reserve(t, s, "keep", usd(1), T0, a).OK())
	require.True(t, reserve(t, s, "r1", usd(3), T0, a, b).OK())
	for i, want := range []int64{2, 4, 0, 6} {
		granted, _ := extend(t, s, "r1", usd(want), T0.Add(time.Duration(i)*time.Minute), a, b)
		require.Equal(t, usd(want), granted)
	}
	now := T0.Add(5 * time.Minute)
	assert.Equal(t, []budget.Counter{counter(0, 16), counter(0, 15)}, usage(t, s, now, a, b))
	settle(t, s, "r1", usd(12), now, a, b)
	assert.Equal(t, []budget.Counter{counter(12, 1), counter(12, 0)}, usage(t, s, now, a, b),
		"the reservation and every extension are released, the other one kept")
	assert.Equal(t, []budget.Counter{counter(12, 0), counter(12, 0)}, usage(t, s, now.Add(ttl), a, b))
}

// testExtendAfterSettle: a store that settles an id once refuses to
// extend a settled id (an Extend that arrives after its Settle must hold
// nothing); any other store creates it afresh, as for an unknown id.
func testExtendAfterSettle(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", usd(10))
	require.True(t, reserve(t, s, "r1", usd(3), T0, a).OK())
	settle(t, s, "r1", usd(1), T0, a)
	if _, ok := s.(budget.IdempotentSettler); !ok {
		granted, _ := extend(t, s, "r1", usd(2), T0, a)
		assert.Equal(t, usd(2), granted)
		settle(t, s, "r1", 0, T0, a)
		assert.Equal(t, []budget.Counter{counter(1, 0)}, usage(t, s, T0, a))
		return
	}
	granted, _, err := s.Extend(context.Background(), "r1", usd(2), []budget.Item{a}, ttl, T0)
	assert.ErrorIs(t, err, budget.ErrSettled)
	assert.Zero(t, granted)
	assert.Equal(t, []budget.Counter{counter(1, 0)}, usage(t, s, T0, a), "nothing held for the settled id")
	assert.Equal(t, []budget.Counter{counter(1, 0)}, usage(t, s, T0.Add(ttl), a))
}

func testExtendInvalid(t *testing.T, s budget.Store, k keys) {
	ctx, items := context.Background(), []budget.Item{k.item("a", usd(10))}
	require.True(t, reserve(t, s, "r1", usd(2), T0, items...).OK())
	for _, c := range []struct {
		id   string
		want money.Nano
		ttl  time.Duration
	}{{"r1", -1, ttl}, {"r1", 1, 0}, {"r1", 1, -time.Second}, {"", 1, ttl}} {
		granted, _, err := s.Extend(ctx, c.id, c.want, items, c.ttl, T0.Add(time.Minute))
		assert.ErrorIs(t, err, budget.ErrInvalidArgument, "%+v", c)
		assert.Zero(t, granted)
	}
	assert.Equal(t, []budget.Counter{counter(0, 2)}, usage(t, s, T0, items...))
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0.Add(ttl), items...), "the expiry was not renewed")
}

func testExtendCanceled(t *testing.T, s budget.Store, k keys) {
	items := []budget.Item{k.item("a", usd(10))}
	require.True(t, reserve(t, s, "r1", usd(2), T0, items...).OK())
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, _, err := s.Extend(ctx, "r1", 1, items, ttl, T0)
	assert.ErrorIs(t, err, context.Canceled)
	assert.Equal(t, []budget.Counter{counter(0, 2)}, usage(t, s, T0, items...))
}

// testConcurrentExtends: 50 streams grow their reservations by random
// amounts while 10 other goroutines reserve and settle on the same
// counters; every grant is at most what was asked, the cap is never
// passed, and in the end the counter holds exactly what was granted and
// reserved and is still live (with a last Extend filling the cap).
func testConcurrentExtends(t *testing.T, s budget.Store, k keys) {
	const streams, others, rounds = 50, 10, 12
	capped, fleet := k.item("tenant", usd(1000)), k.item("fleet", 0)
	fleet.Enforce = false
	items := []budget.Item{fleet, capped}
	ctx := context.Background()
	var held atomic.Int64 // what the store must hold: grants and live reservations
	var wg sync.WaitGroup
	for g := range streams {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(g), 19))
			id := fmt.Sprint("s", g)
			if out, err := s.Reserve(ctx, id, usd(1), items, ttl, T0); !assert.NoError(t, err) {
				return
			} else if out.OK() {
				held.Add(int64(usd(1)))
			}
			for range rounds {
				want := money.Nano(rng.Int64N(int64(usd(5)))) + 1
				granted, out, err := s.Extend(ctx, id, want, items, ttl, T0)
				if !assert.NoError(t, err) {
					return
				}
				assert.GreaterOrEqual(t, granted, money.Nano(0))
				assert.LessOrEqual(t, granted, want)
				assert.Equal(t, granted == want, out.OK())
				assert.LessOrEqual(t, out.Counters[1].Used(), capped.Limit)
				held.Add(int64(granted))
			}
		})
	}
	for g := range others {
		wg.Go(func() {
			for i := range rounds {
				id := fmt.Sprint("o", g, "-", i)
				out, err := s.Reserve(ctx, id, usd(3), items, ttl, T0)
				if !assert.NoError(t, err) {
					return
				}
				assert.LessOrEqual(t, out.Counters[1].Used(), capped.Limit)
				if !out.OK() {
					continue
				}
				if i%2 == 0 { // settle half of them at once, keep the others
					assert.NoError(t, s.Settle(ctx, id, 0, items, T0))
				} else {
					held.Add(int64(usd(3)))
				}
			}
		})
	}
	wg.Wait()
	// Fill what the last releases left, so that the cap is reached.
	granted, out := extend(t, s, "last", capped.Limit, T0, items...)
	assert.Equal(t, 1, out.Blocked)
	held.Add(int64(granted))
	c := usage(t, s, T0, items...)
	assert.Zero(t, c[1].Committed)
	assert.Equal(t, money.Nano(held.Load()), c[1].Reserved, "every grant is held, and nothing else")
	assert.Equal(t, c[1], c[0], "the budget without cap holds the same")
	assert.Equal(t, capped.Limit, c[1].Reserved, "full, not passed")
}
