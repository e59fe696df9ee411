package redisstore_test

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/budget/storetest"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

// generous per-call timeout: the race detector on 2 shared cores is slow,
// and these tests check semantics, not latency.
const testTimeout = 5 * time.Second

func newStore(t testing.TB) (*redisstore.Store, *redis.Client, string) {
	c, prefix := redistest.Shared(t)
	return redisstore.New(c, redisstore.Options{KeyPrefix: prefix, Timeout: testTimeout}), c, prefix
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) budget.Store {
		s, _, _ := newStore(t)
		return s
	})
}

func BenchmarkRedisStore(b *testing.B) {
	storetest.Bench(b, func(b *testing.B) budget.Store {
		s, _, _ := newStore(b)
		return s
	})
}

func BenchmarkExtend(b *testing.B) {
	storetest.BenchExtend(b, func(b *testing.B) budget.Store {
		s, _, _ := newStore(b)
		return s
	})
}

var t0 = storetest.T0

func item(key string, limit money.Nano, expires time.Time) budget.Item {
	return budget.Item{Key: key, Limit: limit, Enforce: true, Expires: expires}
}

// TestKeyLayout pins the keys a reservation writes and their lifetimes:
// period counters expire Grace after the period ends, total ones never.
func TestKeyLayout(t *testing.T) {
	s, c, prefix := newStore(t)
	ctx := context.Background()
	day := item("tenant-daily|day|tenant=acme@1796083200", money.PerUSD, t0.Add(6*time.Hour))
	total := item("all|total|@total", money.PerUSD, time.Time{})
	out, err := s.Reserve(ctx, "r1", 5, []budget.Item{day, total}, time.Minute, t0)
	require.NoError(t, err)
	require.True(t, out.OK())

	assert.ElementsMatch(t, []string{
		prefix + "c:{tenant-daily|day|tenant=acme}@1796083200", prefix + "z:{tenant-daily|day|tenant=acme}@1796083200",
		prefix + "c:{all|total|}@total", prefix + "z:{all|total|}@total",
	}, redistest.Keys(t, c, prefix))
	h, err := c.HGetAll(ctx, s.CounterKey(day.Key)).Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"r": "5", "i:r1": "5"}, h)
	z, err := c.ZRangeWithScores(ctx, s.ReservationsKey(day.Key), 0, -1).Result()
	require.NoError(t, err)
	assert.Equal(t, []redis.Z{{Score: float64(t0.Add(time.Minute).UnixMicro()), Member: "r1"}}, z)

	ttl, err := c.PTTL(ctx, s.CounterKey(day.Key)).Result()
	require.NoError(t, err)
	assert.LessOrEqual(t, ttl, 6*time.Hour+redisstore.Grace)
	assert.Greater(t, ttl, 6*time.Hour)
	ttl, err = c.PTTL(ctx, s.CounterKey(total.Key)).Result()
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), ttl, "a total counter never expires")

	require.NoError(t, s.Settle(ctx, "r1", 3, []budget.Item{day, total}, t0))
	h, err = c.HGetAll(ctx, s.CounterKey(day.Key)).Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"c": "3", "r": "0"}, h)
	n, err := c.Exists(ctx, s.ReservationsKey(day.Key)).Result()
	require.NoError(t, err)
	assert.Zero(t, n, "the reservation set is gone with its last member")
}

// TestExtendKeyLayout pins what Extend writes: the reservation's field
// grows on every counter, its score in the set is the renewed expiry, and
// an expired reservation's field starts again from the grant.
func TestExtendKeyLayout(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	day := item("tenant-daily|day|tenant=acme@1796083200", math.MaxInt64, t0.Add(6*time.Hour))
	total := item("all|total|@total", math.MaxInt64, time.Time{})
	items := []budget.Item{day, total}
	_, err := s.Reserve(ctx, "r1", 5, items, time.Minute, t0)
	require.NoError(t, err)
	_, err = s.Reserve(ctx, "other", 2, items, time.Hour, t0)
	require.NoError(t, err)
	renewed := t0.Add(50 * time.Second)
	granted, _, err := s.Extend(ctx, "r1", 1<<53+1, items, 2*time.Minute, renewed)
	require.NoError(t, err)
	require.Equal(t, money.Nano(1<<53+1), granted)

	for _, it := range items {
		h, err := c.HGetAll(ctx, s.CounterKey(it.Key)).Result()
		require.NoError(t, err)
		assert.Equal(t, map[string]string{"r": "9007199254741000", "i:r1": "9007199254740998", "i:other": "2"}, h, it.Key)
		score, err := c.ZScore(ctx, s.ReservationsKey(it.Key), "r1").Result()
		require.NoError(t, err)
		assert.Equal(t, float64(renewed.Add(2*time.Minute).UnixMicro()), score)
	}
	ttl, err := c.PTTL(ctx, s.CounterKey(total.Key)).Result()
	require.NoError(t, err)
	assert.Equal(t, time.Duration(-1), ttl, "a total counter still never expires")

	expired := renewed.Add(2 * time.Minute)
	granted, _, err = s.Extend(ctx, "r1", 4, items, time.Minute, expired)
	require.NoError(t, err)
	require.Equal(t, money.Nano(4), granted)
	h, err := c.HGetAll(ctx, s.CounterKey(day.Key)).Result()
	require.NoError(t, err)
	assert.Equal(t, map[string]string{"r": "6", "i:r1": "4", "i:other": "2"}, h)
}

// TestAmountsBeyondDoublePrecision: counters near the int64 limit are
// exact, where Lua doubles would round.
func TestAmountsBeyondDoublePrecision(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	big := money.Nano(1<<53 + 1)
	limit := 2*big + 3
	a := item("big", limit, t0.Add(time.Hour))
	require.NoError(t, s.Settle(ctx, "seed", big, []budget.Item{a}, t0))
	out, err := s.Reserve(ctx, "r1", big, []budget.Item{a}, time.Minute, t0)
	require.NoError(t, err)
	require.True(t, out.OK())
	assert.Equal(t, budget.Counter{Committed: big, Reserved: big}, out.Counters[0])
	out, err = s.Reserve(ctx, "r2", 4, []budget.Item{a}, time.Minute, t0)
	require.NoError(t, err)
	assert.Equal(t, 0, out.Blocked, "2*(2^53+1)+4 passes 2*(2^53+1)+3 by one nano-USD")
	out, err = s.Reserve(ctx, "r3", 3, []budget.Item{a}, time.Minute, t0)
	require.NoError(t, err)
	assert.True(t, out.OK(), "2*(2^53+1)+3 fits exactly")

	huge := item("huge", math.MaxInt64, time.Time{})
	require.NoError(t, s.Settle(ctx, "h", math.MaxInt64-7, []budget.Item{huge}, t0))
	out, err = s.Reserve(ctx, "h1", 7, []budget.Item{huge}, time.Minute, t0)
	require.NoError(t, err)
	assert.True(t, out.OK())
	assert.Equal(t, budget.Counter{Committed: math.MaxInt64 - 7, Reserved: 7}, out.Counters[0])
}

// TestReservationOfAnotherReplicaExpires: a reservation made through one
// client (a replica that then dies) stops counting for another after the
// TTL, and is gone from Redis once swept.
func TestReservationOfAnotherReplicaExpires(t *testing.T) {
	dead, c, prefix := newStore(t)
	alive := redisstore.New(c, redisstore.Options{KeyPrefix: prefix, Timeout: testTimeout})
	ctx := context.Background()
	a := item("shared", 10*money.PerUSD, t0.Add(time.Hour))
	out, err := dead.Reserve(ctx, "crashed", 8*money.PerUSD, []budget.Item{a}, 2*time.Second, t0)
	require.NoError(t, err)
	require.True(t, out.OK())

	out, err = alive.Reserve(ctx, "r1", 5*money.PerUSD, []budget.Item{a}, time.Minute, t0.Add(time.Second))
	require.NoError(t, err)
	assert.Equal(t, 0, out.Blocked, "the dead replica's hold still counts within its TTL")
	out, err = alive.Reserve(ctx, "r2", 5*money.PerUSD, []budget.Item{a}, time.Minute, t0.Add(2*time.Second))
	require.NoError(t, err)
	assert.True(t, out.OK(), "and is released by the next call after it")
	assert.Equal(t, budget.Counter{Reserved: 5 * money.PerUSD}, out.Counters[0])
	members, err := c.ZRange(ctx, alive.ReservationsKey(a.Key), 0, -1).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"r2"}, members)
	fields, err := c.HKeys(ctx, alive.CounterKey(a.Key)).Result()
	require.NoError(t, err)
	assert.ElementsMatch(t, []string{"r", "i:r2"}, fields)
}

// TestScriptCacheFlushed: after SCRIPT FLUSH (a restarted or failed-over
// Redis) the scripts are sent again.
func TestScriptCacheFlushed(t *testing.T) {
	srv := redistest.Start(t)
	c := srv.Client()
	s := redisstore.New(c, redisstore.Options{Timeout: testTimeout})
	ctx := context.Background()
	a := item("a", money.PerUSD, t0.Add(time.Hour))
	for i := range 2 {
		require.NoError(t, c.ScriptFlush(ctx).Err())
		_, err := s.Reserve(ctx, "r"+strconv.Itoa(i), 1, []budget.Item{a}, time.Minute, t0)
		require.NoError(t, err)
		_, err = s.Usage(ctx, []budget.Item{a}, t0)
		require.NoError(t, err)
		require.NoError(t, s.Settle(ctx, "r"+strconv.Itoa(i), 1, []budget.Item{a}, t0))
	}
	u, err := s.Usage(ctx, []budget.Item{a}, t0)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: 2}, u[0])
}

// TestHungRedisTimesOut: a Redis that answers nothing (SIGSTOP) makes each
// call fail with a deadline error instead of blocking the request; once it
// runs again, calls succeed.
func TestHungRedisTimesOut(t *testing.T) {
	srv := redistest.Start(t)
	c := redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, ContextTimeoutEnabled: true, DisableIdentity: true})
	t.Cleanup(func() { c.Close() })
	s := redisstore.New(c, redisstore.Options{Timeout: 200 * time.Millisecond})
	ctx := context.Background()
	a := item("a", money.PerUSD, t0.Add(time.Hour))
	_, err := s.Usage(ctx, []budget.Item{a}, t0)
	require.NoError(t, err)

	srv.Pause()
	_, err = s.Reserve(ctx, "r1", 1, []budget.Item{a}, time.Minute, t0)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	_, err = s.Usage(ctx, []budget.Item{a}, t0)
	assert.ErrorIs(t, err, context.DeadlineExceeded)
	srv.Resume()

	require.Eventually(t, func() bool {
		_, err := s.Usage(ctx, []budget.Item{a}, t0)
		return err == nil
	}, 10*time.Second, 50*time.Millisecond)
}

// TestDownRedisFails: calls against a stopped Redis fail at once; after a
// restart they succeed again without a new client.
func TestDownRedisFails(t *testing.T) {
	srv := redistest.Start(t)
	s := redisstore.New(srv.Client(), redisstore.Options{Timeout: testTimeout})
	ctx := context.Background()
	a := item("a", money.PerUSD, t0.Add(time.Hour))
	require.NoError(t, s.Settle(ctx, "s", 1, []budget.Item{a}, t0))
	srv.Stop()
	_, err := s.Usage(ctx, []budget.Item{a}, t0)
	assert.Error(t, err)
	assert.Error(t, s.Ping(ctx))
	srv.Restart()
	require.NoError(t, s.Ping(ctx))
	u, err := s.Usage(ctx, []budget.Item{a}, t0)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{}, u[0], "this server keeps nothing across a restart")
}

// TestSettleCountsOncePerID: a Settle sent again (its first answer lost)
// does not count twice, so the engine may retry it.
func TestSettleCountsOncePerID(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	a := item("a", money.PerUSD, t0.Add(time.Hour))
	ok, err := s.Reserve(ctx, "r1", 5, []budget.Item{a}, time.Minute, t0)
	require.NoError(t, err)
	require.True(t, ok.OK())
	for range 3 {
		require.NoError(t, s.Settle(ctx, "r1", 3, []budget.Item{a}, t0))
	}
	u, err := s.Usage(ctx, []budget.Item{a}, t0)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: 3}, u[0])
	var _ budget.IdempotentSettler = s
}
