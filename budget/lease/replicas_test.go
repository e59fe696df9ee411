package lease_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/lease/leasetest"
	"github.com/spendguard/spendguard/internal/money"
)

var t0 = time.Date(2026, 12, 7, 12, 0, 0, 0, time.UTC)

// clock is a settable clock shared by replicas and their backend calls.
type clock struct{ ns atomic.Int64 }

func newClock() *clock {
	c := &clock{}
	c.ns.Store(t0.UnixNano())
	return c
}
func (c *clock) Now() time.Time          { return time.Unix(0, c.ns.Load()).UTC() }
func (c *clock) Advance(d time.Duration) { c.ns.Add(int64(d)) }

func replica(t testing.TB, b lease.Backend, clk *clock, name string) *lease.Store {
	t.Helper()
	s := lease.New(b, lease.Options{Holder: name, SyncInterval: -1, Now: clk.Now})
	t.Cleanup(func() { _ = s.Close(context.Background()) })
	return s
}

func capItem(key string, limit money.Nano) budget.Item {
	return budget.Item{Key: key, Limit: limit, Enforce: true, Expires: t0.Add(24 * time.Hour)}
}

// TestReplicasNeverOvershoot: four replicas of 25 workers each spend a
// shared cap until refused. Whatever the interleaving, the spend the
// backend holds after they close equals what the requests settled, and
// never passes the cap; the replicas stop only when the cap is nearly
// used (a refusal is early by at most what other replicas' leases hold).
func TestReplicasNeverOvershoot(t *testing.T) {
	for run := range 3 {
		t.Run(fmt.Sprint(run), func(t *testing.T) {
			m, clk := leasetest.NewModel(), newClock()
			const limit = 2_000_000
			it := capItem("cap|day|tenant=a@1", limit)
			var settled atomic.Int64
			var wg sync.WaitGroup
			stores := make([]*lease.Store, 4)
			for r := range stores {
				stores[r] = replica(t, m, clk, fmt.Sprintf("r%d", r))
			}
			var reqs atomic.Int64
			for r, s := range stores {
				for w := range 25 {
					wg.Add(1)
					go func() {
						defer wg.Done()
						rng := rand.New(rand.NewPCG(uint64(run), uint64(r*100+w)))
						refusals := 0
						for i := 0; refusals < 3; i++ {
							id := fmt.Sprintf("r%d-w%d-%d", r, w, i)
							amount := money.Nano(1 + rng.IntN(1000))
							out, err := s.Reserve(context.Background(), id, amount, []budget.Item{it}, time.Minute, clk.Now())
							if !assert.NoError(t, err) {
								return
							}
							if !out.OK() {
								refusals++
								continue
							}
							reqs.Add(1)
							actual := money.Nano(rng.Int64N(int64(amount) + 1))
							assert.NoError(t, s.Settle(context.Background(), id, actual, []budget.Item{it}, clk.Now()))
							settled.Add(int64(actual))
							if i%50 == 0 {
								assert.NoError(t, s.Flush(context.Background()))
							}
						}
					}()
				}
			}
			wg.Wait()
			for _, s := range stores {
				require.NoError(t, s.Close(context.Background()))
			}
			st := m.State(it.Key)
			t.Logf("%d requests admitted, %v of %v nano-USD spent, %d syncs", reqs.Load(), st.Committed, limit, syncs(stores))
			assert.Equal(t, money.Nano(settled.Load()), st.Committed, "the backend holds exactly what was settled")
			assert.LessOrEqual(t, st.Committed, money.Nano(limit))
			assert.Zero(t, st.Leased, "every lease given back at Close")
			// Refusals come once the cap is nearly used: what is left is
			// at most a few requests' worth per replica.
			assert.Greater(t, st.Committed, money.Nano(limit)*8/10, "%d requests admitted", reqs.Load())
		})
	}
}

// TestFarFromTheCapFewRoundTrips: a replica far from its cap talks to the
// backend a few times per sync interval, not per request; near the cap,
// at most once per request.
func TestFarFromTheCapFewRoundTrips(t *testing.T) {
	m, clk := leasetest.NewModel(), newClock()
	s := replica(t, m, clk, "r")
	tenant, fleet := capItem("t|day|tenant=a@1", 1_000*money.PerUSD), capItem("f|day|@1", 10_000*money.PerUSD)
	items := []budget.Item{tenant, fleet}
	const n = 10_000
	ctx := context.Background()
	for i := range n {
		if i%100 == 0 { // a sync interval passes every 100 requests
			clk.Advance(lease.DefaultSyncInterval)
			require.NoError(t, s.Flush(ctx))
		}
		id := fmt.Sprint("req-", i)
		out, err := s.Reserve(ctx, id, 50_000, items, time.Minute, clk.Now())
		require.NoError(t, err)
		require.True(t, out.OK())
		require.NoError(t, s.Settle(ctx, id, 30_000, items, clk.Now()))
	}
	require.NoError(t, s.Close(ctx))
	perRequest := float64(s.Stats().Syncs) / n
	t.Logf("%d syncs for %d requests of two budgets: %.4f round trips per request", s.Stats().Syncs, n, perRequest)
	assert.LessOrEqual(t, perRequest, 0.1)
	assert.Equal(t, money.Nano(n*30_000), m.State(tenant.Key).Committed)
	assert.Equal(t, money.Nano(n*30_000), m.State(fleet.Key).Committed)

	// Near the cap: a cap for exactly 20 requests of 50,000 on a fresh
	// replica.
	near := capItem("t|day|tenant=b@1", 20*50_000)
	s2 := replica(t, m, clk, "r2")
	before := s2.Stats().Syncs
	admitted := 0
	for i := range 25 {
		out, err := s2.Reserve(ctx, fmt.Sprint("near-", i), 50_000, []budget.Item{near}, time.Minute, clk.Now())
		require.NoError(t, err)
		if out.OK() {
			admitted++
		}
	}
	assert.Equal(t, 20, admitted, "exactly the cap")
	assert.LessOrEqual(t, s2.Stats().Syncs-before, uint64(25), "at most one round trip per request")
}

// failing is a Backend that applies a call and then reports it lost, on
// the calls numbered in fail.
type failing struct {
	lease.Backend
	mu   sync.Mutex
	n    int
	fail map[int]bool
}

func (f *failing) Sync(ctx context.Context, r lease.SyncRequest) (lease.SyncReply, error) {
	f.mu.Lock()
	f.n++
	lose := f.fail[f.n]
	f.mu.Unlock()
	rep, err := f.Backend.Sync(ctx, r)
	if lose {
		return lease.SyncReply{}, fmt.Errorf("redis: i/o timeout: %w", context.DeadlineExceeded)
	}
	return rep, err
}

// TestLostRepliesCountOnce: syncs applied by the backend whose replies
// were lost are sent again with their sequence numbers, and the spend
// they carried is counted once.
func TestLostRepliesCountOnce(t *testing.T) {
	m, clk := leasetest.NewModel(), newClock()
	f := &failing{Backend: m, fail: map[int]bool{2: true, 3: true, 5: true}}
	s := replica(t, f, clk, "r")
	it := capItem("t|day|tenant=a@1", money.PerUSD)
	ctx := context.Background()
	var want money.Nano
	for i := range 40 {
		id := fmt.Sprint("req-", i)
		out, err := s.Reserve(ctx, id, 1000, []budget.Item{it}, time.Minute, clk.Now())
		if err != nil {
			require.ErrorIs(t, err, context.DeadlineExceeded)
			continue
		}
		require.True(t, out.OK())
		require.NoError(t, s.Settle(ctx, id, 700, []budget.Item{it}, clk.Now()))
		want += 700
		if i%5 == 4 {
			clk.Advance(lease.DefaultSyncInterval)
			if err := s.Flush(ctx); err != nil {
				require.ErrorIs(t, err, context.DeadlineExceeded)
			}
		}
	}
	require.NoError(t, s.Close(ctx))
	assert.Equal(t, want, m.State(it.Key).Committed)
	assert.Zero(t, m.State(it.Key).Leased)
}

// TestCrashedReplicaForfeitsItsLease: a replica that stops without
// Close leaves a lease; once it expires the backend counts it as spent
// (more than the truth by at most the lease), and the other replicas
// are never admitted past the cap meanwhile.
func TestCrashedReplicaForfeitsItsLease(t *testing.T) {
	m, clk := leasetest.NewModel(), newClock()
	it := capItem("t|day|tenant=a@1", 1_000_000)
	ctx := context.Background()
	crashed := lease.New(m, lease.Options{Holder: "crashed", SyncInterval: -1, Now: clk.Now})
	out, err := crashed.Reserve(ctx, "a", 100_000, []budget.Item{it}, time.Minute, clk.Now())
	require.NoError(t, err)
	require.True(t, out.OK())
	require.NoError(t, crashed.Settle(ctx, "a", 60_000, []budget.Item{it}, clk.Now()))
	held := m.State(it.Key).Holders["crashed"].Lease
	require.Positive(t, held)
	// crashed is never closed: its 60,000 of spend never reach the backend.

	other := replica(t, m, clk, "other")
	admitted := money.Nano(0)
	for i := 0; ; i++ {
		out, err := other.Reserve(ctx, fmt.Sprint("b", i), 10_000, []budget.Item{it}, time.Minute, clk.Now())
		require.NoError(t, err)
		if !out.OK() {
			break
		}
		admitted += 10_000
	}
	assert.LessOrEqual(t, admitted+held, money.Nano(1_000_000), "the crashed replica's lease stays out of reach")

	clk.Advance(lease.DefaultLeaseTTL + time.Second)
	_, err = other.Reserve(ctx, "after", 10_000, []budget.Item{it}, time.Minute, clk.Now())
	require.NoError(t, err)
	st := m.State(it.Key)
	assert.Equal(t, held, st.Holders["crashed"].Forfeit, "the expired lease is forfeited")
	assert.GreaterOrEqual(t, st.Committed, money.Nano(60_000), "its spend is counted: more than the truth, never less")
	assert.LessOrEqual(t, st.Committed-60_000, held, "by at most the lease")
}

// TestForgetAsksAgain: after the backend lost its data, Forget makes
// every counter sync again, and spend settled meanwhile is sent.
func TestForgetAsksAgain(t *testing.T) {
	m, clk := leasetest.NewModel(), newClock()
	s := replica(t, m, clk, "r")
	it := capItem("t|day|tenant=a@1", 1_000_000)
	ctx := context.Background()
	out, err := s.Reserve(ctx, "a", 1000, []budget.Item{it}, time.Minute, clk.Now())
	require.NoError(t, err)
	require.True(t, out.OK())
	require.NoError(t, s.Settle(ctx, "a", 800, []budget.Item{it}, clk.Now()))

	fresh := leasetest.NewModel() // the same backend after losing its data
	sw := &swap{b: m}
	s3 := replica(t, sw, clk, "r3")
	out, err = s3.Reserve(ctx, "b", 1000, []budget.Item{it}, time.Minute, clk.Now())
	require.NoError(t, err)
	require.True(t, out.OK())
	sw.set(fresh)
	s3.Forget()
	syncs := s3.Stats().Syncs
	out, err = s3.Reserve(ctx, "c", 1000, []budget.Item{it}, time.Minute, clk.Now())
	require.NoError(t, err)
	require.True(t, out.OK())
	assert.Equal(t, syncs+1, s3.Stats().Syncs, "the lease is asked for again")
	st := fresh.State(it.Key)
	assert.GreaterOrEqual(t, st.Holders["r3"].Lease, money.Nano(2000), "the new lease covers both live reservations")
}

type swap struct {
	mu sync.Mutex
	b  lease.Backend
}

func (s *swap) set(b lease.Backend) { s.mu.Lock(); s.b = b; s.mu.Unlock() }
func (s *swap) Sync(ctx context.Context, r lease.SyncRequest) (lease.SyncReply, error) {
	s.mu.Lock()
	b := s.b
	s.mu.Unlock()
	return b.Sync(ctx, r)
}

func syncs(stores []*lease.Store) uint64 {
	var n uint64
	for _, s := range stores {
		n += s.Stats().Syncs
	}
	return n
}
