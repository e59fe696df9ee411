package redisstore_test

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// TestRaiseCommittedNeverAdds: raising twice, or below what is there,
// changes nothing; raising above sets the amount exactly, up to 2^63-1,
// and gives the counter its period's lifetime.
func TestRaiseCommittedNeverAdds(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	day := item("tenant-daily|day|tenant=acme@1796083200", money.PerUSD, t0.Add(6*time.Hour))
	_, err := s.Reserve(ctx, "r1", 5, []budget.Item{day}, time.Minute, t0)
	require.NoError(t, err)
	require.NoError(t, s.Settle(ctx, "r1", 300, []budget.Item{day}, t0))

	raised, err := s.RaiseCommitted(ctx, day, 200, t0)
	require.NoError(t, err)
	assert.False(t, raised, "below what is counted")
	raised, err = s.RaiseCommitted(ctx, day, 1_000, t0)
	require.NoError(t, err)
	assert.True(t, raised)
	raised, err = s.RaiseCommitted(ctx, day, 1_000, t0)
	require.NoError(t, err)
	assert.False(t, raised, "a second rebuild adds nothing")
	u, err := s.Usage(ctx, []budget.Item{day}, t0)
	require.NoError(t, err)
	assert.Equal(t, []budget.Counter{{Committed: 1_000}}, u)
	pttl, err := c.PTTL(ctx, s.CounterKey(day.Key)).Result()
	require.NoError(t, err)
	assert.Greater(t, pttl, 6*time.Hour)

	top := item("all|total|@total", math.MaxInt64, time.Time{})
	_, err = s.RaiseCommitted(ctx, top, math.MaxInt64, t0)
	require.NoError(t, err)
	u, err = s.Usage(ctx, []budget.Item{top}, t0)
	require.NoError(t, err)
	assert.Equal(t, money.Nano(math.MaxInt64), u[0].Committed)

	_, err = s.RaiseCommitted(ctx, day, -1, t0)
	assert.ErrorIs(t, err, budget.ErrInvalidArgument)
}
