// Package leasetest checks lease.Backend implementations: Model is the
// executable specification of the contract in budget/lease (an in-memory
// Backend that the Redis script is compared with, call by call), and Run
// is a conformance suite with exact numbers that any Backend must pass.
package leasetest

import (
	"context"
	"fmt"
	"math"
	"sync"

	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/internal/money"
)

// Model is lease.Backend in memory: the executable specification that
// the Redis script (budget/redisstore) is checked against. It is safe for
// concurrent use.
//
// Where the contract leaves a choice, Model decides it, and the Redis
// store must decide alike:
//
//   - Time has microsecond resolution: a lease's expiry is
//     (Now+TTL).UnixMicro(), and a lease is expired at a call whose
//     Now.UnixMicro() is at or past it. A Now before 1970, or an expiry
//     beyond 2^53 µs, is refused with lease.ErrInvalid.
//   - Window entries that repeat Item.Key or each other are one counter.
//   - Step 1 forfeits every expired lease on the Window buckets (whose
//     leased total is not 0), the holder's own included (it is never
//     renewed there), and every expired lease on Item.Key but the
//     holder's own, which the call replaces.
//   - The room of step 3 leaves out only the holder's own lease on
//     Item.Key; its leases on Window buckets count like anyone's.
//   - Totals saturate: committed, the leased and reported totals and a
//     forfeit never pass 2^63-1 (a sum that would stays there) and a
//     subtraction from a total never goes below 0. With Enforce false
//     the lease Need+Ask+Extra saturates too (the contract's "never
//     above room+Need" has no room to bound it).
//   - A Sync that is not applied writes nothing, not even forfeits.
//   - The last applied Seq is kept per holder on Item.Key (where the
//     commit goes), and kept after the holder's removal, as are its
//     forfeit and its Synced (a holder that comes back later and dies
//     is settled exactly).
//   - A forfeit keeps the holder's reported reservations (as Kept) when
//     its forfeit is then not 0; its next applied Sync, or the settlement
//     of its forfeit, drops them.
//   - SettleForfeit forfeits only the holder's own expired lease on
//     Item.Key (other holders' expired leases wait for the next Sync).
//
// The Model has no reservations outside leases (the Redis store's
// direct reservations, "r"): its Reserved is what the holders reported.
type Model struct {
	mu       sync.Mutex
	counters map[string]*counter
}

type counter struct {
	committed, leased, reserved money.Nano
	holders                     map[string]*holder
}

// holder is one holder's fields on one counter. inSet is whether it is
// a member of the counter's holders set (with expiry); seq, forfeit,
// synced (the sum of its commits) and kept (its reservations when its
// lease was forfeited) outlive its removal.
type holder struct {
	lease, reserved, forfeit money.Nano
	synced, kept             money.Nano
	seq                      uint64
	expiry                   int64
	inSet                    bool
}

// maxMicros bounds times: the Redis script keeps them as Lua numbers.
const maxMicros = 1<<53 - 1

var (
	_ lease.Backend        = (*Model)(nil)
	_ lease.ForfeitSettler = (*Model)(nil)
)

// NewModel returns an empty Model.
func NewModel() *Model { return &Model{counters: map[string]*counter{}} }

// Add is a + b for amounts in [0, 2^63-1], saturating at 2^63-1.
func Add(a, b money.Nano) money.Nano {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// Sub is a - b, or 0 when b > a.
func Sub(a, b money.Nano) money.Nano {
	if b > a {
		return 0
	}
	return a - b
}

// Keys is the counters of a request: Key first, then every Window entry
// not seen before.
func Keys(key string, window []string) []string {
	out := []string{key}
	seen := map[string]bool{key: true}
	for _, w := range window {
		if !seen[w] {
			seen[w] = true
			out = append(out, w)
		}
	}
	return out
}

// times checks r's Validate and its times, and returns Now and the
// expiry in Unix µs.
func times(r *lease.SyncRequest) (now, expiry int64, err error) {
	if err := r.Validate(); err != nil {
		return 0, 0, err
	}
	now, expiry = r.Now.UnixMicro(), r.Now.Add(r.TTL).UnixMicro()
	if now < 0 || expiry > maxMicros || expiry < now {
		return 0, 0, fmt.Errorf("%w: now %v with ttl %v out of range", lease.ErrInvalid, r.Now, r.TTL)
	}
	return now, expiry, nil
}

func (m *Model) get(k string) *counter {
	c := m.counters[k]
	if c == nil {
		c = &counter{holders: map[string]*holder{}}
		m.counters[k] = c
	}
	return c
}

func (c *counter) holder(h string) *holder {
	x := c.holders[h]
	if x == nil {
		x = &holder{}
		c.holders[h] = x
	}
	return x
}

// forfeit moves every expired lease in the set (but skip's) into
// committed and the holder's forfeit.
func (c *counter) forfeit(now int64, skip string) {
	for id, x := range c.holders {
		if !x.inSet || id == skip || x.expiry > now {
			continue
		}
		c.lose(x)
	}
}

// lose forfeits x's lease: into committed and x's forfeit, its reported
// reservations kept beside a forfeit that is not 0.
func (c *counter) lose(x *holder) {
	c.committed = Add(c.committed, x.lease)
	x.forfeit = Add(x.forfeit, x.lease)
	c.leased = Sub(c.leased, x.lease)
	c.reserved = Sub(c.reserved, x.reserved)
	x.kept = 0
	if x.forfeit != 0 {
		x.kept = x.reserved
	}
	x.lease, x.reserved, x.expiry, x.inSet = 0, 0, 0, false
}

// Sync implements lease.Backend.
func (m *Model) Sync(ctx context.Context, r lease.SyncRequest) (lease.SyncReply, error) {
	if err := ctx.Err(); err != nil {
		return lease.SyncReply{}, err
	}
	now, expiry, err := times(&r)
	if err != nil {
		return lease.SyncReply{}, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	keys := Keys(r.Item.Key, r.Item.Window)
	k := m.get(r.Item.Key)
	me := k.holder(r.Holder)
	applied := r.Seq > me.seq
	if applied {
		m.apply(&r, keys, now, expiry)
	}
	return m.reply(applied, r.Holder, keys, now), nil
}

func (m *Model) apply(r *lease.SyncRequest, keys []string, now, expiry int64) {
	k := m.get(keys[0])
	me := k.holder(r.Holder)
	// 1. forfeits.
	k.forfeit(now, r.Holder)
	for _, w := range keys[1:] {
		if c := m.counters[w]; c != nil && c.leased != 0 {
			c.forfeit(now, "")
		}
	}
	// 2. commit, less the credit.
	credit := min(r.Commit, me.forfeit)
	me.forfeit -= credit
	k.committed = Add(k.committed, r.Commit-credit)
	me.synced = Add(me.synced, r.Commit)
	// 3. room (the model has no reservations outside leases).
	room := money.Nano(math.MaxInt64)
	if r.Item.Enforce {
		used := Add(k.committed, Sub(k.leased, me.lease))
		for _, w := range keys[1:] {
			if c := m.counters[w]; c != nil {
				used = Add(used, Add(c.committed, c.leased))
			}
		}
		room = Sub(r.Item.Limit, used)
	}
	// 4. the lease.
	h := money.Nano(1)
	for id, x := range k.holders {
		if id != r.Holder && x.inSet {
			h++
		}
	}
	var l money.Nano
	if r.Item.Enforce {
		ask := min(r.Ask, Sub(room, r.Need))
		extra := r.Extra
		if Sub(Sub(room, r.Need), ask)/(2*h) < r.Extra {
			extra = 0 // near the cap: no headroom, only what is asked
		}
		l = r.Need + ask + extra
	} else {
		l = Add(Add(r.Need, r.Ask), r.Extra)
	}
	// 5. the holder's fields.
	k.leased = Add(Sub(k.leased, me.lease), l)
	k.reserved = Add(Sub(k.reserved, me.reserved), r.Reserved)
	me.lease, me.reserved, me.seq, me.kept = l, r.Reserved, r.Seq, 0
	if l == 0 && r.Reserved == 0 {
		me.expiry, me.inSet = 0, false
	} else {
		me.expiry, me.inSet = expiry, true
	}
}

func (m *Model) reply(applied bool, id string, keys []string, now int64) lease.SyncReply {
	k := m.counters[keys[0]]
	me := k.holders[id]
	out := lease.SyncReply{Applied: applied, Lease: me.lease, Forfeited: me.forfeit}
	for _, key := range keys {
		if c := m.counters[key]; c != nil {
			out.Committed = Add(out.Committed, c.committed)
			out.Leased = Add(out.Leased, c.leased)
			out.Reserved = Add(out.Reserved, c.reserved)
		}
	}
	for _, x := range k.holders {
		if x.inSet && x.expiry > now {
			out.Holders++
		}
	}
	return out
}

// SettleForfeit implements lease.ForfeitSettler. Now is checked like a
// Sync's (Unix µs from 0 to 2^53-1).
func (m *Model) SettleForfeit(ctx context.Context, r lease.SettleForfeitRequest) (lease.SettleForfeitReply, error) {
	if err := ctx.Err(); err != nil {
		return lease.SettleForfeitReply{}, err
	}
	if err := r.Validate(); err != nil {
		return lease.SettleForfeitReply{}, err
	}
	now := r.Now.UnixMicro()
	if now < 0 || now > maxMicros {
		return lease.SettleForfeitReply{}, fmt.Errorf("%w: now %v out of range", lease.ErrInvalid, r.Now)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.counters[r.Item.Key]
	if c == nil || c.holders[r.Holder] == nil {
		return lease.SettleForfeitReply{}, nil
	}
	x := c.holders[r.Holder]
	if x.inSet {
		if x.expiry > now {
			return lease.SettleForfeitReply{}, lease.ErrHolderLive
		}
		c.lose(x)
	}
	f := x.forfeit
	if f == 0 {
		return lease.SettleForfeitReply{}, nil
	}
	keep := Add(Sub(r.Spent, x.synced), x.kept)
	refund := Sub(f, keep)
	c.committed = Sub(c.committed, refund)
	x.forfeit, x.synced, x.kept = 0, 0, 0
	return lease.SettleForfeitReply{Refund: refund, Forfeit: f, Applied: true}, nil
}

// Holder is one holder's fields on one counter, as State reports them.
type Holder struct {
	Lease, Reserved, Forfeit money.Nano
	// Synced is the sum of the holder's applied commits there; Kept its
	// reported reservations when its lease was forfeited (while its
	// forfeit is not 0 and it has not synced since).
	Synced, Kept money.Nano
	Seq          uint64
	// Expiry is the lease's expiry in Unix µs, 0 when the holder is not
	// in the counter's holders set.
	Expiry int64
}

// State is everything a backend keeps on one counter (the reservations
// outside leases aside): its totals and its holders (those with any
// field set, whether in the holders set or not).
type State struct {
	Committed, Leased, Reserved money.Nano
	Holders                     map[string]Holder
}

// State reports counter key as the model holds it.
func (m *Model) State(key string) State {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := State{Holders: map[string]Holder{}}
	c := m.counters[key]
	if c == nil {
		return out
	}
	out.Committed, out.Leased, out.Reserved = c.committed, c.leased, c.reserved
	for id, x := range c.holders {
		if x.inSet || x.seq != 0 || x.forfeit != 0 || x.synced != 0 || x.kept != 0 {
			out.Holders[id] = Holder{Lease: x.lease, Reserved: x.reserved, Forfeit: x.forfeit,
				Synced: x.synced, Kept: x.kept, Seq: x.seq, Expiry: x.expiry}
		}
	}
	return out
}

// Counter is the totals of a counter with its window (each key once), as
// a reply reports them.
func (m *Model) Counter(key string, window []string) (committed, leased, reserved money.Nano) {
	for _, k := range Keys(key, window) {
		s := m.State(k)
		committed = Add(committed, s.Committed)
		leased = Add(leased, s.Leased)
		reserved = Add(reserved, s.Reserved)
	}
	return committed, leased, reserved
}
