package lease_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/lease/leasetest"
	"github.com/spendguard/spendguard/internal/money"
)

// FuzzLeaseReplicas drives two replicas on one Model with any sequence
// of reserves, extends, settles, syncs, reads and time steps (past the
// lease TTL too, as for a replica cut off from Redis), over a capped
// counter and an uncapped one. After every step what the requests hold
// and settled stays within the cap (each settles at most what it
// reserved), and the backend's committed spend is at most what was
// settled plus the forfeited leases not yet credited back; after both
// replicas close, it is exactly that, and no lease is left.
func FuzzLeaseReplicas(f *testing.F) {
	f.Add([]byte{0, 10, 1, 20, 2, 5, 3, 0, 4, 1, 0, 200, 1, 250, 5, 0})
	f.Add([]byte{0, 255, 0, 255, 0, 255, 1, 255, 2, 128, 3, 3, 4, 4, 6, 9})
	f.Fuzz(func(t *testing.T, ops []byte) {
		// A sequence that hangs fails, with its input saved, instead of
		// stalling the fuzzer.
		watchdog := time.AfterFunc(10*time.Second, func() { panic(fmt.Sprintf("FuzzLeaseReplicas hangs on %x", ops)) })
		defer watchdog.Stop()
		const limit = money.Nano(2_000)
		m, clk := leasetest.NewModel(), newClock()
		capped := budget.Item{Key: "c@1", Limit: limit, Enforce: true}
		free := budget.Item{Key: "f@1"}
		items := []budget.Item{capped, free}
		rs := []*lease.Store{
			lease.New(m, lease.Options{Holder: "a", SyncInterval: -1, Now: clk.Now}),
			lease.New(m, lease.Options{Holder: "b", SyncInterval: -1, Now: clk.Now}),
		}
		ctx := context.Background()
		type live struct {
			r      int
			amount money.Nano
		}
		open := map[string]live{}
		var settled money.Nano
		n := 0
		for i := 0; i+1 < len(ops) && i < 400; i += 2 {
			op, arg := ops[i]%7, ops[i+1]
			r := int(arg) % 2
			s := rs[r]
			switch op {
			case 0, 1: // reserve
				n++
				id := fmt.Sprint("q", n)
				amount := money.Nano(arg) * 3
				out, err := s.Reserve(ctx, id, amount, items, time.Hour, clk.Now())
				if err != nil {
					t.Fatal(err)
				}
				if out.OK() {
					open[id] = live{r, amount}
				}
			case 2: // extend the oldest live reservation of replica r
				for id, l := range open {
					if l.r != r {
						continue
					}
					got, _, err := s.Extend(ctx, id, money.Nano(arg), items, time.Hour, clk.Now())
					if err != nil {
						t.Fatal(err)
					}
					if got < 0 || got > money.Nano(arg) {
						t.Fatalf("granted %v of %v", got, arg)
					}
					open[id] = live{r, l.amount + got}
					break
				}
			case 3: // settle one live reservation, at most what it holds
				for id, l := range open {
					actual := l.amount * money.Nano(arg%4) / 3
					if err := rs[l.r].Settle(ctx, id, actual, items, clk.Now()); err != nil {
						t.Fatal(err)
					}
					settled += actual
					delete(open, id)
					break
				}
			case 4:
				if err := s.Flush(ctx); err != nil {
					t.Fatal(err)
				}
			case 5:
				clk.Advance(time.Duration(arg) * 10 * time.Millisecond)
			case 6:
				if _, err := s.Usage(ctx, items, clk.Now()); err != nil {
					t.Fatal(err)
				}
			}
			var held money.Nano
			for _, l := range open {
				held += l.amount
			}
			st := m.State(capped.Key)
			// Spend settled but not sent yet is not in committed; a lease
			// that expired unrenewed (time steps past its TTL) is, in
			// full, as a forfeit.
			if st.Committed > settled+forfeits(st) || held+settled > limit {
				t.Fatalf("step %d: %+v, settled %v, held %v, cap %v", i/2, st, settled, held, limit)
			}
		}
		for id, l := range open {
			if err := rs[l.r].Settle(ctx, id, 0, items, clk.Now()); err != nil {
				t.Fatal(err)
			}
		}
		for _, s := range rs {
			if err := s.Close(ctx); err != nil {
				t.Fatal(err)
			}
		}
		if st := m.State(capped.Key); st.Committed != settled+forfeits(st) || st.Leased != 0 {
			t.Fatalf("after close: %+v, settled %v", st, settled)
		}
		if st := m.State(free.Key); st.Committed != settled {
			t.Fatalf("uncapped counter after close: %+v, settled %v", st, settled)
		}
	})
}

// forfeits is the forfeited leases of st not yet credited back.
func forfeits(st leasetest.State) money.Nano {
	var f money.Nano
	for _, h := range st.Holders {
		f += h.Forfeit
	}
	return f
}
