package storetest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
)

// The absurd-amount cases: every store saturates the same way. A counter
// (committed or reserved) that an addition would carry past 2^63-1
// nano-USD stays at 2^63-1, so the spend is never lost or wrapped negative
// and every enforced budget on it is blocked; releasing a reservation takes
// its whole amount off, never below zero; a cap is compared exactly (used +
// amount > limit, without saturating the sum); negative amounts are
// refused with ErrInvalidArgument and change nothing.
var absurdTests = []struct {
	name string
	fn   func(t *testing.T, s budget.Store, k keys)
}{
	{"AbsurdUsageBlocksTenant", testAbsurdUsage},
	{"SettleSaturatesAtLimit", testSettleSaturates},
	{"SettleOverflowingExistingCounter", testSettleOverflowsExisting},
	{"SettleSeveralBudgetsOneNearLimit", testSettleSeveralNearLimit},
	{"ReserveHugeAmounts", testReserveHuge},
	{"ReserveComparesCapExactly", testReserveExactCap},
	{"WindowSumSaturates", testWindowSaturates},
	{"NegativeAmountsRefused", testNegativeRefused},
}

const maxNano = money.Nano(math.MaxInt64)

// testAbsurdUsage: an upstream that reports 1e18 tokens priced like a
// frontier model costs more than an int64 holds; the tenant's counter
// saturates, the reservation is released, and the tenant is blocked.
func testAbsurdUsage(t *testing.T, s budget.Store, k keys) {
	price := pricing.Price{Input: usd(15), Output: usd(60)}
	cost := price.Cost(pricing.Usage{Prompt: 1e18, Completion: 1e18}).Total
	require.Equal(t, maxNano, cost, "the cost saturates rather than wraps")
	tenant, fleet := k.item("tenant", usd(100)), k.item("fleet", 0)
	fleet.Enforce = false
	require.True(t, reserve(t, s, "r1", usd(1), T0, tenant, fleet).OK())
	settle(t, s, "r1", cost, T0, tenant, fleet)
	assert.Equal(t, []budget.Counter{{Committed: maxNano}, {Committed: maxNano}}, usage(t, s, T0, tenant, fleet))
	out := reserve(t, s, "r2", 0, T0, tenant, fleet)
	assert.Equal(t, 0, out.Blocked, "the tenant is blocked")
	assert.True(t, reserve(t, s, "r3", usd(1), T0, fleet).OK(), "a budget without a cap still admits")
}

func testSettleSaturates(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", maxNano)
	settle(t, s, "s1", maxNano, T0, a)
	settle(t, s, "s2", 1, T0, a)
	settle(t, s, "s3", maxNano, T0, a)
	assert.Equal(t, []budget.Counter{{Committed: maxNano}}, usage(t, s, T0, a))
	assert.Equal(t, 0, reserve(t, s, "r1", 0, T0, a).Blocked, "a saturated counter blocks even a cap of 2^63-1")
}

// testSettleOverflowsExisting: the sum of an existing counter and the
// actual passes 2^63-1; the reservation is still released.
func testSettleOverflowsExisting(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", 0)
	a.Enforce = false
	settle(t, s, "seed", maxNano-5, T0, a)
	require.True(t, reserve(t, s, "r1", usd(3), T0, a).OK())
	require.True(t, reserve(t, s, "r2", 7, T0, a).OK())
	settle(t, s, "r1", 6, T0, a)
	assert.Equal(t, []budget.Counter{{Committed: maxNano, Reserved: 7}}, usage(t, s, T0, a))
	settle(t, s, "r2", 7, T0, a)
	assert.Equal(t, []budget.Counter{{Committed: maxNano}}, usage(t, s, T0, a))
}

// testSettleSeveralNearLimit: one settle over three budgets, one of them
// a counter one nano-USD under the limit: every counter gets the spend
// (the full one saturating), every reservation is released.
func testSettleSeveralNearLimit(t *testing.T, s budget.Store, k keys) {
	low, full, mid := k.item("low", usd(10)), k.item("full", maxNano), k.item("mid", usd(1000))
	settle(t, s, "seed", maxNano-1, T0, full)
	settle(t, s, "seed2", usd(500), T0, mid)
	require.True(t, reserve(t, s, "r1", 1, T0, low, full, mid).OK(), "2^63-2 + 1 fits a cap of 2^63-1")
	settle(t, s, "r1", usd(2), T0, low, full, mid)
	assert.Equal(t, []budget.Counter{counter(2, 0), {Committed: maxNano}, counter(502, 0)},
		usage(t, s, T0, low, full, mid))
	settle(t, s, "r2", usd(3), T0, low, full, mid)
	assert.Equal(t, []budget.Counter{counter(5, 0), {Committed: maxNano}, counter(505, 0)},
		usage(t, s, T0, low, full, mid), "the saturated counter does not stop the others")
}

// testReserveHuge: reserved amounts saturate like committed ones; a
// release takes off the reservation's whole amount, never going below
// zero.
func testReserveHuge(t *testing.T, s budget.Store, k keys) {
	a := k.item("a", 0)
	a.Enforce = false
	out := reserve(t, s, "r1", maxNano, T0, a)
	require.True(t, out.OK())
	assert.Equal(t, []budget.Counter{{Reserved: maxNano}}, out.Counters)
	out = reserve(t, s, "r2", maxNano-1, T0, a)
	require.True(t, out.OK())
	assert.Equal(t, []budget.Counter{{Reserved: maxNano}}, out.Counters, "saturated")
	settle(t, s, "r1", 0, T0, a)
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0, a), "2^63-1 - 2^63-1, although r2 is live")
	settle(t, s, "r2", maxNano, T0, a)
	assert.Equal(t, []budget.Counter{{Committed: maxNano}}, usage(t, s, T0, a), "never below zero")

	b := k.item("b", 0)
	b.Enforce = false
	require.True(t, reserve(t, s, "r3", maxNano, T0, b).OK())
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0.Add(ttl), b), "a huge reservation expires too")
}

// testReserveExactCap: used + amount is compared with the cap exactly,
// even when the sum passes 2^63-1.
func testReserveExactCap(t *testing.T, s budget.Store, k keys) {
	top := k.item("top", maxNano)
	assert.True(t, reserve(t, s, "r1", maxNano, T0, top).OK(), "exact fit at 2^63-1")
	assert.Equal(t, 0, reserve(t, s, "r2", 0, T0, top).Blocked)
	settle(t, s, "r1", 0, T0, top)

	settle(t, s, "seed", maxNano-1, T0, top)
	out := reserve(t, s, "r3", 2, T0, top)
	assert.Equal(t, 0, out.Blocked, "2^63-2 + 2 passes 2^63-1")
	assert.Equal(t, []budget.Counter{{Committed: maxNano - 1}}, out.Counters)
	assert.True(t, reserve(t, s, "r4", 1, T0, top).OK())

	small := k.item("small", usd(10))
	out = reserve(t, s, "r5", maxNano, T0, small)
	assert.Equal(t, 0, out.Blocked)
	assert.Equal(t, []budget.Counter{{}}, usage(t, s, T0, small), "nothing reserved")
	settle(t, s, "seed2", usd(9), T0, small)
	assert.Equal(t, 0, reserve(t, s, "r6", maxNano, T0, small).Blocked, "9 USD + 2^63-1 passes 10 USD")
}

func testWindowSaturates(t *testing.T, s budget.Store, k keys) {
	b0, b1 := k.item("b0", 0), k.item("b1", 0)
	b0.Enforce, b1.Enforce = false, false
	settle(t, s, "old0", maxNano, T0, b0)
	settle(t, s, "old1", maxNano-3, T0, b1)
	require.True(t, reserve(t, s, "r0", maxNano, T0, b1).OK())
	cur := k.item("b2", usd(10))
	cur.Window = []string{b1.Key, b0.Key}
	assert.Equal(t, []budget.Counter{{Committed: maxNano, Reserved: maxNano}}, usage(t, s, T0, cur))
	out := reserve(t, s, "r1", 0, T0, cur)
	assert.Equal(t, 0, out.Blocked)
	assert.Equal(t, []budget.Counter{{Committed: maxNano, Reserved: maxNano}}, out.Counters)
}

func testNegativeRefused(t *testing.T, s budget.Store, k keys) {
	ctx, a := context.Background(), k.item("a", usd(10))
	items := []budget.Item{a}
	settle(t, s, "seed", usd(4), T0, a)
	require.True(t, reserve(t, s, "r1", usd(1), T0, a).OK())
	for _, n := range []money.Nano{-1, -usd(4), math.MinInt64} {
		_, err := s.Reserve(ctx, "r2", n, items, ttl, T0)
		assert.ErrorIs(t, err, budget.ErrInvalidArgument, "reserve %d", n)
		assert.ErrorIs(t, s.Settle(ctx, "r1", n, items, T0), budget.ErrInvalidArgument, "settle %d", n)
	}
	assert.Equal(t, []budget.Counter{counter(4, 1)}, usage(t, s, T0, a), "a response never lowers spend")
	settle(t, s, "r1", usd(1), T0.Add(time.Second), a)
	assert.Equal(t, []budget.Counter{counter(5, 0)}, usage(t, s, T0, a), "the refused settle left the reservation to settle")
}
