package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/budget/storetest"
	"github.com/spendguard/spendguard/test/redistest"
)

func TestParkerConformance(t *testing.T) {
	storetest.RunParker(t, func(t *testing.T) budget.Parker {
		s, _, _ := newStore(t)
		return s
	})
}

// TestParkKeyLayout pins the keys a parked record uses and that the
// record expires by itself ParkGrace after its deadline.
func TestParkKeyLayout(t *testing.T) {
	s, c, prefix := newStore(t)
	ctx := context.Background()
	deadline := time.Now().Add(time.Hour)
	require.NoError(t, s.Park(ctx, "resp_1", []byte("rec"), deadline))
	assert.ElementsMatch(t, []string{prefix + "{park}p:resp_1", prefix + "{park}pq"}, redistest.Keys(t, c, prefix))
	ttl, err := c.PTTL(ctx, prefix+"{park}p:resp_1").Result()
	require.NoError(t, err)
	assert.InDelta(t, (time.Hour + redisstore.ParkGrace).Seconds(), ttl.Seconds(), 60)
	score, err := c.ZScore(ctx, prefix+"{park}pq", "resp_1").Result()
	require.NoError(t, err)
	assert.Equal(t, float64(deadline.UnixMicro()), score)

	// A queued key whose record Redis dropped is skipped and removed.
	require.NoError(t, c.Del(ctx, prefix+"{park}p:resp_1").Err())
	got, err := s.PopExpired(ctx, deadline, 10)
	require.NoError(t, err)
	assert.Empty(t, got)
	assert.Empty(t, redistest.Keys(t, c, prefix))
}
