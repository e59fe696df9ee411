package leasetest

import (
	"context"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/internal/money"
)

// T0 is the suite's clock origin.
var T0 = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

// TTL is the lease TTL the suite uses unless a case says otherwise.
const TTL = 10 * time.Second

const maxNano = money.Nano(math.MaxInt64)

// env runs one case on a fresh backend, numbering each holder's calls.
type env struct {
	t   *testing.T
	b   lease.Backend
	seq map[string]uint64
}

// req is a SyncRequest in short: the holder, the item, the amounts and
// the time as an offset from T0.
type req struct {
	holder                          string
	item                            budget.Item
	commit, reserved, need, ask, ex money.Nano
	at                              time.Duration
	ttl                             time.Duration
	seq                             uint64 // 0: the holder's next
}

func (e *env) request(r req) lease.SyncRequest {
	if r.seq == 0 {
		e.seq[r.holder]++
		r.seq = e.seq[r.holder]
	}
	if r.ttl == 0 {
		r.ttl = TTL
	}
	return lease.SyncRequest{
		Holder: r.holder, Seq: r.seq, Item: r.item, Commit: r.commit, Reserved: r.reserved,
		Need: r.need, Ask: r.ask, Extra: r.ex, TTL: r.ttl, Now: T0.Add(r.at),
	}
}

func (e *env) sync(r req) lease.SyncReply {
	e.t.Helper()
	out, err := e.b.Sync(context.Background(), e.request(r))
	require.NoError(e.t, err)
	return out
}

// peek is the state as holder sees it at offset at: a Sync that repeats
// its last Seq, which applies nothing.
func (e *env) peek(holder string, item budget.Item, at time.Duration) lease.SyncReply {
	e.t.Helper()
	require.NotZero(e.t, e.seq[holder], "peek needs a holder that synced")
	out := e.sync(req{holder: holder, item: item, at: at, seq: e.seq[holder], ex: 77})
	require.False(e.t, out.Applied)
	return out
}

func capped(key string, limit money.Nano) budget.Item {
	return budget.Item{Key: key, Limit: limit, Enforce: true}
}

// Run is the conformance suite of lease.Backend: every rule of the
// contract with exact numbers. newBackend returns an empty backend (or
// one whose keys no other test uses).
func Run(t *testing.T, newBackend func(t *testing.T) lease.Backend) {
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			c.run(&env{t: t, b: newBackend(t), seq: map[string]uint64{}})
		})
	}
}

type suiteCase struct {
	name string
	run  func(e *env)
}

func reply(applied bool, l, committed, leased, reserved money.Nano, holders int, forfeited money.Nano) lease.SyncReply {
	return lease.SyncReply{Applied: applied, Lease: l, Committed: committed, Leased: leased, Reserved: reserved, Holders: holders, Forfeited: forfeited}
}

var cases = []suiteCase{
	{"GrantFarFromCap", func(e *env) {
		it := capped("s@1", 1000)
		// room 1000: ask 100, and extra 300 in full (at most 900/2).
		assert.Equal(e.t, reply(true, 400, 0, 400, 0, 1, 0), e.sync(req{holder: "a", item: it, ask: 100, ex: 300}))
		// committed 50, room 950 (its own lease left out): 300 <= (950-20)/2.
		assert.Equal(e.t, reply(true, 320, 50, 320, 20, 1, 0), e.sync(req{holder: "a", item: it, commit: 50, reserved: 20, need: 20, ex: 300, at: time.Second}))
		assert.Equal(e.t, reply(true, 30, 50, 30, 20, 1, 0), e.sync(req{holder: "a", item: it, reserved: 20, need: 20, ex: 10, at: 2 * time.Second}))
		// Extra above the share, 465: none of it (near the cap no headroom).
		assert.Equal(e.t, reply(true, 20, 50, 20, 20, 1, 0), e.sync(req{holder: "a", item: it, reserved: 20, need: 20, ex: 466, at: 3 * time.Second}))
		assert.Equal(e.t, reply(true, 485, 50, 485, 20, 1, 0), e.sync(req{holder: "a", item: it, reserved: 20, need: 20, ex: 465, at: 4 * time.Second}))
	}},
	{"NearCapNeedPastCap", func(e *env) {
		it := capped("s@1", 1000)
		// a lease of 0 with nothing reserved: the holder is not kept.
		assert.Equal(e.t, reply(true, 0, 900, 0, 0, 0, 0), e.sync(req{holder: "a", item: it, commit: 900}))
		// room 100: need 30, ask min(100, 70), extra min(50, 0/2).
		assert.Equal(e.t, reply(true, 100, 900, 100, 0, 1, 0), e.sync(req{holder: "b", item: it, need: 30, ask: 100, ex: 50}))
		// room 0: nothing for a holder that needs nothing.
		assert.Equal(e.t, reply(true, 0, 900, 100, 0, 1, 0), e.sync(req{holder: "c", item: it, ask: 10, ex: 10}))
		// Need is granted past the cap, and nothing else.
		assert.Equal(e.t, reply(true, 60, 900, 160, 60, 2, 0), e.sync(req{holder: "d", item: it, reserved: 60, need: 60, ask: 5, ex: 5}))
		// b commits 100 of its 100: room is 1000-1000-60 < 0, so 0.
		assert.Equal(e.t, reply(true, 0, 1000, 60, 60, 1, 0), e.sync(req{holder: "b", item: it, commit: 100, ask: 1, ex: 1, at: time.Second}))
	}},
	{"AskPartial", func(e *env) {
		it := capped("s@1", 1000)
		assert.Equal(e.t, reply(true, 1000, 0, 1000, 0, 1, 0), e.sync(req{holder: "a", item: it, ask: 2000, ex: 100}))
		assert.Equal(e.t, reply(true, 0, 0, 1000, 0, 1, 0), e.sync(req{holder: "b", item: it, ask: 2000, ex: 100}))
		// a gives back 400 of it: b gets 300 of 2000 beyond its need 100.
		assert.Equal(e.t, reply(true, 600, 0, 600, 0, 1, 0), e.sync(req{holder: "a", item: it, need: 600, at: time.Second}))
		assert.Equal(e.t, reply(true, 400, 0, 1000, 0, 2, 0), e.sync(req{holder: "b", item: it, need: 100, ask: 2000, ex: 100, at: time.Second}))
	}},
	{"HoldersSplit", func(e *env) {
		it := capped("s@1", 1000)
		assert.Equal(e.t, reply(true, 400, 0, 400, 0, 1, 0), e.sync(req{holder: "a", item: it, ex: 400}))
		// room 600 between 2 holders: a share of 600/4.
		assert.Equal(e.t, reply(true, 100, 0, 500, 0, 2, 0), e.sync(req{holder: "b", item: it, ex: 100}))
		// 200 is more than the share, 150: b holds nothing, and leaves.
		assert.Equal(e.t, reply(true, 0, 0, 400, 0, 1, 0), e.sync(req{holder: "b", item: it, ex: 200, at: time.Second}))
		assert.Equal(e.t, reply(true, 150, 0, 550, 0, 2, 0), e.sync(req{holder: "c", item: it, ex: 150, at: time.Second}))
		// three holders: room 450, a share of 450/6 rounded down.
		assert.Equal(e.t, reply(true, 75, 0, 625, 0, 3, 0), e.sync(req{holder: "d", item: it, ex: 75, at: time.Second}))
		assert.Equal(e.t, reply(true, 0, 0, 625, 0, 3, 0), e.sync(req{holder: "e", item: it, ex: 47, at: time.Second}))
		assert.Equal(e.t, reply(false, 400, 0, 625, 0, 3, 0), e.peek("a", it, 2*time.Second))
	}},
	{"ForfeitAndCredit", func(e *env) {
		it := capped("s@1", 1000)
		assert.Equal(e.t, reply(true, 400, 0, 400, 7, 1, 0), e.sync(req{holder: "a", item: it, reserved: 7, ex: 400}))
		// a's lease expired at 10s: b's call forfeits it (committed 400).
		assert.Equal(e.t, reply(true, 300, 400, 300, 0, 1, 0), e.sync(req{holder: "b", item: it, ex: 300, at: TTL}))
		assert.Equal(e.t, reply(false, 0, 400, 300, 0, 1, 400), e.peek("a", it, TTL))
		// a's next commit is credited against its forfeit.
		assert.Equal(e.t, reply(true, 0, 400, 300, 0, 1, 200), e.sync(req{holder: "a", item: it, commit: 200, at: TTL + time.Second}))
		assert.Equal(e.t, reply(true, 0, 600, 300, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 400, at: TTL + 2*time.Second}))
		assert.Equal(e.t, reply(true, 0, 700, 300, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 100, at: TTL + 3*time.Second}))
	}},
	{"OwnExpiredLeaseReplaced", func(e *env) {
		it := capped("s@1", 1000)
		assert.Equal(e.t, reply(true, 400, 0, 400, 0, 1, 0), e.sync(req{holder: "a", item: it, ex: 400}))
		assert.Equal(e.t, reply(false, 400, 0, 400, 0, 0, 0), e.peek("a", it, 2*TTL))
		// nobody forfeited it: a's own call replaces it.
		assert.Equal(e.t, reply(true, 450, 100, 450, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 100, ex: 450, at: 2 * TTL}))
	}},
	{"LateDuplicateAppliesNothing", func(e *env) {
		it := capped("s@1", 1000)
		assert.Equal(e.t, reply(true, 10, 100, 10, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 100, ex: 10, seq: 5}))
		assert.Equal(e.t, reply(false, 10, 100, 10, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 100, ex: 10, seq: 5}))
		assert.Equal(e.t, reply(false, 10, 100, 10, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 100, ex: 999, seq: 4, at: time.Second}))
		assert.Equal(e.t, reply(true, 222, 100, 232, 0, 2, 0), e.sync(req{holder: "b", item: it, ex: 222}))
		// room 890 between 2 holders: 890/4.
		// a late duplicate after b's lease expired forfeits nothing either.
		assert.Equal(e.t, reply(false, 10, 100, 232, 0, 0, 0), e.sync(req{holder: "a", item: it, commit: 100, seq: 5, at: 2 * TTL}))
		assert.Equal(e.t, reply(true, 0, 322, 0, 0, 0, 0), e.sync(req{holder: "a", item: it, seq: 6, at: 2 * TTL}))
		assert.Equal(e.t, reply(false, 0, 322, 0, 0, 0, 0), e.sync(req{holder: "a", item: it, seq: 6, commit: 5, at: 2 * TTL}))
		e.seq["a"] = 6
		e.seq["b"] = 1
		assert.Equal(e.t, reply(false, 0, 322, 0, 0, 0, 222), e.peek("b", it, 2*TTL))
	}},
	{"RemovalAtZero", func(e *env) {
		it := capped("s@1", 1000)
		assert.Equal(e.t, reply(true, 0, 0, 0, 5, 1, 0), e.sync(req{holder: "a", item: it, reserved: 5}))
		assert.Equal(e.t, reply(true, 0, 0, 0, 0, 0, 0), e.sync(req{holder: "a", item: it}))
		// the removed holder's Seq is still known.
		assert.Equal(e.t, reply(false, 0, 0, 0, 0, 0, 0), e.peek("a", it, time.Second))
		// and it may come back.
		assert.Equal(e.t, reply(true, 500, 0, 500, 0, 1, 0), e.sync(req{holder: "a", item: it, ex: 500, at: time.Second}))
	}},
	{"WindowBuckets", func(e *env) {
		b1, b2 := capped("s@1", 1000), capped("s@2", 1000)
		e.sync(req{holder: "a", item: b1, commit: 100})
		assert.Equal(e.t, reply(true, 500, 0, 500, 3, 1, 0), e.sync(req{holder: "b", item: b2, reserved: 3, ex: 500}))
		it := budget.Item{Key: "s@3", Window: []string{"s@2", "s@1", "s@2", "s@3"}, Limit: 1000, Enforce: true}
		// room 1000-100-500: every counter once.
		assert.Equal(e.t, reply(true, 200, 100, 700, 3, 1, 0), e.sync(req{holder: "c", item: it, ex: 200, ttl: 3 * TTL}))
		// b's lease on s@2 expired: forfeited into s@2's committed.
		assert.Equal(e.t, reply(true, 50, 600, 250, 0, 2, 0), e.sync(req{holder: "d", item: it, ex: 50, at: TTL}))
		assert.Equal(e.t, reply(false, 0, 500, 0, 0, 0, 500), e.peek("b", b2, TTL))
		// b is back on s@2: room 1000-500, extra at most 200.
		assert.Equal(e.t, reply(true, 200, 500, 200, 0, 1, 500), e.sync(req{holder: "b", item: b2, ex: 200, at: TTL + time.Second}))
		// at 22s b syncs on s@3: its own expired lease on the bucket s@2 is
		// forfeited (it is never renewed there), and so is d's on s@3.
		assert.Equal(e.t, reply(true, 0, 850, 200, 0, 1, 0), e.sync(req{holder: "b", item: it, at: 2*TTL + 2*time.Second}))
		// (the last Seq b had applied on s@2 is 2)
		assert.Equal(e.t, reply(false, 0, 700, 0, 0, 0, 700), e.sync(req{holder: "b", item: b2, seq: 2, at: 2*TTL + 2*time.Second}))
	}},
	{"Unenforced", func(e *env) {
		it := budget.Item{Key: "s@1", Limit: 10}
		assert.Equal(e.t, reply(true, 1015, 50, 1015, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 50, need: 5, ask: 10, ex: 1000}))
		assert.Equal(e.t, reply(true, maxNano, 50, maxNano, 0, 2, 0), e.sync(req{holder: "b", item: it, need: maxNano, ask: maxNano, ex: 1}))
	}},
	{"InvalidChangesNothing", func(e *env) {
		it := capped("s@1", 1000)
		want := e.sync(req{holder: "a", item: it, commit: 10, reserved: 4, need: 4, ex: 100})
		good := e.request(req{holder: "a", item: it, commit: 1, ask: 1, at: time.Second})
		bad := map[string]func(r *lease.SyncRequest){
			"EmptyHolder": func(r *lease.SyncRequest) { r.Holder = "" },
			"EmptyKey":    func(r *lease.SyncRequest) { r.Item.Key = "" },
			"Seq0":        func(r *lease.SyncRequest) { r.Seq = 0 },
			"Commit":      func(r *lease.SyncRequest) { r.Commit = -1 },
			"Reserved":    func(r *lease.SyncRequest) { r.Reserved = -1 },
			"Need":        func(r *lease.SyncRequest) { r.Need = -1 },
			"Ask":         func(r *lease.SyncRequest) { r.Ask = -1 },
			"Extra":       func(r *lease.SyncRequest) { r.Extra = math.MinInt64 },
			"TTL0":        func(r *lease.SyncRequest) { r.TTL = 0 },
			"TTLNegative": func(r *lease.SyncRequest) { r.TTL = -time.Second },
			"Limit":       func(r *lease.SyncRequest) { r.Item.Limit = -1 },
			"Before1970":  func(r *lease.SyncRequest) { r.Now = time.Unix(-1, 0) },
			"TTLTooLong":  func(r *lease.SyncRequest) { r.TTL = math.MaxInt64 },
		}
		for name, f := range bad {
			r := good
			f(&r)
			_, err := e.b.Sync(context.Background(), r)
			require.ErrorIs(e.t, err, lease.ErrInvalid, name)
		}
		got := e.sync(req{holder: "a", item: it, at: time.Second, seq: 1})
		got.Applied = true
		assert.Equal(e.t, want, got)
		// the request made good is applied once.
		out, err := e.b.Sync(context.Background(), good)
		require.NoError(e.t, err)
		assert.Equal(e.t, reply(true, 1, 11, 1, 0, 1, 0), out)
	}},
	{"CommittedSaturates", func(e *env) {
		it := capped("s@1", maxNano)
		assert.Equal(e.t, reply(true, 0, maxNano-10, 0, 0, 0, 0), e.sync(req{holder: "a", item: it, commit: maxNano - 10}))
		assert.Equal(e.t, reply(true, 10, maxNano, 10, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 100, need: 10, ex: 5}))
		assert.Equal(e.t, reply(true, 0, maxNano, 0, 0, 0, 0), e.sync(req{holder: "a", item: it, commit: maxNano}))
	}},
	{"LargeAmountsExact", func(e *env) {
		it := capped("s@1", maxNano)
		const half = money.Nano(4611686018427387903) // (2^63-1)/2
		assert.Equal(e.t, reply(true, 0, 0, 0, 0, 0, 0), e.sync(req{holder: "a", item: it, ex: half + 1}))
		assert.Equal(e.t, reply(true, half, 0, half, 0, 1, 0), e.sync(req{holder: "a", item: it, ex: half, at: time.Millisecond}))
		// room 2^62, between 2 holders: a share of 2^60.
		assert.Equal(e.t, reply(true, 0, 0, half, 0, 1, 0), e.sync(req{holder: "b", item: it, ex: 1<<60 + 1}))
		assert.Equal(e.t, reply(true, 1<<60, 0, half+1<<60, 0, 2, 0), e.sync(req{holder: "b", item: it, ex: 1 << 60, at: time.Millisecond}))
		// a commits all but 1000000007 of its lease and asks the rest.
		c := half - 1000000007
		got := e.sync(req{holder: "a", item: it, commit: c, reserved: 999999999, need: 999999999, ask: maxNano, ex: maxNano, at: time.Second})
		room := maxNano - c - 1<<60
		assert.Equal(e.t, reply(true, room, c, room+1<<60, 999999999, 2, 0), got)
		// the limit is exact to the last nano-USD.
		assert.Equal(e.t, reply(true, 0, maxNano-1<<60, 1<<60, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: room, at: 2 * time.Second}))
		assert.Equal(e.t, reply(true, 1<<60, maxNano-1<<60, 1<<60, 0, 1, 0), e.sync(req{holder: "b", item: it, ask: maxNano, at: 2 * time.Second}))
	}},
}
