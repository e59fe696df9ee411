package budget

import (
	"context"
	"fmt"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
)

const extendSrc = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    hard_usd: 100
  - name: team-daily
    match: {team: "*"}
    period: day
    hard_usd: 20
  - name: soft-only
    period: day
    soft_usd: 1
`

// counters returns the committed and reserved amounts of scopes, in order.
func (f *fixture) counters(t *testing.T, scopes []Scope) []Counter {
	t.Helper()
	st, err := f.eng.Status(context.Background(), scopes)
	require.NoError(t, err)
	out := make([]Counter, len(st))
	for i, s := range st {
		out[i] = s.Counter
	}
	return out
}

func TestExtend(t *testing.T) {
	f := newFixture(t, extendSrc, "2026-11-15T10:00:00Z")
	ctx, scopes := context.Background(), f.p.Applicable(acme)
	res, rej, err := f.eng.Reserve(ctx, f.p, scopes, "llama", usd("5"), "r1")
	require.NoError(t, err)
	require.Nil(t, rej)
	require.Equal(t, usd("15"), res.Remaining)

	granted, err := f.eng.Extend(ctx, res, usd("4"), 0)
	require.NoError(t, err)
	assert.Equal(t, usd("4"), granted)
	assert.Equal(t, usd("9"), res.Amount)
	assert.Equal(t, usd("11"), res.Remaining, "refreshed from the store's counters")
	assert.Equal(t, "team-daily", res.RemainingBudget)
	assert.True(t, res.HasRemaining)

	f.commit(t, map[string]string{"tenant": "acme"}, usd("85")) // the tenant: 85 + 9 of 100
	granted, err = f.eng.Extend(ctx, res, usd("10"), 0)
	require.NoError(t, err)
	assert.Equal(t, usd("6"), granted, "what the tightest budget has left")
	assert.Equal(t, usd("15"), res.Amount)
	assert.Equal(t, money.Nano(0), res.Remaining)
	assert.Equal(t, "tenant-monthly", res.RemainingBudget)

	granted, err = f.eng.Extend(ctx, res, 1, 0)
	require.NoError(t, err)
	assert.Zero(t, granted, "a full budget grants nothing")
	assert.Equal(t, usd("15"), res.Amount)
	assert.Equal(t, []Counter{{Committed: usd("85"), Reserved: usd("15")}, {Reserved: usd("15")}, {Committed: usd("85"), Reserved: usd("15")}},
		f.counters(t, scopes), "soft-only applies to the tenant too")

	require.NoError(t, f.eng.Settle(ctx, res, usd("12")))
	assert.Equal(t, []Counter{{Committed: usd("97")}, {Committed: usd("12")}, {Committed: usd("97")}}, f.counters(t, scopes),
		"Settle released the reservation with every extension")
	_, err = f.eng.Extend(ctx, res, 1, 0)
	assert.ErrorIs(t, err, ErrSettled)
}

func TestExtendRenewsTTL(t *testing.T) {
	f := newFixture(t, extendSrc+"limits: {reservation_ttl: 1m}\n", "2026-11-15T10:00:00Z")
	ctx, scopes := context.Background(), f.p.Applicable(acme)
	res, _, err := f.eng.Reserve(ctx, f.p, scopes, "llama", usd("5"), "r1")
	require.NoError(t, err)

	f.clock.add(50 * time.Second)
	_, err = f.eng.Extend(ctx, res, usd("1"), 0)
	require.NoError(t, err)
	f.clock.add(DefaultReservationTTL - time.Second)
	assert.Equal(t, usd("6"), f.counters(t, scopes)[1].Reserved, "ttl 0 renews for DefaultReservationTTL")

	_, err = f.eng.Extend(ctx, res, 0, time.Minute)
	require.NoError(t, err)
	f.clock.add(time.Minute - time.Second)
	assert.Equal(t, usd("6"), f.counters(t, scopes)[1].Reserved)
	f.clock.add(time.Second)
	assert.Equal(t, Counter{}, f.counters(t, scopes)[1], "expired a ttl after the last Extend")

	granted, err := f.eng.Extend(ctx, res, usd("2"), 0)
	require.NoError(t, err)
	assert.Equal(t, usd("2"), granted)
	assert.Equal(t, usd("2"), f.counters(t, scopes)[1].Reserved, "held again, for the grant alone")
	assert.Equal(t, usd("18"), res.Remaining)
	require.NoError(t, f.eng.Settle(ctx, res, usd("1")))
	assert.Equal(t, Counter{Committed: usd("1")}, f.counters(t, scopes)[1])
}

func TestExtendWithoutBudgets(t *testing.T) {
	p, err := compileYAML(t, extendSrc)
	require.NoError(t, err)
	eng, ctx := NewEngine(failStore{}, nil), context.Background()
	res, _, err := eng.Reserve(ctx, p, nil, "llama", usd("1"), "r1")
	require.NoError(t, err)
	granted, err := eng.Extend(ctx, res, usd("3"), time.Minute)
	require.NoError(t, err, "no store call")
	assert.Equal(t, usd("3"), granted)
	assert.Equal(t, usd("4"), res.Amount)
	assert.False(t, res.HasRemaining)
	require.NoError(t, eng.Settle(ctx, res, 0))
	_, err = eng.Extend(ctx, res, 1, time.Minute)
	assert.ErrorIs(t, err, ErrSettled)
}

func TestExtendRefuses(t *testing.T) {
	f := newFixture(t, extendSrc, "2026-11-15T10:00:00Z")
	ctx, scopes := context.Background(), f.p.Applicable(acme)
	res, _, err := f.eng.Reserve(ctx, f.p, scopes, "llama", usd("5"), "r1")
	require.NoError(t, err)
	down := NewEngine(failStore{}, f.clock.now)

	for _, want := range []money.Nano{-1, money.Nano(-1) << 62} {
		_, err := down.Extend(ctx, res, want, 0)
		assert.ErrorIs(t, err, ErrInvalidArgument)
		assert.NotErrorIs(t, err, errDown, "no store call")
	}
	_, err = down.Extend(ctx, nil, 1, 0)
	assert.ErrorIs(t, err, ErrInvalidArgument)

	granted, err := down.Extend(ctx, res, usd("1"), 0)
	assert.ErrorIs(t, err, errDown)
	assert.Zero(t, granted)
	assert.Equal(t, usd("5"), res.Amount, "nothing granted")
	assert.Equal(t, usd("15"), res.Remaining)

	require.NoError(t, f.eng.Settle(ctx, res, 0))
	_, err = down.Extend(ctx, res, 1, 0)
	assert.ErrorIs(t, err, ErrSettled, "checked before any store call")
}

// gateStore holds every Extend until release is closed or a Settle
// reaches the store, and records the order in which calls reached it.
type gateStore struct {
	TestStore
	entered, release chan struct{}
	settling         chan struct{} // closed by the first Settle
	once             sync.Once
	mu               sync.Mutex
	order            []string
}

func (g *gateStore) record(op string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.order = append(g.order, op)
}

func (g *gateStore) Extend(ctx context.Context, id string, want money.Nano, items []Item, ttl time.Duration, now time.Time) (money.Nano, Outcome, error) {
	close(g.entered)
	select {
	case <-g.release:
	case <-g.settling:
	}
	g.record("extend")
	return g.TestStore.Extend(ctx, id, want, items, ttl, now)
}

func (g *gateStore) Settle(ctx context.Context, id string, actual money.Nano, items []Item, now time.Time) error {
	g.once.Do(func() { close(g.settling) })
	g.record("settle")
	return g.TestStore.Settle(ctx, id, actual, items, now)
}

// TestSettleWaitsForExtend: a Settle that comes while an Extend is in
// the store reaches the store after it, so it releases the extension; a
// Settle that went first would leave the Extend to hold its grant again
// until the TTL.
func TestSettleWaitsForExtend(t *testing.T) {
	f := newFixture(t, extendSrc, "2026-11-15T10:00:00Z")
	g := &gateStore{TestStore: f.store, entered: make(chan struct{}), release: make(chan struct{}), settling: make(chan struct{})}
	eng := NewEngine(g, f.clock.now)
	ctx, scopes := context.Background(), f.p.Applicable(acme)
	res, _, err := eng.Reserve(ctx, f.p, scopes, "llama", usd("5"), "r1")
	require.NoError(t, err)

	var wg sync.WaitGroup
	wg.Go(func() {
		granted, err := eng.Extend(ctx, res, usd("3"), 0)
		assert.NoError(t, err)
		assert.Equal(t, usd("3"), granted)
	})
	<-g.entered
	wg.Go(func() { assert.NoError(t, eng.Settle(ctx, res, usd("7"))) })
	for range 100 { // give the Settle every chance to overtake
		runtime.Gosched()
	}
	close(g.release)
	wg.Wait()
	assert.Equal(t, []string{"extend", "settle"}, g.order)
	assert.Equal(t, []Counter{{Committed: usd("7")}, {Committed: usd("7")}, {Committed: usd("7")}}, f.counters(t, scopes),
		"nothing left reserved")
}

// TestExtendRacesSettle: a stream extends its reservation in a loop while
// another goroutine settles it; whatever the interleaving, nothing stays
// reserved and the stream stops at ErrSettled. Run with -race.
func TestExtendRacesSettle(t *testing.T) {
	f := newFixture(t, extendSrc, "2026-11-15T10:00:00Z")
	ctx, scopes := context.Background(), f.p.Applicable(acme)
	for i := range 50 {
		res, rej, err := f.eng.Reserve(ctx, f.p, scopes, "llama", 1000, fmt.Sprint("r", i))
		require.NoError(t, err)
		require.Nil(t, rej)
		first := make(chan struct{})
		var wg sync.WaitGroup
		wg.Go(func() {
			for n := 0; ; n++ {
				_, err := f.eng.Extend(ctx, res, 10, 0)
				if n == 0 {
					close(first)
				}
				if err != nil {
					assert.ErrorIs(t, err, ErrSettled)
					return
				}
			}
		})
		<-first
		require.NoError(t, f.eng.Settle(ctx, res, 1))
		wg.Wait()
	}
	for _, c := range f.counters(t, scopes) {
		assert.Equal(t, Counter{Committed: 50}, c)
	}
}
