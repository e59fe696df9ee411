package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/pricing"
)

// TestEngineAbsurdUsageIsNeverLost is the whole path of issue 16's Redis
// case through the engine: an upstream reports 1e18 tokens on a request
// whose budgets are a capped tenant and a fleet counter near nothing;
// the first settle meets a broken key and fails, the engine retries it in
// the background, and once the key is repaired the saturated spend lands
// on every budget exactly once: the tenant is blocked. Before the scripts
// validated first, the failed settle had set its marker and the retry
// dropped the charge.
func TestEngineAbsurdUsageIsNeverLost(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	now := func() time.Time { return t0 }
	p, err := budget.Compile([]budget.Config{
		{Name: "tenant", Match: map[string]string{"tenant": "*"}, Period: "day", HardUSD: budget.USDOf(100_000_000_000)},
		{Name: "fleet", Period: "total", HardUSD: budget.USDOf(1 << 62)},
	}, budget.Limits{})
	require.NoError(t, err)
	eng := budget.NewEngine(s, now)
	eng.RetrySettles(budget.SettleRetry{Backoff: 10 * time.Millisecond, MaxBackoff: 50 * time.Millisecond})
	t.Cleanup(func() { eng.Close() })

	scopes := p.Applicable(map[string]string{"tenant": "acme"})
	require.Len(t, scopes, 2)
	res, rej, err := eng.Reserve(ctx, p, scopes, "m", 1_000_000_000, "req-1")
	require.NoError(t, err)
	require.Nil(t, rej)

	broken := s.CounterKey(res.Items[1].Key)
	saved := c.Dump(ctx, broken).Val()
	require.NoError(t, c.HSet(ctx, broken, "c", "not-an-amount").Err())

	cost := pricing.Price{Input: 15_000_000_000, Output: 60_000_000_000}.Cost(pricing.Usage{Prompt: 1e18, Completion: 1e18}).Total
	err = eng.Settle(ctx, res, cost)
	require.Error(t, err, "the broken key fails the settle")
	st, err := eng.Status(ctx, scopes[:1])
	require.NoError(t, err)
	assert.Zero(t, st[0].Committed, "nothing half applied")

	require.NoError(t, c.RestoreReplace(ctx, broken, 0, saved).Err())
	require.Eventually(t, func() bool {
		st, err := eng.Status(ctx, scopes)
		return err == nil && st[0].Committed == cost && st[1].Committed == cost
	}, 10*time.Second, 20*time.Millisecond, "the background retry commits the spend")
	st, err = eng.Status(ctx, scopes)
	require.NoError(t, err)
	for _, x := range st {
		assert.Zero(t, x.Reserved, "%s: reservation released", x.Scope.Budget.Name())
		assert.Equal(t, "hard", x.Level)
	}

	_, rej, err = eng.Reserve(ctx, p, scopes, "m", 0, "req-2")
	require.NoError(t, err)
	require.NotNil(t, rej, "the tenant is blocked")
}
