package leasetest

import (
	"context"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/internal/money"
)

// RandomKeys are the counters of Requests: three periods of one scope.
var RandomKeys = []string{"p@1", "p@2", "p@3"}

// source reads data a byte at a time, then zeros.
type source struct {
	data []byte
	i    int
}

func (s *source) byte() byte {
	if s.i >= len(s.data) {
		s.i++
		return 0
	}
	b := s.data[s.i]
	s.i++
	return b
}

func (s *source) n(k int) int { return int(s.byte()) % k }

func (s *source) uint64() uint64 {
	var v uint64
	for range 8 {
		v = v<<8 | uint64(s.byte())
	}
	return v
}

// amount is 0 (a quarter of the time), a small amount (half), an amount
// within 2048 of 2^63-1, or any amount; when rare is set, the last two
// come 1 time in 32 each (a spend that large saturates committed at
// once).
func (s *source) amount(rare bool) money.Nano {
	k := s.n(8)
	if rare && k >= 6 {
		k = 6 + s.n(32)
	}
	switch k {
	case 0, 1:
		return 0
	case 6:
		return money.Nano(math.MaxInt64 - s.n(256)*8)
	case 7:
		return money.Nano(s.uint64() & math.MaxInt64)
	default:
		return money.Nano(s.n(256)*8 + s.n(8))
	}
}

// Requests decodes data into Sync calls: holders h0-h3, items on 1-3 of
// RandomKeys (a Key and some of the earlier ones as its Window, at times
// the Key itself again), random amounts (small ones, ones near 2^63-1,
// any; spends, and the leases of an
// item not enforced, rarely huge), time moving forward by up to 16 s a call (now and then back by up
// to 4 s: replicas' clocks differ), TTLs of 1-20 s, Seq mostly the
// holder's next and at times its last again or 0, and at times a negative
// amount. Every byte string is a valid input; the sequence ends when data
// does.
func Requests(data []byte) []lease.SyncRequest {
	var out []lease.SyncRequest
	for _, c := range decode(data, false) {
		out = append(out, c.Sync)
	}
	return out
}

// Call is one call of a random sequence: a Sync, or a SettleForfeit
// when Settle is not nil.
type Call struct {
	Sync   lease.SyncRequest
	Settle *lease.SettleForfeitRequest
}

// Calls decodes data like Requests, with a SettleForfeit about one call
// in eight: a holder and a counter of RandomKeys, a random Spent (small
// mostly, so that it falls near what the holder synced), at the time of
// the calls (then 0-15 s later), at times with an invalid Spent.
func Calls(data []byte) []Call { return decode(data, true) }

var holderIDs = []string{"h0", "h1", "h2", "h3"}

func decode(data []byte, settles bool) []Call {
	s := &source{data: data}
	var out []Call
	seq := map[string]uint64{}
	now := T0
	for s.i < len(s.data) {
		if settles && s.n(8) == 0 {
			now = now.Add(time.Duration(s.n(16)) * time.Second)
			r := lease.SettleForfeitRequest{Holder: holderIDs[s.n(4)], Now: now}
			r.Item.Key = RandomKeys[s.n(3)]
			r.Spent = s.amount(true)
			if s.n(32) == 0 {
				r.Spent = -1
			}
			out = append(out, Call{Settle: &r})
			continue
		}
		r := lease.SyncRequest{Holder: holderIDs[s.n(4)]}
		k := s.n(3)
		r.Item.Key = RandomKeys[k]
		bits := s.byte()
		for j := range k + 1 {
			if bits&(1<<j) != 0 {
				r.Item.Window = append(r.Item.Window, RandomKeys[j])
			}
		}
		r.Item.Enforce = s.n(5) != 0
		r.Item.Limit = s.amount(false)
		r.Commit, r.Reserved, r.Need = s.amount(true), s.amount(true), s.amount(true)
		r.Ask, r.Extra = s.amount(!r.Item.Enforce), s.amount(!r.Item.Enforce)
		if r.Need > 0 && s.n(2) == 0 {
			r.Reserved = r.Need
		}
		step := time.Duration(s.n(16))*time.Second + time.Duration(s.byte())*time.Millisecond
		if s.n(16) == 0 {
			step = -step / 4
		}
		now = now.Add(step)
		r.Now = now
		r.TTL = time.Duration(1+s.n(20)) * time.Second
		switch s.n(16) {
		case 0:
			r.Seq = seq[r.Holder]
		case 1:
			r.Seq = max(seq[r.Holder], 1) - 1
		default:
			seq[r.Holder]++
			r.Seq = seq[r.Holder]
		}
		if s.n(32) == 0 {
			r.Commit = -1
		}
		out = append(out, Call{Sync: r})
	}
	return out
}

// Check runs reqs on the Model and on got, one by one, and fails t unless
// both give the same reply (or both refuse the call as invalid) and
// state(key) equals the Model's State for every key of RandomKeys after
// every call. It also checks the invariant of an applied call on an
// enforced item: committed + leased over its counters is at most the
// Limit, or else the lease granted is exactly Need (Need is granted past
// the cap, nothing else is). The state may be nil to compare replies only.
func Check(t testing.TB, got lease.Backend, state func(key string) State, reqs []lease.SyncRequest) {
	t.Helper()
	calls := make([]Call, len(reqs))
	for i, r := range reqs {
		calls[i].Sync = r
	}
	check(t, got, nil, state, calls)
}

// CheckCalls is Check for a sequence with SettleForfeit calls: both must
// give the same reply (or both refuse the call, as invalid or for a live
// holder), and a refund is never above the forfeit settled.
func CheckCalls(t testing.TB, got Settler, state func(key string) State, calls []Call) {
	t.Helper()
	check(t, got, got, state, calls)
}

func check(t testing.TB, got lease.Backend, settler lease.ForfeitSettler, state func(key string) State, calls []Call) {
	t.Helper()
	ctx := context.Background()
	m := NewModel()
	for i, c := range calls {
		if c.Settle != nil {
			r := *c.Settle
			want, errW := m.SettleForfeit(ctx, r)
			have, errG := settler.SettleForfeit(ctx, r)
			switch {
			case errors.Is(errW, lease.ErrInvalid):
				require.ErrorIs(t, errG, lease.ErrInvalid, "call %d: %+v: the model refused it", i, r)
			case errors.Is(errW, lease.ErrHolderLive):
				require.ErrorIs(t, errG, lease.ErrHolderLive, "call %d: %+v: the model refused it", i, r)
			default:
				require.NoError(t, errW, "call %d: %+v", i, r)
				require.NoError(t, errG, "call %d: %+v", i, r)
				require.Equal(t, want, have, "call %d: %+v", i, r)
				require.LessOrEqual(t, have.Refund, have.Forfeit, "call %d: %+v", i, r)
			}
			if state != nil {
				for _, k := range RandomKeys {
					require.Equal(t, m.State(k), state(k), "call %d: %+v: counter %s", i, r, k)
				}
			}
			continue
		}
		r := c.Sync
		want, errW := m.Sync(ctx, r)
		have, errG := got.Sync(ctx, r)
		if errW != nil {
			require.ErrorIs(t, errW, lease.ErrInvalid, "call %d: %+v", i, r)
			require.True(t, errors.Is(errG, lease.ErrInvalid), "call %d: %+v: the model refused it, the backend said %v", i, r, errG)
			continue
		}
		require.NoError(t, errG, "call %d: %+v", i, r)
		require.Equal(t, want, have, "call %d: %+v", i, r)
		if have.Applied && r.Item.Enforce {
			total := Add(have.Committed, have.Leased)
			require.True(t, total <= r.Item.Limit || have.Lease == r.Need,
				"call %d: %+v: committed %v + leased %v over the limit with a lease %v above need", i, r, have.Committed, have.Leased, have.Lease)
		}
		if state != nil {
			for _, k := range RandomKeys {
				require.Equal(t, m.State(k), state(k), "call %d: %+v: counter %s", i, r, k)
			}
		}
	}
}
