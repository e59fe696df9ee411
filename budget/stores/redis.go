package stores

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/internal/money"
)

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
		Guard:  guard,
		redis:  redisstore.New(client, redisstore.Options{KeyPrefix: cfg.Prefix(), Timeout: cfg.CallTimeout(), WaitReplicas: cfg.Replicas()}),
		client: client,
	}
	var out Store = &directRedisStore{s}
	if cfg.Leases.On() {
		s.leases = lease.New(guardedBackend{s}, lease.Options{
			SyncInterval: cfg.Leases.Interval(), LeaseTTL: cfg.Leases.LeaseTTL(),
			// A call may queue behind another's sync: two calls' time,
			// within Envoy's message_timeout at the default timeout.
			Wait:    2 * cfg.CallTimeout(),
			OnError: syncErrorLog(log),
		})
		// The leases Redis granted are gone with its data: ask again.
		guard.OnLost(func(redisstore.LostEvent) { s.leases.Forget() })
		out = s
	}
	where := []zap.Field{zap.String("mode", cfg.Mode()), zap.Strings("addresses", cfg.Addresses()), zap.Bool("leases", cfg.Leases.On())}
	if err := guard.Start(ctx); err != nil {
		log.Warn("redis store not reachable yet; store calls fail until it answers", append(where, zap.Error(err))...)
	} else if err := s.Ping(ctx); err != nil {
		log.Warn("redis store not ready yet; store calls may fail until it is", append(where, zap.Error(err))...)
	} else {
		log.Info("redis store connected", append(where, zap.Int("db", cfg.DB), zap.String("key_prefix", cfg.Prefix()))...)
	}
	return out, nil
}

type redisLogger struct{ log *zap.Logger }

func (l redisLogger) Printf(_ context.Context, format string, v ...any) {
	if ce := l.log.Check(zap.DebugLevel, "redis client"); ce != nil {
		ce.Write(zap.String("detail", fmt.Sprintf(format, v...)))
	}
}

// RedisStore is the Store Open returns for backend redis: the store's
// calls, and a Guard that watches that Redis still holds its data. With
// store.redis.leases (the default) Reserve, Extend, Usage and Settle are
// decided within budget leases (package budget/lease); without, each is
// a call to Redis. While the Guard reports the store lost, Reserve,
// Extend and Usage fail with an error wrapping budget.ErrStoreLost, and
// Ping fails. OnLost, Lost and Reestablish come from the Guard. It is
// also the budget.Lister, budget.Parker and estimate.Samples of the
// admin API, background responses and learned estimates.
type RedisStore struct {
	*redisstore.Guard
	redis  *redisstore.Store
	client redis.UniversalClient
	// leases is nil without store.redis.leases.
	leases *lease.Store
}

// directRedisStore is the RedisStore without leases: every Settle is a
// Redis call the engine may retry (budget.IdempotentSettler).
type directRedisStore struct{ *RedisStore }

// SettleIsIdempotent marks the store without leases as safe for the
// engine to retry a Settle whose outcome is unknown.
func (s *directRedisStore) SettleIsIdempotent() {}

// AsRedis returns the RedisStore of a store Open returned for backend
// redis, or nil.
func AsRedis(s Store) *RedisStore {
	switch r := s.(type) {
	case *RedisStore:
		return r
	case *directRedisStore:
		return r.RedisStore
	}
	return nil
}

var (
	_ Losable          = (*RedisStore)(nil)
	_ budget.Lister    = (*RedisStore)(nil)
	_ budget.Parker    = (*RedisStore)(nil)
	_ estimate.Samples = (*RedisStore)(nil)

	_ budget.IdempotentSettler = (*directRedisStore)(nil)
)

// Leases is the lease layer, or nil when store.redis.leases is off.
func (s *RedisStore) Leases() *lease.Store { return s.leases }

// Redis is the store's Redis calls, whatever the mode.
func (s *RedisStore) Redis() *redisstore.Store { return s.redis }

// Client is the go-redis client of the store.
func (s *RedisStore) Client() redis.UniversalClient { return s.client }

// guardedBackend is the lease layer's Backend: Redis's Sync, refused
// while the store is lost (a lease from a Redis that forgot its spend
// would admit against nothing).
type guardedBackend struct{ s *RedisStore }

func (b guardedBackend) Sync(ctx context.Context, r lease.SyncRequest) (lease.SyncReply, error) {
	if err := b.s.LostErr(); err != nil {
		return lease.SyncReply{}, err
	}
	return b.s.redis.Sync(ctx, r)
}

// syncErrorLog logs failed background syncs at most once a minute, not
// at every interval of an outage.
func syncErrorLog(log *zap.Logger) func(string, error) {
	var mu sync.Mutex
	var last time.Time
	return func(key string, err error) {
		mu.Lock()
		defer mu.Unlock()
		if time.Since(last) < time.Minute {
			return
		}
		last = time.Now()
		log.Warn("budget lease sync failed; settled spend stays in this replica until Redis answers (logged at most once a minute)",
			zap.String("counter", key), zap.Error(err))
	}
}

// Ping is the readiness probe: a write on every primary, and the epochs
// compared (redisstore.Guard.Ping).
func (s *RedisStore) Ping(ctx context.Context) error { return s.Guard.Ping(ctx) }

// Reserve implements budget.Store; it fails while the store is lost.
func (s *RedisStore) Reserve(ctx context.Context, id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (budget.Outcome, error) {
	if err := s.LostErr(); err != nil {
		return budget.Outcome{}, err
	}
	if s.leases != nil {
		return s.leases.Reserve(ctx, id, amount, items, ttl, now)
	}
	return s.redis.Reserve(ctx, id, amount, items, ttl, now)
}

// Extend implements budget.Store; it fails while the store is lost.
func (s *RedisStore) Extend(ctx context.Context, id string, want money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (money.Nano, budget.Outcome, error) {
	if err := s.LostErr(); err != nil {
		return 0, budget.Outcome{}, err
	}
	if s.leases != nil {
		return s.leases.Extend(ctx, id, want, items, ttl, now)
	}
	return s.redis.Extend(ctx, id, want, items, ttl, now)
}

// Usage implements budget.Store; it fails while the store is lost.
func (s *RedisStore) Usage(ctx context.Context, items []budget.Item, now time.Time) ([]budget.Counter, error) {
	if err := s.LostErr(); err != nil {
		return nil, err
	}
	if s.leases != nil {
		return s.leases.Usage(ctx, items, now)
	}
	return s.redis.Usage(ctx, items, now)
}

// Settle implements budget.Store. With leases it is local and never
// waits for Redis, lost or not: the spend is sent with the counter's
// next sync (after the store is re-established). Without leases, while
// the store is lost it fails without writing: the engine keeps the spend
// and retries it until the store is re-established.
func (s *RedisStore) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	if s.leases != nil {
		return s.leases.Settle(ctx, id, actual, items, now)
	}
	if err := s.LostErr(); err != nil {
		return err
	}
	return s.redis.Settle(ctx, id, actual, items, now)
}

// CounterKeys implements budget.Lister.
func (s *RedisStore) CounterKeys(ctx context.Context, prefix string, limit int) ([]string, bool, error) {
	return s.redis.CounterKeys(ctx, prefix, limit)
}

// Park implements budget.Parker.
func (s *RedisStore) Park(ctx context.Context, key string, record []byte, deadline time.Time) error {
	return s.redis.Park(ctx, key, record, deadline)
}

// Take implements budget.Parker.
func (s *RedisStore) Take(ctx context.Context, key string) ([]byte, bool, error) {
	return s.redis.Take(ctx, key)
}

// PopExpired implements budget.Parker.
func (s *RedisStore) PopExpired(ctx context.Context, now time.Time, limit int) ([]budget.Parked, error) {
	return s.redis.PopExpired(ctx, now, limit)
}

// AppendSamples implements estimate.Samples.
func (s *RedisStore) AppendSamples(ctx context.Context, batches []estimate.Batch, keep int) error {
	return s.redis.AppendSamples(ctx, batches, keep)
}

// LoadSamples implements estimate.Samples.
func (s *RedisStore) LoadSamples(ctx context.Context, keep int) (map[string][]int64, error) {
	return s.redis.LoadSamples(ctx, keep)
}

// LeaseCloseTimeout bounds the last sync of every counter at Close.
const LeaseCloseTimeout = 10 * time.Second

// Close sends the spend settled here and gives the leases back (within
// LeaseCloseTimeout), stops the Guard's watcher and closes the client.
func (s *RedisStore) Close() error {
	var err error
	if s.leases != nil {
		ctx, cancel := context.WithTimeout(context.Background(), LeaseCloseTimeout)
		err = s.leases.Close(ctx)
		cancel()
		if err != nil {
			err = fmt.Errorf("redis store: the last lease sync failed; spend settled here since the last good sync is lost unless Redis counted it: %w", err)
		}
	}
	s.Guard.Close()
	return errors.Join(err, s.client.Close())
}
