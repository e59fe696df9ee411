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
	"github.com/spendguard/spendguard/budget/lease/leasetest"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

// TestLeaseConformance runs the lease.Backend suite on Redis.
func TestLeaseConformance(t *testing.T) {
	leasetest.Run(t, func(t *testing.T) lease.Backend {
		s, _, _ := newStore(t)
		return s
	})
}

// TestLeaseForfeitConformance runs the lease.ForfeitSettler suite on
// Redis.
func TestLeaseForfeitConformance(t *testing.T) {
	leasetest.RunForfeits(t, func(t *testing.T) leasetest.Settler {
		s, _, _ := newStore(t)
		return s
	})
}

var _ lease.Backend = (*redisstore.Store)(nil)

// BenchmarkSync is one holder's Sync on one counter far from its cap (a
// commit, a reported reservation and a lease renewed each call), on a
// private redis-server: wall time per call, and the server's own time.
func BenchmarkSync(b *testing.B) {
	srv := redistest.Start(b)
	c := srv.Client()
	s := redisstore.New(c, redisstore.Options{Timeout: 5 * time.Second})
	ctx := context.Background()
	it := budget.Item{Key: "tenant|day|tenant=acme@1", Limit: 1 << 62, Enforce: true, Expires: t0.Add(time.Hour)}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	for i := uint64(1); b.Loop(); i++ {
		out, err := s.Sync(ctx, lease.SyncRequest{
			Holder: "replica-1", Seq: i, Item: it, Commit: money.PerUSD, Reserved: 2 * money.PerUSD,
			Need: 2 * money.PerUSD, Ask: money.PerUSD, Extra: 100 * money.PerUSD, TTL: 10 * time.Second, Now: t0,
		})
		if err != nil || !out.Applied {
			b.Fatal(err, out)
		}
	}
	reportServerTime(b, c)
}

// TestLeaseKeyLayout pins the keys and fields a Sync writes and their
// lifetimes: a period counter's expire Grace after the period ends, a
// total's never.
func TestLeaseKeyLayout(t *testing.T) {
	s, c, prefix := newStore(t)
	ctx := context.Background()
	day := budget.Item{Key: "tenant-daily|day|tenant=acme@1796083200", Limit: 1000, Enforce: true, Expires: t0.Add(6 * time.Hour)}
	total := budget.Item{Key: "all|total|@total", Limit: 1000, Enforce: true}
	for _, it := range []budget.Item{day, total} {
		out, err := s.Sync(ctx, lease.SyncRequest{Holder: "r-1", Seq: 1, Item: it, Commit: 3, Reserved: 2, Need: 2, Extra: 100, TTL: time.Minute, Now: t0})
		require.NoError(t, err)
		require.Equal(t, lease.SyncReply{Applied: true, Lease: 102, Committed: 3, Leased: 102, Reserved: 2, Holders: 1}, out)
	}
	assert.ElementsMatch(t, []string{
		prefix + "c:{tenant-daily|day|tenant=acme}@1796083200", prefix + "h:{tenant-daily|day|tenant=acme}@1796083200",
		prefix + "c:{all|total|}@total", prefix + "h:{all|total|}@total",
	}, redistest.Keys(t, c, prefix))
	fields, err := c.HGetAll(ctx, s.CounterKey(day.Key)).Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"c": "3", "l": "102", "q": "2", "l:r-1": "102", "q:r-1": "2", "s:r-1": "1", "y:r-1": "3"}, fields)
	holders, err := c.ZRangeWithScores(ctx, s.HoldersKey(day.Key), 0, -1).Result()
	require.NoError(t, err)
	assert.Equal(t, []redis.Z{{Score: float64(t0.Add(time.Minute).UnixMicro()), Member: "r-1"}}, holders)
	for _, k := range []string{s.CounterKey(day.Key), s.HoldersKey(day.Key)} {
		ttl, err := c.PTTL(ctx, k).Result()
		require.NoError(t, err)
		assert.InDelta(t, (6*time.Hour + redisstore.Grace).Milliseconds(), ttl.Milliseconds(), 60_000, k)
	}
	for _, k := range []string{s.CounterKey(total.Key), s.HoldersKey(total.Key)} {
		ttl, err := c.PTTL(ctx, k).Result()
		require.NoError(t, err)
		assert.Equal(t, time.Duration(-1), ttl, k)
	}
}

// TestLeaseCountsDirectReservations: reservations made with Reserve on
// the same counter ("r") are reserved outside leases: they shrink the
// room and show in Reserved; a Settle's spend shows in Committed. (The
// other way round, Reserve and Extend do not count leases.)
func TestLeaseCountsDirectReservations(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	it := budget.Item{Key: "s@1", Limit: 1000, Enforce: true, Expires: t0.Add(time.Hour)}
	res, err := s.Reserve(ctx, "d1", 200, []budget.Item{it}, time.Minute, t0)
	require.NoError(t, err)
	require.True(t, res.OK())
	require.NoError(t, s.Settle(ctx, "d0", 100, []budget.Item{it}, t0))
	// room 1000-100-200: a share of (700-5)/2, 347.
	out, err := s.Sync(ctx, lease.SyncRequest{Holder: "a", Seq: 1, Item: it, Reserved: 5, Need: 5, Extra: 348, TTL: time.Minute, Now: t0})
	require.NoError(t, err)
	assert.Equal(t, lease.SyncReply{Applied: true, Lease: 5, Committed: 100, Leased: 5, Reserved: 205, Holders: 1}, out, "348 is more than the share")
	out, err = s.Sync(ctx, lease.SyncRequest{Holder: "a", Seq: 2, Item: it, Reserved: 5, Need: 5, Extra: 347, TTL: time.Minute, Now: t0})
	require.NoError(t, err)
	assert.Equal(t, lease.SyncReply{Applied: true, Lease: 352, Committed: 100, Leased: 352, Reserved: 205, Holders: 1}, out)
}

// TestSettleForfeitKeysAndClamp pins the fields a forfeit keeps for
// SettleForfeit (f:, y:, k:) and that the settlement removes, and that a
// refund never takes committed below 0 (here "c" was lowered by hand
// after the forfeit).
func TestSettleForfeitKeysAndClamp(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	it := budget.Item{Key: "s@1", Limit: 10000, Enforce: true, Expires: t0.Add(time.Hour)}
	_, err := s.Sync(ctx, lease.SyncRequest{Holder: "a", Seq: 1, Item: it, Commit: 100, Reserved: 20, Need: 20, Extra: 400, TTL: time.Second, Now: t0})
	require.NoError(t, err)
	_, err = s.Sync(ctx, lease.SyncRequest{Holder: "b", Seq: 1, Item: it, TTL: time.Second, Now: t0.Add(time.Second)})
	require.NoError(t, err)
	fields, err := c.HGetAll(ctx, s.CounterKey(it.Key)).Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"c": "520", "l": "0", "q": "0", "s:a": "1", "y:a": "100", "f:a": "420", "k:a": "20", "s:b": "1"}, fields)
	require.NoError(t, c.HSet(ctx, s.CounterKey(it.Key), "c", "50").Err())
	out, err := s.SettleForfeit(ctx, lease.SettleForfeitRequest{Item: it, Holder: "a", Spent: 100, Now: t0.Add(time.Second)})
	require.NoError(t, err)
	assert.Equal(t, lease.SettleForfeitReply{Refund: 400, Forfeit: 420, Applied: true}, out)
	fields, err = c.HGetAll(ctx, s.CounterKey(it.Key)).Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"c": "0", "l": "0", "q": "0", "s:a": "1", "s:b": "1"}, fields)
}
