package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"

	"github.com/redis/go-redis/v9"

	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/internal/money"
)

var (
	_ lease.Backend        = (*Store)(nil)
	_ lease.ForfeitSettler = (*Store)(nil)
)

// HoldersKey is the Redis key of counter key k's lease holders:
// P h:{scope}@start.
func (s *Store) HoldersKey(k string) string { return s.key("h:", k) }

// maxMicros bounds the times of a Sync: the script keeps them as Lua
// numbers.
const maxMicros = 1<<53 - 1

// Sync implements lease.Backend. A request that breaks the contract is
// refused with lease.ErrInvalid before Redis is called; a stored value
// that is not what the script wrote fails the call, which then changed
// nothing.
//
// # Layout
//
// With budget leases (budget/lease) a replica borrows a slice of a counter's
// remaining budget and syncs it with Store.Sync. For every counter key K
// the lease state is in K's hash C beside the fields of the other
// scripts, and in a third key:
//
//	P h:{S}@T  sorted set: the holders with a lease (or reported
//	           reservations) on K, scored by the lease's expiry in Unix
//	           microseconds of the callers' clock
//
// and the fields of C:
//
//	"l"           the sum of the leases on K
//	"l:<holder>"  the holder's lease
//	"q"           the sum of the reservations the holders reported
//	"q:<holder>"  the holder's reported reservations
//	"s:<holder>"  the last Seq applied for the holder
//	"f:<holder>"  the holder's forfeit not yet credited back
//	"y:<holder>"  the sum of the holder's applied commits (Synced)
//	"k:<holder>"  the holder's reported reservations when its lease
//	              was forfeited (while f: is set and it has not synced
//	              since)
//
// "c" (committed) is shared with Settle, and "r", the direct
// reservations of Reserve and Extend, counts as reserved outside leases
// (as stored: their expiry is the business of those scripts). s:, f:,
// y: and k: outlive the holder's removal, so a late duplicate is still
// recognised, a forfeit still credited or settled; SettleForfeit removes
// f:, y: and k:, and all go when the key does.
//
// Sync follows the Model of budget/lease/leasetest exactly (the tests
// compare them call by call), and is one Lua script (leaseScript).
func (s *Store) Sync(ctx context.Context, r lease.SyncRequest) (lease.SyncReply, error) {
	if err := ctx.Err(); err != nil {
		return lease.SyncReply{}, err
	}
	if err := r.Validate(); err != nil {
		return lease.SyncReply{}, fmt.Errorf("redis sync: %w", err)
	}
	now, expiry := r.Now.UnixMicro(), r.Now.Add(r.TTL).UnixMicro()
	if now < 0 || expiry > maxMicros || expiry < now {
		return lease.SyncReply{}, fmt.Errorf("redis sync: %w: now %v with ttl %v out of range", lease.ErrInvalid, r.Now, r.TTL)
	}
	keys := make([]string, 0, 2+2*len(r.Item.Window))
	keys = append(keys, s.CounterKey(r.Item.Key), s.HoldersKey(r.Item.Key))
	for i, w := range r.Item.Window {
		if w == r.Item.Key || seenBefore(r.Item.Window[:i], w) {
			continue
		}
		keys = append(keys, s.CounterKey(w), s.HoldersKey(w))
	}
	enforce := 0
	if r.Item.Enforce {
		enforce = 1
	}
	args := []any{
		now, expiry, r.Holder, strconv.FormatUint(r.Seq, 10),
		int64(r.Commit), int64(r.Reserved), int64(r.Need), int64(r.Ask), int64(r.Extra),
		enforce, int64(r.Item.Limit), keyTTL(r.Item, r.Now, r.TTL),
	}
	reply, err := s.runReplicated(ctx, leaseScript, keys, args)
	if err != nil {
		return lease.SyncReply{}, fmt.Errorf("redis sync: %w", err)
	}
	out, err := syncReply(reply)
	if err != nil {
		return lease.SyncReply{}, fmt.Errorf("redis sync: %w", err)
	}
	return out, nil
}

func seenBefore(ws []string, w string) bool {
	for _, x := range ws {
		if x == w {
			return true
		}
	}
	return false
}

// syncReply decodes leaseScript's reply: applied (1/0), then lease,
// committed, leased and reserved as pairs, the holder count, and the
// forfeit as a pair.
func syncReply(r []int64) (lease.SyncReply, error) {
	if len(r) != 12 {
		return lease.SyncReply{}, errors.New("unexpected reply length")
	}
	var v [5]money.Nano
	var errs [5]error
	for i, at := range []int{1, 3, 5, 7, 10} {
		v[i], errs[i] = nano(r[at], r[at+1])
	}
	if err := errors.Join(errs[:]...); err != nil {
		return lease.SyncReply{}, err
	}
	if r[0] != 0 && r[0] != 1 || r[9] < 0 {
		return lease.SyncReply{}, fmt.Errorf("applied %d, holders %d", r[0], r[9])
	}
	return lease.SyncReply{
		Applied: r[0] == 1, Lease: v[0], Committed: v[1], Leased: v[2], Reserved: v[3],
		Holders: int(r[9]), Forfeited: v[4],
	}, nil
}

// ErrNotReplicated: a write was applied by the primary but fewer replicas
// than Options.WaitReplicas acknowledged it within the call timeout. Its
// outcome after a failover is unknown, so the caller sends it again
// (a lease Sync with the same Seq applies once).
var ErrNotReplicated = errors.New("redis: the write was not acknowledged by enough replicas")

// runReplicated runs sc like run, and with WaitReplicas also WAIT on the
// same connection (one pipeline, one round trip to the primary plus the
// replication), so the script's writes are on that many replicas before
// the call succeeds.
func (s *Store) runReplicated(ctx context.Context, sc *redis.Script, keys []string, args []any) ([]int64, error) {
	p, ok := s.client.(interface{ Pipeline() redis.Pipeliner })
	if s.waitReplicas <= 0 || !ok {
		return s.run(ctx, sc, keys, args).Int64Slice()
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	exec := func(load bool) (*redis.Cmd, *redis.Cmd, error) {
		pipe := p.Pipeline()
		var cmd *redis.Cmd
		if load {
			cmd = sc.Eval(ctx, pipe, keys, args...)
		} else {
			cmd = sc.EvalSha(ctx, pipe, keys, args...)
		}
		wait := pipe.Do(ctx, "wait", s.waitReplicas, s.timeout.Milliseconds())
		_, err := pipe.Exec(ctx)
		return cmd, wait, err
	}
	cmd, wait, err := exec(false)
	if err != nil && redis.HasErrorPrefix(cmd.Err(), "NOSCRIPT") {
		cmd, wait, err = exec(true)
	}
	if err := cmd.Err(); err != nil {
		return nil, asTimeout(ctx, err)
	}
	reply, rerr := cmd.Int64Slice()
	if rerr != nil {
		return nil, rerr
	}
	if err != nil || wait.Err() != nil {
		return nil, fmt.Errorf("%w: WAIT: %w", ErrNotReplicated, errors.Join(err, wait.Err()))
	}
	if n, err := wait.Int64(); err != nil || n < int64(s.waitReplicas) {
		return nil, fmt.Errorf("%w: %d of %d within %v", ErrNotReplicated, n, s.waitReplicas, s.timeout)
	}
	return reply, nil
}

// SettleForfeit implements lease.ForfeitSettler: one Lua script
// (forfeitScript) on Item.Key's two keys (one slot in a Redis Cluster),
// following the Model of budget/lease/leasetest. A request that breaks
// the contract is refused with lease.ErrInvalid before Redis is called; a
// holder whose lease is live at Now with lease.ErrHolderLive, with
// nothing changed.
func (s *Store) SettleForfeit(ctx context.Context, r lease.SettleForfeitRequest) (lease.SettleForfeitReply, error) {
	if err := ctx.Err(); err != nil {
		return lease.SettleForfeitReply{}, err
	}
	if err := r.Validate(); err != nil {
		return lease.SettleForfeitReply{}, fmt.Errorf("redis settle forfeit: %w", err)
	}
	now := r.Now.UnixMicro()
	if now < 0 || now > maxMicros {
		return lease.SettleForfeitReply{}, fmt.Errorf("redis settle forfeit: %w: now %v out of range", lease.ErrInvalid, r.Now)
	}
	keys := []string{s.CounterKey(r.Item.Key), s.HoldersKey(r.Item.Key)}
	reply, err := s.runReplicated(ctx, forfeitScript, keys, []any{now, r.Holder, int64(r.Spent)})
	if err != nil {
		return lease.SettleForfeitReply{}, fmt.Errorf("redis settle forfeit: %w", err)
	}
	if len(reply) != 5 || reply[0] < 0 || reply[0] > 2 {
		return lease.SettleForfeitReply{}, fmt.Errorf("redis settle forfeit: unexpected reply %v", reply)
	}
	if reply[0] == 2 {
		return lease.SettleForfeitReply{}, fmt.Errorf("redis settle forfeit of %s on %s: %w", r.Holder, r.Item.Key, lease.ErrHolderLive)
	}
	refund, err1 := nano(reply[1], reply[2])
	forfeit, err2 := nano(reply[3], reply[4])
	if err := errors.Join(err1, err2); err != nil {
		return lease.SettleForfeitReply{}, fmt.Errorf("redis settle forfeit: %w", err)
	}
	return lease.SettleForfeitReply{Refund: refund, Forfeit: forfeit, Applied: reply[0] == 1}, nil
}
