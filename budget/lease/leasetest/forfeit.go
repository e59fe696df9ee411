package leasetest

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/internal/money"
)

// Settler is a Backend that settles forfeits too (the Model, Redis).
type Settler interface {
	lease.Backend
	lease.ForfeitSettler
}

// RunForfeits is the conformance suite of lease.ForfeitSettler, with
// exact numbers: what a dead holder's forfeit is refunded against the
// ledger's spend, what stays charged, and when nothing is applied.
// newBackend returns an empty backend (or one whose keys no other test
// uses).
func RunForfeits(t *testing.T, newBackend func(t *testing.T) Settler) {
	for _, c := range forfeitCases {
		t.Run(c.name, func(t *testing.T) {
			b := newBackend(t)
			c.run(&fenv{env: env{t: t, b: b, seq: map[string]uint64{}}, s: b})
		})
	}
}

// fenv is env with the backend's SettleForfeit.
type fenv struct {
	env
	s lease.ForfeitSettler
}

func (e *fenv) settleErr(holder string, it budget.Item, spent money.Nano, at time.Duration) (lease.SettleForfeitReply, error) {
	return e.s.SettleForfeit(context.Background(), lease.SettleForfeitRequest{Item: it, Holder: holder, Spent: spent, Now: T0.Add(at)})
}

func (e *fenv) settle(holder string, it budget.Item, spent money.Nano, at time.Duration) lease.SettleForfeitReply {
	e.t.Helper()
	out, err := e.settleErr(holder, it, spent, at)
	require.NoError(e.t, err)
	return out
}

func settled(refund, forfeit money.Nano) lease.SettleForfeitReply {
	return lease.SettleForfeitReply{Refund: refund, Forfeit: forfeit, Applied: true}
}

// dies is holder's one sync at 0 on it (limit 10000): it commits 100,
// reports 20 reserved and takes a lease of 420, which expires at TTL.
func (e *fenv) dies(holder string, it budget.Item) {
	e.t.Helper()
	assert.Equal(e.t, reply(true, 420, 100, 420, 20, 1, 0), e.sync(req{holder: holder, item: it, commit: 100, reserved: 20, need: 20, ex: 400}))
}

type forfeitCase struct {
	name string
	run  func(e *fenv)
}

var forfeitCases = []forfeitCase{
	{"RefundsWhatTheLedgerDidNotSpend", func(e *fenv) {
		it := capped("s@1", 10000)
		e.dies("a", it)
		// b's call forfeits a's lease: committed 100 + 420.
		assert.Equal(e.t, reply(true, 300, 520, 300, 0, 1, 0), e.sync(req{holder: "b", item: it, ex: 300, at: TTL}))
		assert.Equal(e.t, reply(false, 0, 520, 300, 0, 1, 420), e.peek("a", it, TTL))
		// the ledger has 130: 30 settled and never sent. Kept: 30 and the
		// 20 reserved at the last sync; refunded: 420 - 50.
		assert.Equal(e.t, settled(370, 420), e.settle("a", it, 130, TTL))
		assert.Equal(e.t, reply(false, 300, 150, 300, 0, 1, 0), e.peek("b", it, TTL))
		assert.Equal(e.t, reply(false, 0, 150, 300, 0, 1, 0), e.peek("a", it, TTL))
		// a second call applies nothing.
		assert.Equal(e.t, lease.SettleForfeitReply{}, e.settle("a", it, 130, TTL+time.Second))
		assert.Equal(e.t, reply(false, 300, 150, 300, 0, 1, 0), e.peek("b", it, TTL+time.Second))
	}},
	{"LiveLeaseRefusedExpiredForfeited", func(e *fenv) {
		it := capped("s@1", 10000)
		e.dies("a", it)
		_, err := e.settleErr("a", it, 100, TTL-time.Millisecond)
		require.ErrorIs(e.t, err, lease.ErrHolderLive)
		assert.Equal(e.t, reply(false, 420, 100, 420, 20, 1, 0), e.peek("a", it, TTL-time.Millisecond))
		// expired and not forfeited yet: the call forfeits it first (f 420,
		// the 20 reserved kept), then refunds 420 - 20.
		assert.Equal(e.t, settled(400, 420), e.settle("a", it, 100, TTL))
		assert.Equal(e.t, reply(false, 0, 120, 0, 0, 0, 0), e.peek("a", it, TTL))
		assert.Equal(e.t, lease.SettleForfeitReply{}, e.settle("a", it, 100, TTL))
	}},
	{"LedgerBelowSynced", func(e *fenv) {
		it := capped("s@1", 10000)
		e.dies("a", it)
		// the ledger misses rows (40 < the 100 synced): what the holder
		// reported and its reservations stay charged.
		assert.Equal(e.t, settled(400, 420), e.settle("a", it, 40, TTL))
		assert.Equal(e.t, reply(false, 0, 120, 0, 0, 0, 0), e.peek("a", it, TTL))
	}},
	{"NeverMoreThanTheForfeit", func(e *fenv) {
		it := capped("s@1", 10000)
		e.dies("a", it)
		// 1000 unsynced + 20 reserved is more than the forfeit: no refund,
		// but the forfeit is settled.
		assert.Equal(e.t, settled(0, 420), e.settle("a", it, 1100, 2*TTL))
		assert.Equal(e.t, reply(false, 0, 520, 0, 0, 0, 0), e.peek("a", it, 2*TTL))
		assert.Equal(e.t, lease.SettleForfeitReply{}, e.settle("a", it, 1100, 2*TTL))
	}},
	{"CreditedBackNothingToSettle", func(e *fenv) {
		it := capped("s@1", 10000)
		e.dies("a", it)
		assert.Equal(e.t, reply(true, 300, 520, 300, 0, 1, 0), e.sync(req{holder: "b", item: it, ex: 300, at: TTL}))
		// a was cut off, not dead: its 500 is credited against the 420.
		assert.Equal(e.t, reply(true, 0, 600, 300, 0, 1, 0), e.sync(req{holder: "a", item: it, commit: 500, at: TTL + time.Second}))
		assert.Equal(e.t, lease.SettleForfeitReply{}, e.settle("a", it, 600, TTL+time.Second))
		assert.Equal(e.t, reply(false, 300, 600, 300, 0, 1, 0), e.peek("b", it, TTL+time.Second))
	}},
	{"PartlyCreditedThenDead", func(e *fenv) {
		it := capped("s@1", 10000)
		e.dies("a", it)
		assert.Equal(e.t, reply(true, 300, 520, 300, 0, 1, 0), e.sync(req{holder: "b", item: it, ex: 300, at: TTL}))
		// a comes back: 100 credited (forfeit 320, synced 200), 10
		// reserved, a lease of 60 (room 9180 between 2 holders).
		assert.Equal(e.t, reply(true, 60, 520, 360, 10, 2, 320), e.sync(req{holder: "a", item: it, commit: 100, reserved: 10, need: 10, ex: 50, at: TTL + time.Second}))
		_, err := e.settleErr("a", it, 200, TTL+time.Second)
		require.ErrorIs(e.t, err, lease.ErrHolderLive)
		assert.Equal(e.t, reply(false, 60, 520, 360, 10, 2, 320), e.peek("a", it, TTL+time.Second))
		// a dies: its lease of 60 is forfeited by the call (f 380); the
		// ledger has 230, 30 of it unsynced; 10 was reserved at its last
		// sync. committed 580 - (380 - 40): the truth plus 10.
		assert.Equal(e.t, settled(340, 380), e.settle("a", it, 230, 2*TTL+time.Second))
		assert.Equal(e.t, reply(false, 300, 240, 300, 0, 0, 0), e.peek("b", it, 2*TTL+time.Second))
	}},
	{"WindowBucket", func(e *fenv) {
		b1 := capped("s@1", 10000)
		e.dies("a", b1)
		it := budget.Item{Key: "s@2", Window: []string{"s@1"}, Limit: 10000, Enforce: true}
		// c's call forfeits a's lease on the bucket s@1.
		assert.Equal(e.t, reply(true, 100, 520, 100, 0, 1, 0), e.sync(req{holder: "c", item: it, ex: 100, at: TTL}))
		// the bucket is settled as a counter of its own.
		assert.Equal(e.t, lease.SettleForfeitReply{}, e.settle("a", it, 130, TTL))
		assert.Equal(e.t, settled(370, 420), e.settle("a", b1, 130, TTL))
		assert.Equal(e.t, reply(false, 100, 150, 100, 0, 1, 0), e.peek("c", it, TTL))
	}},
	{"SettleLargeAmountsExact", func(e *fenv) {
		it := capped("s@1", maxNano)
		const c1 = money.Nano(1 << 62)
		got := e.sync(req{holder: "a", item: it, commit: c1, reserved: 999999999, need: 999999999, ex: 1 << 60})
		assert.Equal(e.t, reply(true, 1<<60+999999999, c1, 1<<60+999999999, 999999999, 1, 0), got)
		// f 2^60+999999999; kept 1000000007 unsynced + 999999999 reserved.
		assert.Equal(e.t, settled(1<<60-1000000007, 1<<60+999999999), e.settle("a", it, c1+1000000007, TTL))
		assert.Equal(e.t, reply(false, 0, c1+2000000006, 0, 0, 0, 0), e.peek("a", it, TTL))
	}},
	{"SettleInvalidChangesNothing", func(e *fenv) {
		it := capped("s@1", 10000)
		e.dies("a", it)
		for name, r := range map[string]lease.SettleForfeitRequest{
			"EmptyHolder": {Item: it, Spent: 100, Now: T0.Add(TTL)},
			"EmptyKey":    {Item: budget.Item{Limit: 10000, Enforce: true}, Holder: "a", Spent: 100, Now: T0.Add(TTL)},
			"Spent":       {Item: it, Holder: "a", Spent: -1, Now: T0.Add(TTL)},
			"Before1970":  {Item: it, Holder: "a", Spent: 100, Now: time.Unix(-1, 0)},
		} {
			_, err := e.s.SettleForfeit(context.Background(), r)
			require.ErrorIs(e.t, err, lease.ErrInvalid, name)
		}
		// a's expired lease is not forfeited by them.
		assert.Equal(e.t, reply(false, 420, 100, 420, 20, 0, 0), e.peek("a", it, TTL))
		// nothing there: nothing applied.
		assert.Equal(e.t, lease.SettleForfeitReply{}, e.settle("x", it, 100, TTL))
		assert.Equal(e.t, lease.SettleForfeitReply{}, e.settle("a", capped("t@1", 10), 100, TTL))
		assert.Equal(e.t, reply(false, 420, 100, 420, 20, 0, 0), e.peek("a", it, TTL))
	}},
}
