// Package stores opens the budget.Store that the configuration's `store:`
// section names: the memory store (with its snapshot file, written
// periodically and at Close, budget/memstore) or the Redis store
// (budget/redisstore). It sits apart from package budget because both
// stores import budget.
package stores

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/internal/money"
)

// Store is an open budget.Store. Ping reports whether it can be reached
// (for /readyz); Close flushes it (the memory store's last snapshot) and
// releases its connections. Close must be called once, after the last
// store call.
type Store interface {
	budget.Store
	Ping(ctx context.Context) error
	Close() error
}

// Losable is a Store that notices when it lost its data (the Redis store:
// see redisstore.Guard). OnLost registers a hook called once per loss;
// Lost reports the state; Reestablish ends it after the rebuild.
type Losable interface {
	Store
	OnLost(fn func(redisstore.LostEvent))
	Lost() bool
	Reestablish(ctx context.Context) error
}

// Open opens the store of cfg, which must have passed Validate. A memory
// store with a snapshot_path starts from that file (a corrupt file is an
// error, never an empty store) and writes it every snapshot_interval. A
// Redis store does not need Redis to be up: an unanswered first ping is
// logged and the calls fail (see store.on_error) until Redis answers.
func Open(ctx context.Context, cfg budget.StoreConfig, log *zap.Logger) (Store, error) {
	if log == nil {
		log = zap.NewNop()
	}
	switch cfg.BackendName() {
	case budget.BackendMemory:
		return openMemory(cfg.Memory, log)
	case budget.BackendRedis:
		return openRedis(ctx, cfg.Redis, log)
	}
	return nil, fmt.Errorf("store.backend: unknown backend %q", cfg.Backend)
}

func openRedis(ctx context.Context, cfg budget.RedisConfig, log *zap.Logger) (Store, error) {
	// go-redis logs through one process-wide logger; its messages (dial
	// failures) repeat what every failed store call reports, so they go to
	// debug.
	redis.SetLogger(redisLogger{log})
	client, err := redisstore.NewClient(cfg)
	if err != nil {
		return nil, err
	}
	if err := redisstore.CheckEviction(ctx, client, cfg.CallTimeout(), cfg.AllowEviction, log); err != nil {
		client.Close()
		return nil, err
	}
	guard := redisstore.NewGuard(client, redisstore.GuardOptions{
		KeyPrefix: cfg.Prefix(), Timeout: cfg.CallTimeout(), CheckInterval: cfg.EpochInterval(), Log: log,
	})
	s := &RedisStore{
		Store:  redisstore.New(client, redisstore.Options{KeyPrefix: cfg.Prefix(), Timeout: cfg.CallTimeout()}),
		Guard:  guard,
		client: client,
	}
	where := []zap.Field{zap.String("mode", cfg.Mode()), zap.Strings("addresses", cfg.Addresses())}
	if err := guard.Start(ctx); err != nil {
		log.Warn("redis store not reachable yet; store calls fail until it answers", append(where, zap.Error(err))...)
	} else if err := s.Ping(ctx); err != nil {
		log.Warn("redis store not ready yet; store calls may fail until it is", append(where, zap.Error(err))...)
	} else {
		log.Info("redis store connected", append(where, zap.Int("db", cfg.DB), zap.String("key_prefix", cfg.Prefix()))...)
	}
	return s, nil
}

type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := l.log.Check(zap.DebugLevel, "redis client"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, v...)))
	}
}

// RedisStore is the Store Open returns for backend redis: the store's
// calls, and a Guard that watches that Redis still holds its data. While
// the Guard reports the store lost, Reserve, Extend, Usage and Settle
// fail with an error wrapping budget.ErrStoreLost (a Settle is then
// retried by the engine, not dropped), and Ping fails. OnLost, Lost and
// Reestablish come from the Guard.
type RedisStore struct {
	*redisstore.Store
	*redisstore.Guard
	client redis.UniversalClient
}

// Client is the go-redis client of the store.
func (s *RedisStore) Client() redis.UniversalClient { return s.client }

// Ping is the readiness probe: a write on every primary, and the epochs
// compared (redisstore.Guard.Ping).
func (s *RedisStore) Ping(ctx context.Context) error { return s.Guard.Ping(ctx) }

// Reserve implements budget.Store; it fails while the store is lost.
func (s *RedisStore) Reserve(ctx context.Context, id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (budget.Outcome, error) {
	if err := s.LostErr(); err != nil {
		return budget.Outcome{}, err
	}
	return s.Store.Reserve(ctx, id, amount, items, ttl, now)
}

// Extend implements budget.Store; it fails while the store is lost.
func (s *RedisStore) Extend(ctx context.Context, id string, want money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (money.Nano, budget.Outcome, error) {
	if err := s.LostErr(); err != nil {
		return 0, budget.Outcome{}, err
	}
	return s.Store.Extend(ctx, id, want, items, ttl, now)
}

// Usage implements budget.Store; it fails while the store is lost.
func (s *RedisStore) Usage(ctx context.Context, items []budget.Item, now time.Time) ([]budget.Counter, error) {
	if err := s.LostErr(); err != nil {
		return nil, err
	}
	return s.Store.Usage(ctx, items, now)
}

// Settle implements budget.Store. While the store is lost it fails
// without writing: the engine keeps the spend and retries it (the store
// is a budget.IdempotentSettler) until the store is re-established.
func (s *RedisStore) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	if err := s.LostErr(); err != nil {
		return err
	}
	return s.Store.Settle(ctx, id, actual, items, now)
}

// Close stops the Guard's watcher and closes the client.
func (s *RedisStore) Close() error {
	s.Guard.Close()
	return s.client.Close()
}

// memoryStore is a memstore.Store and the goroutine that writes its snapshot.
type memoryStore struct {
	*memstore.Store
	path     string
	log      *zap.Logger
	stop     chan struct{}
	done     chan struct{}
	closeErr error
	once     sync.Once
}

func openMemory(cfg budget.MemoryConfig, log *zap.Logger) (Store, error) {
	if cfg.SnapshotPath == "" {
		return &memoryStore{Store: memstore.New()}, nil
	}
	m, err := memstore.Load(cfg.SnapshotPath)
	if err != nil {
		return nil, fmt.Errorf("store.memory.snapshot_path: %w", err)
	}
	// Write once now: an unwritable path fails the start, not the first tick.
	if err := m.WriteSnapshot(cfg.SnapshotPath, time.Now()); err != nil {
		return nil, fmt.Errorf("store.memory.snapshot_path: %w", err)
	}
	counters, reservations := m.Len()
	log.Info("memory store loaded from snapshot", zap.String("path", cfg.SnapshotPath),
		zap.Int("counters", counters), zap.Int("reservations", reservations))
	s := &memoryStore{Store: m, path: cfg.SnapshotPath, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	go s.loop(cfg.Interval())
	return s, nil
}

// loop writes the snapshot every interval until Close.
func (s *memoryStore) loop(interval time.Duration) {
	defer close(s.done)
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.WriteSnapshot(s.path, time.Now()); err != nil {
				s.log.Error("writing the memory-store snapshot failed; spend since the last good one is lost on a crash", zap.Error(err))
			}
		}
	}
}

func (s *memoryStore) Ping(context.Context) error { return nil }

// Close stops the periodic writer and writes the final snapshot.
func (s *memoryStore) Close() error {
	if s.path == "" {
		return nil
	}
	s.once.Do(func() {
		close(s.stop)
		<-s.done
		s.closeErr = s.WriteSnapshot(s.path, time.Now())
		if s.closeErr == nil {
			s.log.Info("memory store snapshot written", zap.String("path", s.path))
		}
	})
	return s.closeErr
}

var (
	_ Store                    = (*memoryStore)(nil)
	_ Store                    = (*RedisStore)(nil)
	_ budget.IdempotentSettler = (*RedisStore)(nil)
)
