package stores_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zaptest/observer"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/lease/leasetest"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/budget/storetest"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

func uniquePrefix() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "sg-topo-" + hex.EncodeToString(b[:]) + ":"
}

// openRedis opens the store of r (a fresh key prefix unless r has one),
// closed when the test ends.
func openRedis(t testing.TB, r budget.RedisConfig, log *zap.Logger) *stores.RedisStore {
	t.Helper()
	cfg := budget.StoreConfig{Backend: budget.BackendRedis, Redis: withPrefix(r)}
	require.NoError(t, cfg.Validate())
	s, err := stores.Open(context.Background(), cfg, log)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return stores.AsRedis(s)
}

// withPrefix gives r a key prefix of its own and a loose timeout.
func withPrefix(r budget.RedisConfig) budget.RedisConfig {
	if r.KeyPrefix == "" {
		r.KeyPrefix = uniquePrefix()
	}
	if !r.Timeout.Set {
		r.Timeout = budget.DurationOf(2 * time.Second)
	}
	return r
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t testing.TB, d time.Duration, what string, cond func() error) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		err := cond()
		if err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s: %v", what, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestSentinel runs the store contract through a Sentinel failover client,
// then kills the primary: the client follows the promoted replica, the
// epoch (replicated) is the same, and writes succeed again.
func TestSentinel(t *testing.T) {
	sn := redistest.StartSentinel(t)
	sentinel := func() budget.RedisConfig {
		return budget.RedisConfig{Sentinel: &budget.RedisSentinel{MasterName: redistest.SentinelMaster, Addresses: sn.SentinelAddrs()}}
	}
	t.Run("contract", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) budget.Store {
			// The suite runs on its own clock (storetest.T0); the lease
			// loop, on the real one, would expire its reservations: it
			// must not tick during the suite.
			cfg := sentinel()
			cfg.Leases = budget.RedisLeases{SyncInterval: budget.DurationOf(time.Hour), TTL: budget.DurationOf(3 * time.Hour)}
			return openRedis(t, cfg, nil)
		})
	})
	t.Run("contract without leases", func(t *testing.T) {
		storetest.Run(t, func(t *testing.T) budget.Store {
			cfg := sentinel()
			cfg.Leases.Enabled = new(bool)
			s, err := stores.Open(context.Background(), budget.StoreConfig{Backend: budget.BackendRedis, Redis: withPrefix(cfg)}, nil)
			require.NoError(t, err)
			t.Cleanup(func() { s.Close() })
			return s
		})
	})

	ctx, now := context.Background(), time.Now()
	s := openRedis(t, sentinel(), nil)
	require.NoError(t, s.Ping(ctx))
	_, err := s.Reserve(ctx, "before", 1, []budget.Item{day}, time.Minute, now)
	require.NoError(t, err)
	// The replica has everything before the primary dies.
	require.NoError(t, sn.Primary.Client().Do(ctx, "WAIT", 1, 5000).Err())

	sn.KillPrimary()
	sn.WaitFailover()
	sn.RestartOldPrimary() // back as a replica: lease syncs wait for one (wait_replicas)
	eventually(t, 30*time.Second, "writes on the promoted replica", func() error {
		if err := s.Ping(ctx); err != nil {
			return err
		}
		return s.Settle(ctx, "before", 1, []budget.Item{day}, now)
	})
	assert.False(t, s.Lost(), "the promoted replica holds the same epoch")
	got, err := s.Usage(ctx, []budget.Item{day}, now)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: 1}, got[0])
}

// TestCluster: one budget's calls and the lease syncs (the lease.Backend
// suite) stay in one slot each, parked records,
// estimator samples and the counter listing work across the masters, and
// there is one epoch per master.
func TestCluster(t *testing.T) {
	cl := redistest.StartCluster(t)
	cluster := func() budget.RedisConfig {
		return budget.RedisConfig{Cluster: &budget.RedisCluster{Addresses: cl.Addrs()}}
	}
	ctx, now := context.Background(), time.Now()
	cc := cl.Client()

	t.Run("keyslot", func(t *testing.T) {
		for _, k := range []string{"", "a", "foo", "{user1000}.following", "spendguard:c:{b|day|tenant=acme}@1", "{}x", "x{}y{z}", "{epoch-7}epoch"} {
			want, err := cc.ClusterKeySlot(ctx, k).Result()
			require.NoError(t, err)
			assert.Equal(t, int(want), redisstore.KeySlot(k), "key %q", k)
		}
	})

	prefix := uniquePrefix()
	withPrefix := cluster()
	withPrefix.KeyPrefix = prefix
	s := openRedis(t, withPrefix, nil)
	require.NoError(t, s.Ping(ctx))
	t.Run("one budget", func(t *testing.T) {
		o, err := s.Reserve(ctx, "r1", 3, []budget.Item{day}, time.Minute, now)
		require.NoError(t, err)
		assert.Equal(t, -1, o.Blocked)
		granted, _, err := s.Extend(ctx, "r1", 2, []budget.Item{day}, time.Minute, now)
		require.NoError(t, err)
		assert.EqualValues(t, 2, granted)
		got, err := s.Usage(ctx, []budget.Item{day}, now)
		require.NoError(t, err)
		assert.EqualValues(t, 5, got[0].Reserved)
	})
	t.Run("leases", func(t *testing.T) {
		// A sync touches one counter's keys: one slot.
		leasetest.Run(t, func(t *testing.T) lease.Backend { return openRedis(t, cluster(), nil).Redis() })
		leasetest.RunForfeits(t, func(t *testing.T) leasetest.Settler { return openRedis(t, cluster(), nil).Redis() })
	})
	t.Run("parker", func(t *testing.T) {
		storetest.RunParker(t, func(t *testing.T) budget.Parker { return openRedis(t, cluster(), nil) })
	})
	t.Run("lister", func(t *testing.T) {
		// Scopes in slots of every master; SCAN runs on each.
		l := openRedis(t, cluster(), nil)
		want := []string{}
		for i := range 30 {
			k := "b|day|tenant=t" + strconv.Itoa(i) + "@1"
			want = append(want, k)
			_, err := l.Reserve(ctx, "l"+strconv.Itoa(i), 1, []budget.Item{{Key: k, Limit: 10}}, time.Minute, now)
			require.NoError(t, err)
		}
		require.NoError(t, l.Leases().Flush(ctx), "the reservations reach Redis with the next sync")
		keys, more, err := l.CounterKeys(ctx, "b|", 100)
		require.NoError(t, err)
		assert.False(t, more)
		assert.ElementsMatch(t, want, keys)
		keys, more, err = l.CounterKeys(ctx, "b|", 7)
		require.NoError(t, err)
		assert.True(t, more)
		assert.Len(t, keys, 7)
	})
	t.Run("samples", func(t *testing.T) {
		other := openRedis(t, cluster(), nil)
		require.NoError(t, other.AppendSamples(ctx, []estimate.Batch{{Key: "m1", Values: []int64{1, 2}}, {Key: "m2", Values: []int64{3}}}, 5))
		got, err := other.LoadSamples(ctx, 5)
		require.NoError(t, err)
		assert.Equal(t, map[string][]int64{"m1": {1, 2}, "m2": {3}}, got)
	})
	t.Run("epoch per master", func(t *testing.T) {
		masters := map[string]bool{}
		for _, m := range cl.Masters {
			for _, k := range redistest.Keys(t, m.Client(), prefix) {
				if strings.HasSuffix(k, "}epoch") {
					masters[m.Addr] = true
				}
			}
		}
		assert.Len(t, masters, 3)
	})
}

// TestReadinessNeedsWrites: a replica answers PING but refuses writes.
func TestReadinessNeedsWrites(t *testing.T) {
	primary := redistest.Start(t)
	replica := redistest.Start(t, "--replicaof", "127.0.0.1", primary.Addr[len("127.0.0.1:"):])
	ctx := context.Background()

	require.NoError(t, openRedis(t, budget.RedisConfig{Address: primary.Addr}, nil).Ping(ctx))

	r := openRedis(t, budget.RedisConfig{Address: replica.Addr}, nil)
	err := r.Ping(ctx)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "read-only replica (READONLY)")
	require.NoError(t, replica.Client().Ping(ctx).Err(), "the replica itself answers PING")

	// A hung primary: the probe times out.
	p := openRedis(t, budget.RedisConfig{Address: primary.Addr, Timeout: budget.DurationOf(100 * time.Millisecond)}, nil)
	require.NoError(t, p.Ping(ctx))
	primary.Pause()
	err = p.Ping(ctx)
	primary.Resume()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "redis not ready: timed out")
	assert.False(t, p.Lost(), "an unanswered probe is not a loss")
}

type lostLog struct {
	s      *stores.RedisStore
	logs   *observer.ObservedLogs
	events atomic.Int32
}

func openWatched(t *testing.T, addr string) *lostLog {
	core, logs := observer.New(zap.InfoLevel)
	l := &lostLog{logs: logs}
	l.s = openRedis(t, budget.RedisConfig{Address: addr, EpochCheckInterval: budget.DurationOf(20 * time.Millisecond)}, zap.New(core))
	l.s.OnLost(func(ev redisstore.LostEvent) { l.events.Add(1) })
	require.NoError(t, l.s.Ping(context.Background()))
	return l
}

// checkLost waits for the watcher to notice the loss and checks what a
// lost store does, then re-establishes it.
func (l *lostLog) checkLost(t *testing.T) {
	ctx, now := context.Background(), time.Now()
	eventually(t, 10*time.Second, "the loss to be noticed", func() error {
		if !l.s.Lost() {
			return errors.New("not lost")
		}
		return nil
	})
	_, err := l.s.Reserve(ctx, "r", 1, []budget.Item{day}, time.Minute, now)
	assert.ErrorIs(t, err, budget.ErrStoreLost)
	_, err = l.s.Usage(ctx, []budget.Item{day}, now)
	assert.ErrorIs(t, err, budget.ErrStoreLost)
	_, _, err = l.s.Extend(ctx, "r", 1, []budget.Item{day}, time.Minute, now)
	assert.ErrorIs(t, err, budget.ErrStoreLost)
	assert.NoError(t, l.s.Settle(ctx, "lost", 7, []budget.Item{day}, now), "with leases a Settle is kept here, to be sent once the store is back")
	assert.Error(t, l.s.Leases().Flush(ctx), "nothing is sent to a lost store")
	assert.ErrorIs(t, l.s.Ping(ctx), budget.ErrStoreLost)
	assert.ErrorIs(t, l.s.Ping(ctx), budget.ErrStoreLost)
	assert.EqualValues(t, 1, l.events.Load(), "the hook fires once per loss")
	assert.Equal(t, 1, l.logs.FilterMessageSnippet("lost its data").Len(), "one ERROR line per loss")

	require.NoError(t, l.s.Reestablish(ctx))
	assert.False(t, l.s.Lost())
	require.NoError(t, l.s.Ping(ctx))
	require.NoError(t, l.s.Settle(ctx, "r", 1, []budget.Item{day}, now))
	require.NoError(t, l.s.Leases().Flush(ctx))
	got, err := l.s.Redis().Usage(ctx, []budget.Item{day}, now)
	require.NoError(t, err)
	assert.GreaterOrEqual(t, got[0].Committed, money.Nano(8), "the spend settled while lost reaches the re-established store")
}

func TestEpochRestartWithoutPersistence(t *testing.T) {
	srv := redistest.Start(t)
	l := openWatched(t, srv.Addr)
	_, err := l.s.Reserve(context.Background(), "r0", 1, []budget.Item{day}, time.Minute, time.Now())
	require.NoError(t, err)
	srv.Stop()
	srv.Restart()
	l.checkLost(t)
}

func TestEpochFlushAll(t *testing.T) {
	srv := redistest.Start(t)
	l := openWatched(t, srv.Addr)
	require.NoError(t, srv.Client().FlushAll(context.Background()).Err())
	l.checkLost(t)

	// A second loss is a new event.
	require.NoError(t, srv.Client().FlushAll(context.Background()).Err())
	eventually(t, 10*time.Second, "the second loss", func() error {
		if l.events.Load() != 2 {
			return errors.New("one event")
		}
		return nil
	})
}

func TestEpochSurvivesPersistentRestart(t *testing.T) {
	srv := redistest.Start(t, redistest.AOF()...)
	l := openWatched(t, srv.Addr)
	srv.Stop()
	srv.Restart()
	eventually(t, 10*time.Second, "the store to answer again", func() error { return l.s.Ping(context.Background()) })
	assert.False(t, l.s.Lost())
}

func TestEvictionPolicy(t *testing.T) {
	srv := redistest.Start(t, "--maxmemory-policy", "volatile-lru")
	cfg := budget.StoreConfig{Backend: budget.BackendRedis, Redis: budget.RedisConfig{Address: srv.Addr, KeyPrefix: uniquePrefix()}}
	_, err := stores.Open(context.Background(), cfg, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "maxmemory-policy is primary: volatile-lru, not noeviction")

	core, logs := observer.New(zap.WarnLevel)
	cfg.Redis.AllowEviction = true
	s, err := stores.Open(context.Background(), cfg, zap.New(core))
	require.NoError(t, err)
	defer s.Close()
	assert.Equal(t, 1, logs.FilterMessageSnippet("may evict").Len())
}
