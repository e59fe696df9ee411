package redisstore_test

import (
	"context"
	"strconv"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/storetest"
)

func TestListerConformance(t *testing.T) {
	storetest.RunLister(t, func(t *testing.T) storetest.ListerStore {
		s, _, _ := newStore(t)
		return s
	})
}

// TestCounterKeysPagesThroughSCAN writes more counters than one SCAN page
// looks at and finds every one, and none of the reservation sets.
func TestCounterKeysPagesThroughSCAN(t *testing.T) {
	s, c, prefix := newStore(t)
	ctx := context.Background()
	const n = 2500
	pipe := c.Pipeline()
	for i := range n {
		pipe.HSet(ctx, prefix+"c:{b|day|tenant=t"+strconv.Itoa(i)+"}@1", "c", "1")
		pipe.ZAdd(ctx, prefix+"z:{b|day|tenant=t"+strconv.Itoa(i)+"}@1", redis.Z{Score: 1, Member: "r"})
	}
	_, err := pipe.Exec(ctx)
	require.NoError(t, err)

	keys, more, err := s.CounterKeys(ctx, "b|", n+10)
	require.NoError(t, err)
	assert.False(t, more)
	seen := map[string]bool{}
	for _, k := range keys {
		seen[k] = true
	}
	assert.Len(t, seen, n)
	assert.True(t, seen["b|day|tenant=t2499@1"], "keys come back without the Redis prefix")

	keys, more, err = s.CounterKeys(ctx, "b|", 10)
	require.NoError(t, err)
	assert.Len(t, keys, 10)
	assert.True(t, more)
}
