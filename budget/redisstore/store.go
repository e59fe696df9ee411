// Package redisstore is a budget.Store in Redis, shared by every replica
// of spendguard: each Store call is one Lua script, so one round trip and
// one atomic step, whatever the number of budgets and window buckets.
// It is also the Redis side of budget leases (lease.Backend: Sync, one
// script on one scope's keys; package budget/lease decides within the
// leases, and is what spendguard uses by default), the watch of an
// emptied store (Guard: epoch keys, the write probe of readiness) and the
// rebuild of a counter from the ledger (RaiseCommitted).
//
// # Keys
//
// For every counter key K (a budget.Item's Key or Window entry) there are
// two Redis keys under the prefix P:
//
//	P c:{S}@T  hash: "c" committed nano-USD, "r" reserved nano-USD,
//	           "i:<id>" the amount of each live reservation
//	P z:{S}@T  sorted set: live reservation ids, scored by their expiry
//	           in Unix microseconds
//
// where K = S@T is the counter key, S its scope part and T its period
// start (a total's T is "total"). The braces are a Redis Cluster hash
// tag: every key of one scope is in one slot. A settled reservation id
// leaves the marker P d:<id> for SettleMarkerTTL; Settle, Reserve and
// Extend read it, and it is in a slot of its own, so the scripts need a
// single Redis node (a primary, with replicas or not), not a cluster.
//
// Budget leases (Store.Sync, the lease.Backend of budget/lease) add a
// third key per counter, P h:{S}@T, the set of lease holders, and lease
// fields to the hash (see Store.Sync and HoldersKey).
//
// A counter key names its period, so nothing is ever reset: a counter is
// given a time to live of its Item.Expires (minus now) plus Grace, and
// Redis drops it by itself; a `total` counter never expires.
//
// # Time
//
// Reservation expiry and key lifetimes use the callers' clock (the now of
// each call), not the Redis server's: replicas should run NTP, and a
// replica whose clock is ahead by d releases other replicas'
// reservations d early. Expiry has microsecond resolution.
//
// # Money
//
// Counters are decimal strings in Redis; the scripts add, subtract and
// compare amounts as exact pairs of integers (see scripts.go), never as
// Lua doubles, so every amount up to 2^63-1 nano-USD is exact. They
// saturate as the memory store does (budget/storetest checks both): a
// counter never passes 2^63-1 and never goes below 0. Each script checks
// its arguments and the stored values it reads, and computes every new
// value, before its first write, so a call that fails changes nothing: in
// particular a Settle that fails leaves no settle marker behind, and a
// Settle over several budgets is applied to all of them or none.
//
// # Failures
//
// Every call has its own timeout (Options.Timeout) on top of the caller's
// context. A call that times out after Redis ran it is applied although
// it returned an error: a Settle's spend is committed, and a Reserve
// holds its amount until the engine's background release of the id (a
// Settle of 0, sent until Redis answers; budget.Engine.RetrySettles).
// A Reserve or Extend that reaches Redis only after the id was settled
// finds the settle marker and holds nothing, so a stalled Redis leaves
// no reservation behind that nobody owns. The go-redis client should not
// retry commands (MaxRetries -1): a retried Settle would count twice.
package redisstore

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// Grace is how long a counter outlives its period, for late settles and
// for the admin API.
const Grace = time.Hour

// Options configure a Store.
type Options struct {
	// KeyPrefix starts every key (default budget.DefaultKeyPrefix).
	KeyPrefix string
	// Timeout bounds each call (default budget.DefaultStoreTimeout).
	Timeout time.Duration
	// WaitReplicas, when positive, makes every lease Sync wait (WAIT)
	// until that many replicas have its writes before it is counted as
	// done: spend a failover would otherwise lose is then sent again.
	WaitReplicas int
}

// Store is a budget.Store on a Redis server. It is safe for concurrent
// use; the client is owned by the caller.
type Store struct {
	client       redis.Scripter
	prefix       string
	timeout      time.Duration
	waitReplicas int
}

var _ budget.Store = (*Store)(nil)

// New returns a Store on client.
func New(client redis.Scripter, opts Options) *Store {
	if opts.KeyPrefix == "" {
		opts.KeyPrefix = budget.DefaultKeyPrefix
	}
	if opts.Timeout <= 0 {
		opts.Timeout = budget.DefaultStoreTimeout
	}
	return &Store{client: client, prefix: opts.KeyPrefix, timeout: opts.Timeout, waitReplicas: opts.WaitReplicas}
}

// CounterKey and ReservationsKey are the Redis keys of counter key k
// (see Keys in the package documentation): P c:{scope}@start and
// P z:{scope}@start, the scope part of k in a hash tag.
func (s *Store) CounterKey(k string) string      { return s.key("c:", k) }
func (s *Store) ReservationsKey(k string) string { return s.key("z:", k) }

// key is prefix + kind + k with the scope part of k (all of k before its
// last '@') in braces: Redis Cluster places a key by the text between
// its first '{' and the next '}', so every key of one scope, in every
// period and rolling bucket, lands in one hash slot, and a script on one
// scope never spans slots. The prefix holds no brace (Validate refuses
// one). A scope part holding '}' ends the tag early, at the same place in
// every key of that scope, so those still share a slot.
func (s *Store) key(kind, k string) string {
	at := strings.LastIndexByte(k, '@')
	if at < 0 {
		at = len(k)
	}
	var b strings.Builder
	b.Grow(len(s.prefix) + len(kind) + len(k) + 2)
	b.WriteString(s.prefix)
	b.WriteString(kind)
	b.WriteByte('{')
	b.WriteString(k[:at])
	b.WriteByte('}')
	b.WriteString(k[at:])
	return b.String()
}

// counterKeyOf inverts key for kind: the counter key k of a Redis key, and
// false for a key of another shape.
func (s *Store) counterKeyOf(kind, redisKey string) (string, bool) {
	rest, ok := strings.CutPrefix(redisKey, s.prefix+kind+"{")
	if !ok {
		return "", false
	}
	close := strings.LastIndexByte(rest, '}')
	if close < 0 {
		return "", false
	}
	return rest[:close] + rest[close+1:], true
}

// Reserve implements budget.Store.
func (s *Store) Reserve(ctx context.Context, id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (budget.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return budget.Outcome{}, err
	}
	if id == "" || amount < 0 || ttl <= 0 {
		return budget.Outcome{}, fmt.Errorf("%w: reserve id %q, amount %v, ttl %v", budget.ErrInvalidArgument, id, amount, ttl)
	}
	reply, err := s.run(ctx, reserveScript, s.markedKeys(items, id), itemArgs(id, amount, items, ttl, now)).Int64Slice()
	if err != nil {
		return budget.Outcome{}, fmt.Errorf("redis reserve: %w", err)
	}
	if len(reply) == 1 && reply[0] == -2 {
		return budget.Outcome{}, fmt.Errorf("%w: %q", budget.ErrDuplicateReservation, id)
	}
	if len(reply) == 1 && reply[0] == -3 {
		return budget.Outcome{}, fmt.Errorf("%w: %q was settled (released) before this reserve arrived", budget.ErrDuplicateReservation, id)
	}
	if len(reply) == 0 {
		return budget.Outcome{}, errors.New("redis reserve: empty reply")
	}
	counters, err := counters(reply[1:], len(items))
	if err != nil {
		return budget.Outcome{}, fmt.Errorf("redis reserve: %w", err)
	}
	return budget.Outcome{Blocked: int(reply[0]), Counters: counters}, nil
}

// Extend implements budget.Store. Redis keeps the amount of a
// reservation per counter, so a reservation is extended on whatever items
// it is given; with the items of its Reserve, as the contract asks, it
// grows on all of them alike.
func (s *Store) Extend(ctx context.Context, id string, want money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (money.Nano, budget.Outcome, error) {
	if err := ctx.Err(); err != nil {
		return 0, budget.Outcome{}, err
	}
	if id == "" || want < 0 || ttl <= 0 {
		return 0, budget.Outcome{}, fmt.Errorf("%w: extend id %q, want %v, ttl %v", budget.ErrInvalidArgument, id, want, ttl)
	}
	if len(items) == 0 {
		return want, budget.Outcome{Blocked: -1, Counters: []budget.Counter{}}, nil
	}
	reply, err := s.run(ctx, extendScript, s.markedKeys(items, id), itemArgs(id, want, items, ttl, now)).Int64Slice()
	if err != nil {
		return 0, budget.Outcome{}, fmt.Errorf("redis extend: %w", err)
	}
	if len(reply) == 1 && reply[0] == -3 {
		return 0, budget.Outcome{}, fmt.Errorf("redis extend: %w: %q was settled before this extend arrived", budget.ErrSettled, id)
	}
	if len(reply) < 3 {
		return 0, budget.Outcome{}, errors.New("redis extend: short reply")
	}
	granted, err := nano(reply[1], reply[2])
	if err == nil && granted > want {
		err = fmt.Errorf("granted %v of %v", granted, want)
	}
	if err != nil {
		return 0, budget.Outcome{}, fmt.Errorf("redis extend: %w", err)
	}
	counters, err := counters(reply[3:], len(items))
	if err == nil && (reply[0] < -1 || reply[0] >= int64(len(items))) {
		err = fmt.Errorf("blocked index %d of %d items", reply[0], len(items))
	}
	if err != nil {
		return 0, budget.Outcome{}, fmt.Errorf("redis extend: %w", err)
	}
	return granted, budget.Outcome{Blocked: int(reply[0]), Counters: counters}, nil
}

// itemArgs are the ARGV of reserveScript and extendScript.
func itemArgs(id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) []any {
	args := make([]any, 0, 5+4*len(items))
	args = append(args, micros(now), id, int64(amount), micros(now.Add(ttl)), len(items))
	for _, it := range items {
		enforce := 0
		if it.Enforce {
			enforce = 1
		}
		args = append(args, enforce, int64(max(it.Limit, 0)), keyTTL(it, now, ttl), len(it.Window))
	}
	return args
}

// SettleMarkerTTL is how long a settled reservation id is remembered: a
// Settle sent again within it (after a timeout left its outcome unknown)
// counts once. The engine's retries stop well before it.
const SettleMarkerTTL = 15 * time.Minute

// SettleIsIdempotent marks the store as safe for the engine to retry a
// Settle whose outcome is unknown (budget.IdempotentSettler).
func (s *Store) SettleIsIdempotent() {}

// Settle implements budget.Store.
func (s *Store) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if actual < 0 {
		return fmt.Errorf("%w: settle %q with actual %v", budget.ErrInvalidArgument, id, actual)
	}
	if len(items) == 0 {
		return nil
	}
	keys := make([]string, 0, 2*len(items)+1)
	args := make([]any, 0, 4+len(items))
	args = append(args, micros(now), id, int64(actual), SettleMarkerTTL.Milliseconds())
	for _, it := range items {
		keys = append(keys, s.CounterKey(it.Key), s.ReservationsKey(it.Key))
		args = append(args, keyTTL(it, now, 0))
	}
	keys = append(keys, s.markerKey(id))
	if err := s.run(ctx, settleScript, keys, args).Err(); err != nil {
		return fmt.Errorf("redis settle: %w", err)
	}
	return nil
}

// Usage implements budget.Store.
func (s *Store) Usage(ctx context.Context, items []budget.Item, now time.Time) ([]budget.Counter, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if len(items) == 0 {
		return []budget.Counter{}, nil
	}
	args := make([]any, 0, 2+len(items))
	args = append(args, micros(now), len(items))
	for _, it := range items {
		args = append(args, len(it.Window))
	}
	reply, err := s.run(ctx, usageScript, s.readKeys(items), args).Int64Slice()
	if err != nil {
		return nil, fmt.Errorf("redis usage: %w", err)
	}
	out, err := counters(reply, len(items))
	if err != nil {
		return nil, fmt.Errorf("redis usage: %w", err)
	}
	return out, nil
}

// Ping checks that Redis answers, within the call timeout.
func (s *Store) Ping(ctx context.Context) error {
	c, ok := s.client.(interface {
		Ping(context.Context) *redis.StatusCmd
	})
	if !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redis ping: %w", err)
	}
	return nil
}

// run runs a script (EVALSHA, then EVAL if Redis does not have it) within
// the call timeout. A timeout wraps context.DeadlineExceeded, whether the
// context or the socket deadline reported it.
func (s *Store) run(ctx context.Context, sc *redis.Script, keys []string, args []any) *redis.Cmd {
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	cmd := sc.Run(ctx, s.client, keys, args...)
	if err := cmd.Err(); err != nil {
		cmd.SetErr(asTimeout(ctx, err))
	}
	return cmd
}

// asTimeout is err of a call bounded by ctx, wrapping
// context.DeadlineExceeded when ctx ended or the socket timed out.
func asTimeout(ctx context.Context, err error) error {
	if errors.Is(err, context.DeadlineExceeded) || errors.Is(err, context.Canceled) {
		return err
	}
	var ne net.Error
	if ctx.Err() != nil || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %w", context.DeadlineExceeded, err)
	}
	return err
}

// markerKey is the settle marker of reservation id, P d:<id>: not in a
// hash tag, so in a slot of its own (see reserveScript).
func (s *Store) markerKey(id string) string { return s.prefix + "d:" + id }

// markedKeys are the KEYS of reserveScript and extendScript: readKeys,
// then the settle marker of id.
func (s *Store) markedKeys(items []budget.Item, id string) []string {
	return append(s.keysFor(items, 1), s.markerKey(id))
}

// readKeys lists C and Z of every item's Key and Window, in script order.
func (s *Store) readKeys(items []budget.Item) []string { return s.keysFor(items, 0) }

// keysFor is readKeys in a slice with room for extra keys more.
func (s *Store) keysFor(items []budget.Item, extra int) []string {
	n := extra
	for _, it := range items {
		n += 2 * (1 + len(it.Window))
	}
	keys := make([]string, 0, n)
	for _, it := range items {
		keys = append(keys, s.CounterKey(it.Key), s.ReservationsKey(it.Key))
		for _, w := range it.Window {
			keys = append(keys, s.CounterKey(w), s.ReservationsKey(w))
		}
	}
	return keys
}

// counters decodes n (committed hi, lo, reserved hi, lo) groups.
func counters(r []int64, n int) ([]budget.Counter, error) {
	if len(r) != 4*n {
		return nil, errors.New("unexpected reply length")
	}
	out := make([]budget.Counter, n)
	for i := range out {
		g := r[4*i : 4*i+4]
		c, errC := nano(g[0], g[1])
		rs, errR := nano(g[2], g[3])
		if err := errors.Join(errC, errR); err != nil {
			return nil, err
		}
		out[i] = budget.Counter{Committed: c, Reserved: rs}
	}
	return out, nil
}

// nano is hi*1e9 + lo, for a pair the scripts return: 0 <= lo < 1e9 and
// the value at most 2^63-1 (the scripts saturate there).
func nano(hi, lo int64) (money.Nano, error) {
	const maxHi = math.MaxInt64 / int64(money.PerUSD)
	if hi < 0 || lo < 0 || lo >= int64(money.PerUSD) || hi > maxHi ||
		(hi == maxHi && lo > math.MaxInt64%int64(money.PerUSD)) {
		return 0, fmt.Errorf("amount (%d, %d) out of range", hi, lo)
	}
	return money.Nano(hi)*money.PerUSD + money.Nano(lo), nil
}

func micros(t time.Time) string { return strconv.FormatInt(t.UnixMicro(), 10) }

// keyTTL is the lifetime in ms given to an item's keys: until its period
// ends (or the reservation expires, if later) plus Grace; 0 for a
// counter that never expires.
func keyTTL(it budget.Item, now time.Time, ttl time.Duration) int64 {
	if it.Expires.IsZero() {
		return 0
	}
	return (max(it.Expires.Sub(now), ttl, 0) + Grace).Milliseconds()
}
