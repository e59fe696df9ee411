package stores_test

import (
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

var day = budget.Item{Key: "tenant-daily|day|tenant=acme@1", Limit: 10 * money.PerUSD, Enforce: true}

func memoryConfig(path string) budget.StoreConfig {
	return budget.StoreConfig{Backend: "memory", Memory: budget.MemoryConfig{SnapshotPath: path}}
}

func TestMemorySnapshotSurvivesRestart(t *testing.T) {
	ctx, now := context.Background(), time.Now()
	path := filepath.Join(t.TempDir(), "state.json")
	s, err := stores.Open(ctx, memoryConfig(path), nil)
	require.NoError(t, err)
	_, err = os.Stat(path)
	require.NoError(t, err, "the snapshot is written at start")
	require.NoError(t, s.Settle(ctx, "r1", 1_500_000_001, []budget.Item{day}, now))
	before, err := s.Usage(ctx, []budget.Item{day}, now)
	require.NoError(t, err)
	require.NoError(t, s.Close())
	require.NoError(t, s.Close(), "Close is idempotent")

	s, err = stores.Open(ctx, memoryConfig(path), nil)
	require.NoError(t, err)
	defer s.Close()
	after, err := s.Usage(ctx, []budget.Item{day}, now)
	require.NoError(t, err)
	assert.Equal(t, before, after)
	assert.NoError(t, s.Ping(ctx))
}

func TestMemorySnapshotWrittenPeriodically(t *testing.T) {
	ctx, now := context.Background(), time.Now()
	path := filepath.Join(t.TempDir(), "state.json")
	cfg := memoryConfig(path)
	cfg.Memory.SnapshotInterval = budget.DurationOf(20 * time.Millisecond)
	s, err := stores.Open(ctx, cfg, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Settle(ctx, "r1", 42, []budget.Item{day}, now))
	require.Eventually(t, func() bool {
		m, err := memstore.Load(path)
		if err != nil {
			return false
		}
		u, err := m.Usage(ctx, []budget.Item{day}, now)
		return err == nil && u[0].Committed == 42
	}, 10*time.Second, 10*time.Millisecond)
}

func TestCorruptSnapshotFailsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, os.WriteFile(path, []byte("garbage"), 0o600))
	_, err := stores.Open(context.Background(), memoryConfig(path), nil)
	require.ErrorIs(t, err, memstore.ErrCorruptSnapshot)
	assert.Contains(t, err.Error(), "store.memory.snapshot_path")
}

func TestUnwritableSnapshotPathFailsOpen(t *testing.T) {
	path := filepath.Join(t.TempDir(), "missing-dir", "state.json")
	_, err := stores.Open(context.Background(), memoryConfig(path), nil)
	assert.Error(t, err)
}

func TestMemoryWithoutSnapshot(t *testing.T) {
	s, err := stores.Open(context.Background(), budget.StoreConfig{}, nil)
	require.NoError(t, err)
	assert.NoError(t, s.Close())
}

// TestRedisWithoutLeases: with leases off every Settle is a Redis call
// that leaves its marker.
func TestRedisWithoutLeases(t *testing.T) {
	c, prefix := redistest.Shared(t)
	ctx, now := context.Background(), time.Now()
	cfg := budget.StoreConfig{Backend: "redis", Redis: budget.RedisConfig{
		Address: redistest.SharedAddr, KeyPrefix: prefix, Timeout: budget.DurationOf(5 * time.Second),
		Leases: budget.RedisLeases{Enabled: new(bool)},
	}}
	require.NoError(t, cfg.Validate())
	s, err := stores.Open(ctx, cfg, nil)
	require.NoError(t, err)
	defer s.Close()
	require.NoError(t, s.Ping(ctx))
	require.NoError(t, s.Settle(ctx, "r1", 5, []budget.Item{day}, now))
	assert.ElementsMatch(t, []string{prefix + "c:{tenant-daily|day|tenant=acme}@1", prefix + "d:r1",
		prefix + "{epoch}epoch", prefix + "{epoch}ready"}, redistest.Keys(t, c, prefix),
		"the counter, the settle marker that makes a retried Settle count once, the epoch and the readiness probe's key")
}

// TestRedisWithLeases: with leases (the default) a Settle is kept in the
// replica and reaches Redis with the next sync, at the latest at Close,
// which also gives the leases back.
func TestRedisWithLeases(t *testing.T) {
	c, prefix := redistest.Shared(t)
	ctx, now := context.Background(), time.Now()
	cfg := budget.StoreConfig{Backend: "redis", Redis: budget.RedisConfig{
		Address: redistest.SharedAddr, KeyPrefix: prefix, Timeout: budget.DurationOf(5 * time.Second),
		Leases: budget.RedisLeases{SyncInterval: budget.DurationOf(time.Hour), TTL: budget.DurationOf(3 * time.Hour)},
	}}
	require.NoError(t, cfg.Validate())
	s, err := stores.Open(ctx, cfg, nil)
	require.NoError(t, err)
	_, ok := s.(budget.IdempotentSettler)
	assert.False(t, ok, "a lease Settle never fails, so the engine has nothing to retry")
	out, err := s.Reserve(ctx, "r1", 5, []budget.Item{day}, time.Minute, now)
	require.NoError(t, err)
	require.True(t, out.OK())
	require.NoError(t, s.Settle(ctx, "r1", 4, []budget.Item{day}, now))
	h, err := c.HGetAll(ctx, prefix+"c:{tenant-daily|day|tenant=acme}@1").Result()
	require.NoError(t, err)
	assert.Equal(t, "0", h["c"], "not sent yet: the lease was taken, nothing committed")
	assert.NotEmpty(t, h["l"], "a lease is held")
	require.NoError(t, s.Close())
	h, err = c.HGetAll(ctx, prefix+"c:{tenant-daily|day|tenant=acme}@1").Result()
	require.NoError(t, err)
	assert.Equal(t, "4", h["c"], "sent at Close")
	assert.Equal(t, "0", h["l"], "and the lease given back")
}

// TestRedisDownAtStart: spendguard starts while Redis is down; calls fail
// until it answers, then work without a restart.
func TestRedisDownAtStart(t *testing.T) {
	srv := redistest.Start(t)
	srv.Stop()
	ctx, now := context.Background(), time.Now()
	cfg := budget.StoreConfig{Backend: "redis", Redis: budget.RedisConfig{Address: srv.Addr, Timeout: budget.DurationOf(5 * time.Second)}}
	s, err := stores.Open(ctx, cfg, nil)
	require.NoError(t, err)
	defer s.Close()
	assert.Error(t, s.Ping(ctx))
	_, err = s.Usage(ctx, []budget.Item{day}, now)
	assert.Error(t, err)
	srv.Restart()
	require.NoError(t, s.Ping(ctx))
	_, err = s.Usage(ctx, []budget.Item{day}, now)
	assert.NoError(t, err)
}

func TestRedisBadTLSFile(t *testing.T) {
	cfg := budget.StoreConfig{Backend: "redis", Redis: budget.RedisConfig{
		Address: "127.0.0.1:6379", TLS: budget.RedisTLS{Enabled: true, CAFile: filepath.Join(t.TempDir(), "none.pem")},
	}}
	_, err := stores.Open(context.Background(), cfg, nil)
	assert.ErrorContains(t, err, "store.redis.tls.ca_file")
}
