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

func (c *countingStore) Usage(ctx context.Context, items []Item, now time.Time) ([]Counter, error) {
	c.calls++
	return c.Store.Usage(ctx, items, now)
}

// TestAdmitDecidesAsSoftDowngradeAndReserve runs every case of
// TestSoftDowngrade, and hard-cap refusals, through Admit and through
// SoftDowngrade then Reserve on the same state: the same decisions, with
// one store call unless a downgrade has to release what was reserved.
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
			target, budget, err := f.eng.SoftDowngrade(ctx, scopes, tt.model, usd(tt.amount))
			require.NoError(t, err)
			require.Equal(t, tt.target, target, "the reference decision")
			require.Equal(t, tt.budget, budget)

			store := &countingStore{Store: f.store}
			adm, err := NewEngine(store, f.clock.now).Admit(ctx, f.p, scopes, tt.model, usd(tt.amount), "r1")
			require.NoError(t, err)
			assert.Equal(t, tt.target, adm.Downgrade)
			assert.Equal(t, tt.budget, adm.DowngradeBudget)
			switch {
			case tt.target != "":
				assert.Nil(t, adm.Reservation, "nothing is held for a downgrade")
				assert.Nil(t, adm.Rejection)
				assert.LessOrEqual(t, store.calls, 2, "a reservation made is released")
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
					want = usd(tt.amount)
				}
				assert.Equal(t, want, st.Reserved, "%s: released unless admitted", st.Scope.Budget.Name())
			}
		})
	}
}

func status(t *testing.T, f *fixture, scopes []Scope) []State {
	t.Helper()
	st, err := f.eng.Status(context.Background(), scopes)
	require.NoError(t, err)
	return st
}
