package budget

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
)

// countingStore counts the calls that reach a store.
type countingStore struct {
	Store
	calls int
}

func (c *countingStore) Reserve(ctx context.Context, id string, amount money.Nano, items []Item, ttl time.Duration, now time.Time) (Outcome, error) {
	c.calls++
	return c.Store.Reserve(ctx, id, amount, items, ttl, now)
}

func (c *countingStore) Settle(ctx context.Context, id string, actual money.Nano, items []Item, now time.Time) error {
	c.calls++
	return c.Store.Settle(ctx, id, actual, items, now)
}

func (c *countingStore) Extend(ctx context.Context, id string, want money.Nano, items []Item, ttl time.Duration, now time.Time) (money.Nano, Outcome, error) {
	c.calls++
	return c.Store.Extend(ctx, id, want, items, ttl, now)
}

func (c *countingStore) Usage(ctx context.Context, items []Item, now time.Time) ([]Counter, error) {
	c.calls++
	return c.Store.Usage(ctx, items, now)
}

// refSoftDowngrade is the soft-cap decision taken on its own, the way the
// engine took it before Admit took it on the reservation's counters: the
// model to serve instead of model and the budget that decides it, from a
// Usage call on the scopes that map model.
func refSoftDowngrade(ctx context.Context, e *Engine, scopes []Scope, model string, amount money.Nano) (target, budget string, err error) {
	now := e.now()
	var cand []Scope
	for _, s := range scopes {
		if _, ok := s.Budget.downgrade[model]; ok && s.Budget.hasSoft {
			cand = append(cand, s)
		}
	}
	if len(cand) == 0 {
		return "", "", nil
	}
	counters, err := e.store.Usage(ctx, e.keys.items(cand, model, now), now)
	if err != nil {
		return "", "", err
	}
	for i, c := range counters {
		b := cand[i].Budget
		if money.Add(c.Used(), amount) > b.soft {
			return b.downgrade[model], b.name, nil
		}
	}
	return "", "", nil
}

// sameClaim is a Downgrader that serves the target on the same scopes at
// the price it is told (the requested amount when price is 0), and
// remembers the target it was asked for; decline makes it keep the
// requested model.
type sameClaim struct {
	price   money.Nano
	decline bool
	asked   string
}

func (d *sameClaim) claim(c Claim) Downgrader { return &downgrading{d: d, c: c} }

type downgrading struct {
	d *sameClaim
	c Claim
}

func (g *downgrading) Downgrade(target string) (Claim, bool) {
	g.d.asked = target
	c := g.c
	c.ID, c.Model = c.ID+"-downgraded", target
	if g.d.price > 0 {
		c.Amount = g.d.price
	}
	return c, !g.d.decline
}

// TestAdmitDecidesAsSoftDowngradeAndReserve runs every case of
// TestSoftDowngrade, and hard-cap refusals, through Admit and through the
// reference decision then Reserve on the same state: the same decisions,
// with one store call unless a downgrade releases what was reserved and
// reserves the cheaper model (three); a downgrader that declines leaves
// Reserve's outcome for the requested model, in one call.
func TestAdmitDecidesAsSoftDowngradeAndReserve(t *testing.T) {
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
		refused                    bool
	}{
		{"below both", "5", "1", "big", "", "", false},
		{"reaching soft is not passing it", "5", "5", "big", "", "", false},
		{"team passes", "5", "5.01", "big", "small", "team-daily", false},
		{"both pass: configuration order", "85", "1", "big", "medium", "tenant-monthly", false},
		{"unmapped model", "85", "1", "tiny", "", "", false},
		{"one step only", "85", "1", "medium", "small", "team-daily", false},
		{"hard cap refuses an unmapped model", "85", "20", "tiny", "", "", true},
		{"hard cap would refuse, but the soft cap downgrades first", "85", "20", "big", "medium", "tenant-monthly", false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, src, "2026-11-15T10:00:00Z")
			f.spend(t, acme, "big", usd(tt.spent))
			scopes := f.p.Applicable(acme)
			target, budget, err := refSoftDowngrade(ctx, f.eng, scopes, tt.model, usd(tt.amount))
			require.NoError(t, err)
			require.Equal(t, tt.target, target, "the reference decision")
			require.Equal(t, tt.budget, budget)

			store := &countingStore{Store: f.store}
			eng := NewEngine(store, f.clock.now)
			c := Claim{ID: "r1", Scopes: scopes, Model: tt.model, Amount: usd(tt.amount), TTL: f.p.ReservationTTL()}
			cheaper := &sameClaim{price: usd("0.5")}
			adm, err := eng.Admit(ctx, c, cheaper.claim(c))
			require.NoError(t, err)
			assert.Equal(t, tt.target, adm.Downgrade)
			assert.Equal(t, tt.budget, adm.DowngradeBudget)
			assert.Equal(t, tt.target, cheaper.asked)
			held := usd(tt.amount)
			switch {
			case tt.target != "":
				require.NotNil(t, adm.Reservation, "the cheaper model is reserved")
				assert.Nil(t, adm.Rejection)
				assert.Equal(t, "r1-downgraded", adm.Reservation.ID)
				calls := 3 // reserve, release, reserve the cheaper model
				if usd(tt.spent)+usd(tt.amount) > usd("100") {
					calls = 2 // the hard cap refused the first: nothing to release
				}
				assert.Equal(t, calls, store.calls)
				held = cheaper.price
			case tt.refused:
				assert.Nil(t, adm.Reservation)
				require.NotNil(t, adm.Rejection)
				assert.Equal(t, "tenant-monthly", adm.Rejection.Budget)
				assert.Equal(t, 1, store.calls)
			default:
				require.NotNil(t, adm.Reservation)
				assert.Nil(t, adm.Rejection)
				assert.Equal(t, 1, store.calls, "one round trip to admit")
			}
			for _, st := range status(t, f, scopes) {
				want := money.Nano(0)
				if adm.Reservation != nil {
					want = held
				}
				assert.Equal(t, want, st.Reserved, "%s: released unless admitted", st.Scope.Budget.Name())
			}
			if adm.Reservation != nil {
				require.NoError(t, eng.Settle(ctx, adm.Reservation, 0))
			}

			store.calls = 0
			declines := &sameClaim{decline: true}
			c.ID = "r2"
			adm, err = eng.Admit(ctx, c, declines.claim(c))
			require.NoError(t, err)
			assert.Equal(t, tt.target, declines.asked)
			assert.Empty(t, adm.Downgrade, "a declined downgrade serves the requested model")
			assert.Equal(t, 1, store.calls)
			if adm.Reservation != nil {
				require.NoError(t, eng.Settle(ctx, adm.Reservation, 0))
			}
			res, rej, err := f.eng.Reserve(ctx, f.p, scopes, tt.model, usd(tt.amount), "r3")
			require.NoError(t, err)
			assert.Equal(t, rej == nil, adm.Rejection == nil, "Reserve's outcome")
			assert.Equal(t, res == nil, adm.Reservation == nil)
		})
	}
}

func status(t *testing.T, f *fixture, scopes []Scope) []State {
	t.Helper()
	st, err := f.eng.Status(context.Background(), scopes)
	require.NoError(t, err)
	return st
}
