package redistest_test

import (
	"context"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/test/redistest"
)

func TestStartCluster(t *testing.T) {
	c := redistest.StartCluster(t)
	cc := c.Client()
	ctx := context.Background()
	for _, k := range []string{"a", "b", "c", "{x}1", "{x}2"} {
		require.NoError(t, cc.Set(ctx, k, "v", 0).Err())
	}
	var n atomic.Int32
	require.NoError(t, cc.ForEachMaster(ctx, func(ctx context.Context, m *redis.Client) error {
		n.Add(1)
		return m.Ping(ctx).Err()
	}))
	assert.Equal(t, int32(3), n.Load())
}

func TestStartSentinelFailover(t *testing.T) {
	s := redistest.StartSentinel(t)
	addr, err := s.MasterAddr()
	require.NoError(t, err)
	assert.Equal(t, s.Primary.Addr, addr)
	s.KillPrimary()
	s.WaitFailover()
	addr, err = s.MasterAddr()
	require.NoError(t, err)
	assert.Equal(t, s.Replica.Addr, addr)
}
