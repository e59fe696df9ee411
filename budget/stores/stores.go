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

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/redisstore"
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
	_ Store = (*memoryStore)(nil)
	_ Store = (*RedisStore)(nil)
	_ Store = (*directRedisStore)(nil)
)
