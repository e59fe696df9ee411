package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/test/redistest"
)

func TestClaimHasOneOwnerUntilItExpires(t *testing.T) {
	c, prefix := redistest.Shared(t)
	s := redisstore.New(c, redisstore.Options{KeyPrefix: prefix, Timeout: 2 * time.Second})
	ctx := context.Background()
	ok, err := s.Claim(ctx, "alert:x", "replica-a", 300*time.Millisecond)
	require.NoError(t, err)
	assert.True(t, ok, "the first claims it")
	ok, err = s.Claim(ctx, "alert:x", "replica-b", time.Minute)
	require.NoError(t, err)
	assert.False(t, ok, "another replica does not")
	ok, err = s.Claim(ctx, "alert:x", "replica-a", time.Minute)
	require.NoError(t, err)
	assert.True(t, ok, "the owner again (a retry) does")
	ttl, err := c.PTTL(ctx, prefix+"claim:{alert:x}").Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 300*time.Millisecond, "a retry does not extend it")
	require.Eventually(t, func() bool {
		ok, err := s.Claim(ctx, "alert:x", "replica-b", time.Minute)
		return err == nil && ok
	}, 5*time.Second, 20*time.Millisecond, "free again once expired")
	_, err = s.Claim(ctx, "", "a", time.Second)
	assert.Error(t, err)
}
