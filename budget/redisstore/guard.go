package redisstore

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
)

// The epoch keys, one per Redis primary (one in all unless in Redis
// Cluster, where each master has one in a slot it serves):
//
//	P {epoch}epoch     hash: "id" random, "created" Unix seconds
//	P {epoch-N}epoch   the same on a cluster master; N is the first
//	                   number whose tag hashes into that master's slots
//
// spendguard creates each one if absent (any replica of spendguard may,
// the first one wins) and remembers its id. A key that vanishes or whose
// id changes means the primary lost its data set: it restarted without
// persistence, was flushed, or a replica that had not caught up was
// promoted. The counters on it are then gone or stale, and budgets would
// admit spend they had already refused; the Guard reports the store as
// lost until Reestablish.

// Guard watches that a Redis store still holds its data (the epoch keys)
// and probes that it accepts writes (readiness). It is safe for
// concurrent use.
type Guard struct {
	client   redis.UniversalClient
	prefix   string
	timeout  time.Duration
	interval time.Duration
	log      *zap.Logger

	mu     sync.Mutex
	shards []shard // nil until established
	gen    uint64  // bumped by every (re)establishment
	losses int
	hooks  []func(LostEvent)
	// created: an establishment without reset found an epoch absent and
	// created it (a new Redis, or one emptied while no replica watched).
	created bool

	// lost is the current loss (nil when none); set under mu, read
	// without it on every store call.
	lost atomic.Pointer[LostEvent]

	stop chan struct{}
	done chan struct{}
	once sync.Once
}

// shard is the epoch of one primary.
type shard struct {
	tag string // hash tag: "epoch" or "epoch-N"
	id  string // the epoch id read back at establishment
}

// LostEvent tells that the store lost its data.
type LostEvent struct {
	// Key is the epoch key that vanished or changed.
	Key string
	// Reason is "vanished" or "changed".
	Reason string
	// Was is the id spendguard remembered, Now the one found ("" when the
	// key vanished).
	Was, Now string
	// At is when the loss was noticed.
	At time.Time
}

func (e LostEvent) String() string {
	return fmt.Sprintf("epoch key %s %s (id %q, now %q) at %s", e.Key, e.Reason, e.Was, e.Now, e.At.UTC().Format(time.RFC3339))
}

// GuardOptions configure a Guard.
type GuardOptions struct {
	// KeyPrefix starts every key (default budget.DefaultKeyPrefix).
	KeyPrefix string
	// Timeout bounds each Redis call (default budget.DefaultStoreTimeout).
	Timeout time.Duration
	// CheckInterval is the time between two epoch checks (default
	// budget.DefaultEpochCheckInterval).
	CheckInterval time.Duration
	// Log receives the loss (once per loss) and watcher problems.
	Log *zap.Logger
}

// NewGuard returns a Guard on client. Start establishes the epochs and
// starts the watcher; Close stops it.
func NewGuard(client redis.UniversalClient, opts GuardOptions) *Guard {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = budget.DefaultKeyPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = budget.DefaultStoreTimeout
	}
	if opts.CheckInterval <= 0 {
		opts.CheckInterval = budget.DefaultEpochCheckInterval
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	return &Guard{client: client, prefix: opts.KeyPrefix, timeout: opts.Timeout, interval: opts.CheckInterval,
		log: opts.Log, stop: make(chan struct{}), done: make(chan struct{})}
}

// Start establishes the epochs (an unreachable Redis is not an error: the
// watcher establishes them once it answers) and starts the watcher.
func (g *Guard) Start(ctx context.Context) error {
	err := g.establish(ctx, false)
	go g.watch()
	return err
}

// Close stops the watcher. The client is the caller's.
func (g *Guard) Close() {
	g.once.Do(func() {
		close(g.stop)
		<-g.done
	})
}

// OnLost registers fn, called once per loss (from the goroutine that
// noticed it, after the state changed: Lost is true while it runs).
func (g *Guard) OnLost(fn func(LostEvent)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.hooks = append(g.hooks, fn)
}

// Lost reports whether the store lost its data and was not re-established
// since.
func (g *Guard) Lost() bool { return g.lost.Load() != nil }

// Losses is the number of losses noticed since the Guard was made.
func (g *Guard) Losses() int {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.losses
}

// LostErr is nil, or an error wrapping budget.ErrStoreLost that describes
// the loss.
func (g *Guard) LostErr() error {
	ev := g.lost.Load()
	if ev == nil {
		return nil
	}
	return fmt.Errorf("%w: %s; the store must be re-established", budget.ErrStoreLost, ev)
}

// Reestablish ends a loss, once whatever the store should hold was
// rebuilt: each epoch key is created again if absent (or adopted, when
// another replica of spendguard re-established it first) and its id
// remembered; Lost is then false. It fails, and the store stays lost,
// when Redis does not answer.
func (g *Guard) Reestablish(ctx context.Context) error {
	return g.establish(ctx, true)
}

// ensureScript: KEYS epoch; ARGV id, created. It creates the epoch when
// absent and returns the id it holds.
var ensureScript = redis.NewScript(`
local id = redis.call('HGET', KEYS[1], 'id')
if id then return id end
redis.call('HSET', KEYS[1], 'id', ARGV[1], 'created', ARGV[2])
return ARGV[1]
`)

func (g *Guard) epochKey(tag string) string { return g.prefix + "{" + tag + "}epoch" }
func (g *Guard) readyKey(tag string) string { return g.prefix + "{" + tag + "}ready" }

// establish finds the primaries, creates or adopts their epochs and
// remembers them. Without reset it does nothing once established.
func (g *Guard) establish(ctx context.Context, reset bool) error {
	g.mu.Lock()
	done := g.shards != nil
	g.mu.Unlock()
	if done && !reset {
		return nil
	}
	tags, err := g.tags(ctx)
	if err != nil {
		return err
	}
	shards := make([]shard, 0, len(tags))
	created := false
	for _, tag := range tags {
		id, fresh, err := g.ensure(ctx, tag)
		if err != nil {
			return err
		}
		created = created || fresh
		shards = append(shards, shard{tag: tag, id: id})
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.shards != nil && !reset {
		return nil // established meanwhile by the watcher or a probe
	}
	if !reset && created {
		g.created = true
	}
	g.shards = shards
	g.gen++
	if ev := g.lost.Load(); reset && ev != nil {
		g.log.Info("redis store re-established after a loss", zap.Stringer("loss", ev))
	}
	g.lost.Store(nil)
	return nil
}

// ensure creates the epoch of tag when absent and returns its id, and
// whether this call created it.
func (g *Guard) ensure(ctx context.Context, tag string) (string, bool, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	var b [16]byte
	_, _ = rand.Read(b[:])
	mine := hex.EncodeToString(b[:])
	id, err := ensureScript.Run(ctx, g.client, []string{g.epochKey(tag)}, mine, time.Now().Unix()).Text()
	if err != nil {
		return "", false, fmt.Errorf("redis epoch %s: %w", g.epochKey(tag), err)
	}
	return id, id == mine, nil
}

// Created reports whether the first establishment created an epoch: the
// Redis was new, or lost its data while no replica of spendguard watched
// it (or held the key layout of an older version). Its counters may then
// need rebuilding from the ledger, as after a loss.
func (g *Guard) Created() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.created
}

// tags lists one hash tag per primary: "epoch" on one server, and in
// Redis Cluster "epoch-N" in a slot of each master.
func (g *Guard) tags(ctx context.Context) ([]string, error) {
	cc, ok := g.client.(*redis.ClusterClient)
	if !ok {
		return []string{"epoch"}, nil
	}
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	slots, err := cc.ClusterSlots(ctx).Result()
	if err != nil {
		return nil, fmt.Errorf("redis cluster slots: %w", err)
	}
	return masterTags(slots)
}

// masterTags picks for every master of slots the first tag "epoch-N"
// whose hash slot it serves.
func masterTags(slots []redis.ClusterSlot) ([]string, error) {
	byMaster := map[string][]redis.ClusterSlot{}
	for _, s := range slots {
		if len(s.Nodes) == 0 {
			continue
		}
		byMaster[s.Nodes[0].Addr] = append(byMaster[s.Nodes[0].Addr], s)
	}
	masters := make([]string, 0, len(byMaster))
	for m := range byMaster {
		masters = append(masters, m)
	}
	sort.Strings(masters)
	tags := make([]string, 0, len(masters))
	for _, m := range masters {
		tag := ""
		for n := 0; tag == "" && n < 100*ClusterSlots; n++ {
			slot := KeySlot("{epoch-" + strconv.Itoa(n) + "}")
			for _, r := range byMaster[m] {
				if slot >= int(r.Start) && slot <= int(r.End) {
					tag = "epoch-" + strconv.Itoa(n)
					break
				}
			}
		}
		if tag == "" {
			return nil, fmt.Errorf("redis cluster: no epoch tag hashes into the slots of %s", m)
		}
		tags = append(tags, tag)
	}
	if len(tags) == 0 {
		return nil, errors.New("redis cluster: no slot is served")
	}
	return tags, nil
}

// check compares every epoch with the one remembered, establishing them
// first if that was not possible before. It returns the loss error when
// the store is lost (now or before), or Redis's error.
func (g *Guard) check(ctx context.Context) error {
	if err := g.LostErr(); err != nil {
		return err
	}
	if err := g.establish(ctx, false); err != nil {
		return err
	}
	g.mu.Lock()
	shards, gen := g.shards, g.gen
	g.mu.Unlock()
	for _, sh := range shards {
		now, err := g.readEpoch(ctx, sh.tag)
		if err != nil {
			return err
		}
		if now != sh.id {
			ev := LostEvent{Key: g.epochKey(sh.tag), Reason: "changed", Was: sh.id, Now: now, At: time.Now()}
			if now == "" {
				ev.Reason = "vanished"
			}
			g.markLost(gen, ev)
			return g.LostErr()
		}
	}
	return nil
}

func (g *Guard) readEpoch(ctx context.Context, tag string) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	id, err := g.client.HGet(ctx, g.epochKey(tag), "id").Result()
	if errors.Is(err, redis.Nil) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("redis epoch %s: %w", g.epochKey(tag), err)
	}
	return id, nil
}

// markLost records the loss ev seen under generation gen (ignored if the
// store was re-established since) and, on the change from not lost to
// lost, logs it and calls the hooks.
func (g *Guard) markLost(gen uint64, ev LostEvent) {
	g.mu.Lock()
	if gen != g.gen || g.lost.Load() != nil {
		g.mu.Unlock()
		return
	}
	g.lost.Store(&ev)
	g.losses++
	hooks := append([]func(LostEvent){}, g.hooks...)
	g.mu.Unlock()
	g.log.Error("redis store lost its data (restarted without persistence, flushed, or failed over to a replica that had not caught up); budget calls fail until it is re-established",
		zap.String("epoch_key", ev.Key), zap.String("reason", ev.Reason), zap.String("was", ev.Was), zap.String("now", ev.Now))
	for _, fn := range hooks {
		fn(ev)
	}
}

// watch checks the epochs every interval until Close.
func (g *Guard) watch() {
	defer close(g.done)
	t := time.NewTicker(g.interval)
	defer t.Stop()
	for {
		select {
		case <-g.stop:
			return
		case <-t.C:
			if g.Lost() {
				continue
			}
			ctx, cancel := context.WithTimeout(context.Background(), g.interval+g.timeout)
			if err := g.check(ctx); err != nil && !errors.Is(err, budget.ErrStoreLost) {
				if ce := g.log.Check(zap.DebugLevel, "redis epoch check failed"); ce != nil {
					ce.Write(zap.Error(err))
				}
			}
			cancel()
		}
	}
}
