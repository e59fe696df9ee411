package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/test/redistest"
)

// leaseSetup gives counter s@2 (with the bucket s@1 as its window) two
// holders: a, live, and b, whose lease expires at 10 s; and a lease of c
// on the bucket, expired too. A Sync of a at 20 s then reads every lease
// field: its own, b's and c's (forfeits), and the bucket's totals.
func leaseSetup(t *testing.T, s *redisstore.Store) (budget.Item, lease.SyncRequest) {
	t.Helper()
	ctx := context.Background()
	bucket := budget.Item{Key: "s@1", Limit: 1000, Enforce: true}
	it := budget.Item{Key: "s@2", Window: []string{"s@1"}, Limit: 1000, Enforce: true}
	for _, r := range []lease.SyncRequest{
		{Holder: "c", Seq: 1, Item: bucket, Extra: 100, TTL: 10 * time.Second, Now: t0},
		{Holder: "a", Seq: 1, Item: it, Commit: 50, Reserved: 5, Need: 5, Extra: 100, TTL: time.Minute, Now: t0},
		{Holder: "b", Seq: 1, Item: it, Extra: 100, TTL: 10 * time.Second, Now: t0},
	} {
		out, err := s.Sync(ctx, r)
		require.NoError(t, err)
		require.True(t, out.Applied)
	}
	return it, lease.SyncRequest{Holder: "a", Seq: 2, Item: it, Commit: 10, Extra: 100, TTL: time.Minute, Now: t0.Add(20 * time.Second)}
}

// TestLeaseStoredGarbageChangesNothing: a lease field, a total or a key
// that is not what the script writes fails the Sync, which then changed
// nothing (applied or not: a duplicate Seq reads the fields too); once
// repaired, the same call is applied.
func TestLeaseStoredGarbageChangesNothing(t *testing.T) {
	type corruption struct {
		name string
		key  string // counter key
		hash bool   // a field of the hash (else the holders set)
		f, v string
	}
	for _, c := range []corruption{
		{"OwnLease", "s@2", true, "l:a", "x"},
		{"OwnLeaseNegative", "s@2", true, "l:a", "-5"},
		{"OwnReported", "s@2", true, "q:a", "1.5"},
		{"OwnSeqNotANumber", "s@2", true, "s:a", "abc"},
		{"OwnSeqLeadingZero", "s@2", true, "s:a", "01"},
		{"OwnSeqBeyondUint64", "s@2", true, "s:a", "18446744073709551616"},
		{"OwnForfeit", "s@2", true, "f:a", "9223372036854775808"},
		{"Leased", "s@2", true, "l", "abc"},
		{"Reported", "s@2", true, "q", ""},
		{"ExpiredHolderLease", "s@2", true, "l:b", "1e3"},
		{"ExpiredHolderForfeit", "s@2", true, "f:b", "x"},
		{"BucketLeased", "s@1", true, "l", "x"},
		{"BucketExpiredLease", "s@1", true, "l:c", "-1"},
		{"HoldersWrongType", "s@2", false, "", ""},
		{"BucketHoldersWrongType", "s@1", false, "", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			s, rc, prefix := newStore(t)
			ctx := context.Background()
			_, r := leaseSetup(t, s)
			var restore func()
			if c.hash {
				old, err := rc.HGet(ctx, s.CounterKey(c.key), c.f).Result()
				if err == redis.Nil {
					old, err = "", nil
				}
				require.NoError(t, err)
				require.NoError(t, rc.HSet(ctx, s.CounterKey(c.key), c.f, c.v).Err())
				restore = func() {
					if old == "" {
						require.NoError(t, rc.HDel(ctx, s.CounterKey(c.key), c.f).Err())
					} else {
						require.NoError(t, rc.HSet(ctx, s.CounterKey(c.key), c.f, old).Err())
					}
				}
			} else {
				k := s.HoldersKey(c.key)
				members, err := rc.ZRangeWithScores(ctx, k, 0, -1).Result()
				require.NoError(t, err)
				require.NoError(t, rc.Del(ctx, k).Err())
				require.NoError(t, rc.Set(ctx, k, "x", 0).Err())
				restore = func() {
					require.NoError(t, rc.Del(ctx, k).Err())
					require.NoError(t, rc.ZAdd(ctx, k, members...).Err())
				}
			}
			before := dump(t, rc, prefix)
			_, err := s.Sync(ctx, r)
			require.Error(t, err)
			assert.NotErrorIs(t, err, lease.ErrInvalid, "stored garbage is not the caller's fault")
			assert.Equal(t, before, dump(t, rc, prefix))
			if c.key == "s@2" && c.f != "l:b" && c.f != "f:b" && c.hash {
				dup := r
				dup.Seq = 1
				_, err := s.Sync(ctx, dup)
				require.Error(t, err, "a duplicate reads %s too", c.f)
				assert.Equal(t, before, dump(t, rc, prefix))
			}
			restore()
			out, err := s.Sync(ctx, r)
			require.NoError(t, err)
			assert.True(t, out.Applied)
		})
	}
}

// TestLeaseRetryAfterTimeout: a Sync that times out on a hung Redis is
// applied when Redis runs again; the caller's retry with the same Seq
// then applies nothing and reports the state, so the commit counts once.
func TestLeaseRetryAfterTimeout(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, ContextTimeoutEnabled: true, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	s := redisstore.New(c, redisstore.Options{Timeout: 200 * time.Millisecond})
	ctx := context.Background()
	it := budget.Item{Key: "s@1", Limit: 1000, Enforce: true}
	r := lease.SyncRequest{Holder: "a", Seq: 1, Item: it, Extra: 100, TTL: time.Minute, Now: t0}
	_, err := s.Sync(ctx, r) // loads the script
	require.NoError(t, err)

	r.Seq, r.Commit, r.Now = 2, 40, t0.Add(time.Second)
	srv.Pause()
	_, err = s.Sync(ctx, r)
	srv.Resume()
	require.ErrorIs(t, err, context.DeadlineExceeded)

	// Redis ran the call after all.
	require.Eventually(t, func() bool {
		v, err := c.HGet(ctx, s.CounterKey("s@1"), "s:a").Result()
		return err == nil && v == "2"
	}, 10*time.Second, 20*time.Millisecond)
	retry, err := s.Sync(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, lease.SyncReply{Applied: false, Lease: 100, Committed: 40, Leased: 100, Holders: 1}, retry)
	r.Seq, r.Now = 3, t0.Add(2*time.Second)
	next, err := s.Sync(ctx, r)
	require.NoError(t, err)
	assert.Equal(t, lease.SyncReply{Applied: true, Lease: 100, Committed: 80, Leased: 100, Holders: 1}, next)
}
