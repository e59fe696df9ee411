package budget

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
)

func usd(s string) money.Nano {
	n, err := money.ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return n
}

// clock is the injected time of a test.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock(t time.Time) *clock {
	c := &clock{}
	c.set(t)
	return c
}
func (c *clock) now() time.Time      { return *c.t.Load() }
func (c *clock) set(t time.Time)     { c.t.Store(&t) }
func (c *clock) add(d time.Duration) { c.set(c.now().Add(d)) }

// failStore fails every call, to prove that a path makes none.
type failStore struct{}

var errDown = errors.New("store down")

func (failStore) Reserve(context.Context, string, money.Nano, []Item, time.Duration, time.Time) (Outcome, error) {
	return Outcome{}, errDown
}
func (failStore) Settle(context.Context, string, money.Nano, []Item, time.Time) error { return errDown }
func (failStore) Usage(context.Context, []Item, time.Time) ([]Counter, error)         { return nil, errDown }
func (failStore) Extend(context.Context, string, money.Nano, []Item, time.Duration, time.Time) (money.Nano, Outcome, error) {
	return 0, Outcome{}, errDown
}

type fixture struct {
	p     *Policies
	store TestStore
	clock *clock
	eng   *Engine
}

func newFixture(t *testing.T, src string, now string) *fixture {
	t.Helper()
	p, err := compileYAML(t, src)
	require.NoError(t, err)
	f := &fixture{p: p, store: NewTestStore(), clock: newClock(mustTime(t, now))}
	f.eng = NewEngine(f.store, f.clock.now)
	return f
}

// spend reserves and settles amount on the scopes of dims.
func (f *fixture) spend(t *testing.T, dims map[string]string, model string, amount money.Nano) {
	t.Helper()
	res, rej, err := f.eng.Reserve(context.Background(), f.p, f.p.Applicable(dims), model, amount, fmt.Sprint("seed-", f.clock.now().UnixNano(), amount))
	require.NoError(t, err)
	require.Nil(t, rej)
	require.NoError(t, f.eng.Settle(context.Background(), res, amount))
}

// commit adds amount to the committed spend of the scopes of dims,
// bypassing their caps.
func (f *fixture) commit(t *testing.T, dims map[string]string, amount money.Nano) {
	t.Helper()
	now := f.clock.now()
	require.NoError(t, f.store.Settle(context.Background(), "seed", amount, itemsFor(f.p.Applicable(dims), "", now), now))
}

var acme = map[string]string{"tenant": "acme", "team": "search", "user": "bob"}

func TestExhausted(t *testing.T) {
	const src = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    timezone: Europe/Berlin
    soft_usd: 800
    hard_usd: 1000
    on_hard: {allow_models: [free-tier-model]}
  - name: team-daily
    match: {team: "*"}
    period: day
    hard_usd: 50
  - name: soft-only
    period: day
    soft_usd: 1
`
	tenantOnly := map[string]string{"tenant": "acme"}
	tests := []struct {
		name   string
		dims   map[string]string
		spent  string
		model  string
		budget string // "" for no rejection
	}{
		{"below the cap", acme, "49.99", "", ""},
		{"team cap reached", acme, "50", "", "team-daily"},
		{"model not known yet and the budget has allow_models", tenantOnly, "1000", "", ""},
		{"allowed model passes", tenantOnly, "1000", "free-tier-model", ""},
		{"other model rejected", tenantOnly, "1000", "llama", "tenant-monthly"},
		{"first exhausted in configuration order", acme, "1000", "llama", "tenant-monthly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, src, "2026-11-15T10:00:00+01:00")
			f.commit(t, tt.dims, usd(tt.spent))
			rej, err := f.eng.Exhausted(context.Background(), f.p.Applicable(tt.dims), tt.model)
			require.NoError(t, err)
			if tt.budget == "" {
				assert.Nil(t, rej)
				return
			}
			require.NotNil(t, rej)
			assert.Equal(t, tt.budget, rej.Budget)
		})
	}
}

func TestExhaustedCountsReservations(t *testing.T) {
	f := newFixture(t, "budgets: [{name: fleet, period: day, hard_usd: 10}]", "2026-11-15T10:00:00Z")
	scopes := f.p.Applicable(nil)
	_, rej, err := f.eng.Reserve(context.Background(), f.p, scopes, "m", usd("10"), "in-flight")
	require.NoError(t, err)
	require.Nil(t, rej)
	rej, err = f.eng.Exhausted(context.Background(), scopes, "")
	require.NoError(t, err)
	require.NotNil(t, rej)
	assert.Equal(t, Rejection{Budget: "fleet", Scope: "all", Reserved: usd("10"), Hard: usd("10"),
		PeriodWord: "today", ResetsAt: mustTime(t, "2026-11-16T00:00:00Z")}, *rej)
}

func TestNoStoreCallWhenNothingCanApply(t *testing.T) {
	p, err := compileYAML(t, `
budgets:
  - {name: soft, period: day, soft_usd: 1, on_soft: {downgrade: {big: small}}}
  - {name: free, period: day, hard_usd: 1, on_hard: {allow_models: [free]}}
`)
	require.NoError(t, err)
	eng := NewEngine(failStore{}, nil)
	ctx, scopes := context.Background(), p.Applicable(nil)

	rej, err := eng.Exhausted(ctx, scopes, "")
	assert.NoError(t, err)
	assert.Nil(t, rej)
	res, rej, err := eng.Reserve(ctx, p, nil, "big", 1, "r")
	assert.NoError(t, err)
	assert.Nil(t, rej)
	assert.False(t, res.HasRemaining)
	assert.NoError(t, eng.Settle(ctx, res, 1))

	_, err = eng.Exhausted(ctx, scopes, "big")
	assert.ErrorIs(t, err, errDown)
	_, _, err = eng.Reserve(ctx, p, scopes, "big", 1, "r")
	assert.ErrorIs(t, err, errDown)
}

func TestReserve(t *testing.T) {
	const src = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    hard_usd: 100
    on_hard: {allow_models: [free-tier-model]}
  - name: team-daily
    match: {team: "*"}
    period: day
    hard_usd: 20
  - name: soft-only
    period: day
    soft_usd: 1
`
	tests := []struct {
		name          string
		spent, amount string
		model         string
		rejected      string // budget name
		remaining     string
		remainingIn   string
	}{
		{"fits", "5", "10", "llama", "", "5", "team-daily"},
		{"exactly fits", "5", "15", "llama", "", "0", "team-daily"},
		{"team would pass", "5", "15.000000001", "llama", "team-daily", "", ""},
		{"tenant would pass", "90", "11", "free", "tenant-monthly", "", ""},
		{"allowed model is not blocked but counts", "99", "2", "free-tier-model", "", "0", "tenant-monthly"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, src, "2026-11-15T10:00:00Z")
			ctx := context.Background()
			// Spread the earlier spend over teams so that only the tenant sees all of it.
			for i, left := 0, usd(tt.spent); left > 0; i++ {
				step := min(left, usd("5"))
				f.spend(t, map[string]string{"tenant": "acme", "team": fmt.Sprint("t", i)}, "free-tier-model", step)
				left -= step
			}
			dims := map[string]string{"tenant": "acme", "team": "t0"}
			scopes := f.p.Applicable(dims)
			before, err := f.eng.Status(ctx, scopes)
			require.NoError(t, err)

			res, rej, err := f.eng.Reserve(ctx, f.p, scopes, tt.model, usd(tt.amount), "req-1")
			require.NoError(t, err)
			after, err := f.eng.Status(ctx, scopes)
			require.NoError(t, err)
			if tt.rejected != "" {
				assert.Nil(t, res)
				require.NotNil(t, rej)
				assert.Equal(t, tt.rejected, rej.Budget)
				assert.Equal(t, usd(tt.amount), rej.Requested)
				assert.Equal(t, before, after, "all or nothing")
				return
			}
			require.Nil(t, rej)
			assert.Equal(t, "req-1", res.ID)
			assert.True(t, res.HasRemaining)
			assert.Equal(t, usd(tt.remaining), res.Remaining)
			assert.Equal(t, tt.remainingIn, res.RemainingBudget)
			for i := range after {
				assert.Equal(t, before[i].Reserved+usd(tt.amount), after[i].Reserved, after[i].Scope.Budget.Name())
			}
		})
	}
}

func TestSettle(t *testing.T) {
	f := newFixture(t, "budgets: [{name: fleet, period: day, hard_usd: 10}]\nlimits: {reservation_ttl: 1m}", "2026-11-15T10:00:00Z")
	ctx, scopes := context.Background(), f.p.Applicable(nil)
	res, _, err := f.eng.Reserve(ctx, f.p, scopes, "m", usd("6"), "r1")
	require.NoError(t, err)

	f.clock.add(time.Minute)
	st, err := f.eng.Status(ctx, scopes)
	require.NoError(t, err)
	assert.Equal(t, Counter{}, st[0].Counter, "the reservation expired after limits.reservation_ttl")

	require.NoError(t, f.eng.Settle(ctx, res, usd("4.5")))
	st, err = f.eng.Status(ctx, scopes)
	require.NoError(t, err)
	assert.Equal(t, Counter{Committed: usd("4.5")}, st[0].Counter, "spend is committed after expiry")
	assert.ErrorIs(t, f.eng.Settle(ctx, res, usd("4.5")), ErrSettled)
	assert.NoError(t, f.eng.Settle(ctx, nil, 1))

	_, _, err = f.eng.Reserve(ctx, f.p, scopes, "m", -1, "r2")
	assert.Error(t, err)
}

func TestSettleRetriesAfterStoreError(t *testing.T) {
	f := newFixture(t, "budgets: [{name: fleet, period: day, hard_usd: 10}]", "2026-11-15T10:00:00Z")
	ctx, scopes := context.Background(), f.p.Applicable(nil)
	res, _, err := f.eng.Reserve(ctx, f.p, scopes, "m", usd("6"), "r1")
	require.NoError(t, err)
	down := NewEngine(failStore{}, f.clock.now)
	assert.ErrorIs(t, down.Settle(ctx, res, usd("1")), errDown)
	assert.NoError(t, f.eng.Settle(ctx, res, usd("1")))
}

// TestSettleRefusesNegative: a negative actual never reaches the store
// (which would refuse it too) and leaves the reservation to settle.
func TestSettleRefusesNegative(t *testing.T) {
	f := newFixture(t, "budgets: [{name: fleet, period: day, hard_usd: 10}]", "2026-11-15T10:00:00Z")
	ctx, scopes := context.Background(), f.p.Applicable(nil)
	res, _, err := f.eng.Reserve(ctx, f.p, scopes, "m", usd("6"), "r1")
	require.NoError(t, err)
	down := NewEngine(failStore{}, f.clock.now)
	for _, n := range []money.Nano{-1, math.MinInt64} {
		err := down.Settle(ctx, res, n)
		assert.ErrorIs(t, err, ErrInvalidArgument)
		assert.NotErrorIs(t, err, errDown, "no store call")
	}
	require.NoError(t, f.eng.Settle(ctx, res, usd("2")))
	st, err := f.eng.Status(ctx, scopes)
	require.NoError(t, err)
	assert.Equal(t, Counter{Committed: usd("2")}, st[0].Counter)
}

func TestSoftDowngrade(t *testing.T) {
	const src = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    soft_usd: 80
    hard_usd: 100
    on_soft: {downgrade: {big: medium}}
  - name: team-daily
    match: {team: "*"}
    period: day
    soft_usd: 10
    on_soft: {downgrade: {big: small, medium: small}}
`
	tests := []struct {
		name, spent, amount, model string
		target, budget             string
	}{
		{"below both", "5", "1", "big", "", ""},
		{"reaching soft is not passing it", "5", "5", "big", "", ""},
		{"team passes", "5", "5.01", "big", "small", "team-daily"},
		{"both pass: configuration order", "85", "1", "big", "medium", "tenant-monthly"},
		{"unmapped model", "85", "1", "tiny", "", ""},
		{"one step only", "85", "1", "medium", "small", "team-daily"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, src, "2026-11-15T10:00:00Z")
			f.spend(t, acme, "big", usd(tt.spent))
			d := &sameClaim{}
			c := Claim{ID: "r1", Scopes: f.p.Applicable(acme), Model: tt.model, Amount: usd(tt.amount)}
			adm, err := f.eng.Admit(context.Background(), c, d.claim(c))
			require.NoError(t, err)
			assert.Equal(t, tt.target, adm.Downgrade)
			assert.Equal(t, tt.budget, adm.DowngradeBudget)
			assert.Equal(t, tt.target, d.asked, "the downgrader is asked only for a downgrade")
		})
	}
}

// TestConcurrentReserve: 100 requests race for a cap that fits exactly 10
// worst cases; exactly 10 are served and settled spend stays within the cap.
func TestConcurrentReserve(t *testing.T) {
	f := newFixture(t, `
budgets:
  - {name: tenant-daily, match: {tenant: "*"}, period: day, hard_usd: 30}
  - {name: fleet, period: day, hard_usd: 1000000}
`, "2026-11-15T10:00:00Z")
	ctx, scopes := context.Background(), f.p.Applicable(acme)
	var (
		wg       sync.WaitGroup
		mu       sync.Mutex
		served   []*Reservation
		rejected atomic.Int32
	)
	for i := range 100 {
		wg.Go(func() {
			res, rej, err := f.eng.Reserve(ctx, f.p, scopes, "m", usd("3"), fmt.Sprint("r", i))
			if !assert.NoError(t, err) {
				return
			}
			if rej != nil {
				assert.Equal(t, "tenant-daily", rej.Budget)
				rejected.Add(1)
				return
			}
			mu.Lock()
			served = append(served, res)
			mu.Unlock()
		})
	}
	wg.Wait()
	require.Len(t, served, 10)
	assert.Equal(t, int32(90), rejected.Load())
	for i, res := range served {
		wg.Go(func() { assert.NoError(t, f.eng.Settle(ctx, res, usd("3")-money.Nano(i))) })
	}
	wg.Wait()
	st, err := f.eng.Status(ctx, scopes)
	require.NoError(t, err)
	assert.Zero(t, st[0].Reserved)
	assert.LessOrEqual(t, st[0].Committed, usd("30"))
}

func TestRollingWindow(t *testing.T) {
	f := newFixture(t, `
budgets:
  - {name: runaway-agent-guard, match: {user: "*"}, rolling: 10m, hard_usd: 5}
`, "2026-11-15T10:00:30Z")
	ctx, scopes := context.Background(), f.p.Applicable(acme)
	f.spend(t, acme, "m", usd("4"))

	tests := []struct {
		after    time.Duration // since the spend at 10:00:30
		rejected bool
		resets   string
	}{
		{5 * time.Minute, true, "2026-11-15T10:16:00Z"},
		{10*time.Minute + 29*time.Second, true, "2026-11-15T10:21:00Z"}, // errs on the safe side by up to a bucket
		{10*time.Minute + 30*time.Second, false, ""},
	}
	start := f.clock.now()
	for _, tt := range tests {
		t.Run(tt.after.String(), func(t *testing.T) {
			f.clock.set(start.Add(tt.after))
			res, rej, err := f.eng.Reserve(ctx, f.p, scopes, "m", usd("2"), "r-"+tt.after.String())
			require.NoError(t, err)
			if !tt.rejected {
				assert.Nil(t, rej)
				assert.NoError(t, f.eng.Settle(ctx, res, 0))
				return
			}
			require.NotNil(t, rej)
			assert.Equal(t, "in the last 10m", rej.PeriodWord)
			assert.Equal(t, "user=bob", rej.Scope)
			assert.Equal(t, tt.resets, rej.ResetsAt.Format(time.RFC3339), "when all spend counted now has left the window")
		})
	}
}
