package budget

import (
	"context"
	"fmt"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
)

// lowerSrc has a tenant budget that lowers output limits, a team budget
// that refuses, and a user budget without a hard cap (never enforced).
const lowerSrc = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    hard_usd: 100
    on_hard:
      lower_output_limit: true
      allow_models: [free]
  - name: team-daily
    match: {team: "*"}
    period: day
    hard_usd: 50
  - name: user-daily
    match: {user: "*"}
    period: day
    soft_usd: 1
`

// TestAdmitLowerable: a hard-cap refusal is lowerable exactly when every
// enforced budget that blocks the claim lowers output limits, and its
// Room is the least room over the enforced budgets, whether they block or
// not; a claim of Room then fits, and one nano-USD more does not.
func TestAdmitLowerable(t *testing.T) {
	tenantOnly := map[string]string{"tenant": "acme"}
	teamOnly := map[string]string{"team": "search"}
	tests := []struct {
		name               string
		tenant, team       string // committed before the claim
		amount, model      string
		refused, lowerable bool
		room               string
	}{
		{"fits: no refusal", "10", "10", "20", "big", false, false, ""},
		{"only the lowering budget blocks", "90", "0", "20", "big", true, true, "10"},
		{"room is the least over every enforced budget", "97", "45", "4", "big", true, true, "3"},
		{"the refusing budget blocks too", "90", "45", "20", "big", true, false, "0"},
		{"only the refusing budget blocks", "60", "45", "8", "big", true, false, "0"},
		{"the lowering budget is exhausted: no room", "100", "0", "1", "big", true, true, "0"},
		{"an allowed model is not enforced by the lowering budget", "100", "45", "8", "free", true, false, "0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			f := newFixture(t, lowerSrc, "2026-11-15T10:00:00Z")
			f.commit(t, tenantOnly, usd(tt.tenant))
			f.commit(t, teamOnly, usd(tt.team))
			scopes := f.p.Applicable(acme)
			require.Len(t, scopes, 3)
			c := Claim{ID: "r1", Scopes: scopes, Model: tt.model, Amount: usd(tt.amount)}
			adm, err := f.eng.Admit(ctx, c, nil)
			require.NoError(t, err)
			if !tt.refused {
				require.NotNil(t, adm.Reservation)
				assert.Nil(t, adm.Rejection)
				return
			}
			require.NotNil(t, adm.Rejection)
			rej := adm.Rejection
			assert.Equal(t, tt.lowerable, rej.Lowerable)
			assert.Equal(t, usd(tt.room), rej.Room)
			if !rej.Lowerable || rej.Room == 0 {
				return
			}
			over := c
			over.ID, over.Amount = "r2", rej.Room+1
			adm, err = f.eng.Admit(ctx, over, nil)
			require.NoError(t, err)
			assert.NotNil(t, adm.Rejection, "one nano-USD more than the room is refused")
			fits := c
			fits.ID, fits.Amount = "r3", rej.Room
			adm, err = f.eng.Admit(ctx, fits, nil)
			require.NoError(t, err)
			require.NotNil(t, adm.Reservation, "the room fits")
			for _, st := range status(t, f, scopes) {
				if hard, ok := st.Scope.Budget.Hard(); ok {
					assert.LessOrEqual(t, money.Add(st.Committed, st.Reserved), hard, st.Scope.Budget.Name())
				}
			}
		})
	}
}

// TestAdmitLowerableAfterDowngrade: the soft cap's downgrade is tried
// first; when the hard cap refuses the cheaper model's claim, the refusal
// is that claim's, lowerable with the room its budgets have.
func TestAdmitLowerableAfterDowngrade(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    soft_usd: 80
    hard_usd: 100
    on_soft: {downgrade: {big: small}}
    on_hard: {lower_output_limit: true}
`, "2026-11-15T10:00:00Z")
	f.commit(t, acme, usd("97"))
	scopes := f.p.Applicable(acme)
	c := Claim{ID: "r1", Scopes: scopes, Model: "big", Amount: usd("20")}
	cheaper := &sameClaim{price: usd("4")}
	adm, err := f.eng.Admit(ctx, c, cheaper.claim(c))
	require.NoError(t, err)
	assert.Equal(t, "small", adm.Downgrade, "the downgrade is decided first")
	require.NotNil(t, adm.Rejection)
	assert.Equal(t, usd("4"), adm.Rejection.Requested, "the cheaper model's claim was refused")
	assert.True(t, adm.Rejection.Lowerable)
	assert.Equal(t, usd("3"), adm.Rejection.Room)
}

// TestExhaustedNeverLowerable: the request-headers check refuses an
// exhausted budget whatever its on_hard says, with no room.
func TestExhaustedNeverLowerable(t *testing.T) {
	f := newFixture(t, lowerSrc, "2026-11-15T10:00:00Z")
	f.commit(t, map[string]string{"tenant": "acme"}, usd("100"))
	rej, err := f.eng.Exhausted(context.Background(), f.p.Applicable(acme), "big")
	require.NoError(t, err)
	require.NotNil(t, rej)
	assert.False(t, rej.Lowerable)
	assert.Zero(t, rej.Room)
}

// TestLowerableRoomProperty: for many spends and claims, a lowerable
// refusal's room is reservable and no larger amount is.
func TestLowerableRoomProperty(t *testing.T) {
	ctx := context.Background()
	for i := range 40 {
		f := newFixture(t, lowerSrc, "2026-11-15T10:00:00Z")
		tenant := money.Nano(i) * usd("2.5")
		team := money.Nano(i%7) * usd("7")
		f.commit(t, map[string]string{"tenant": "acme"}, tenant)
		f.commit(t, map[string]string{"team": "search"}, team)
		scopes := f.p.Applicable(acme)
		amount := money.Nano(i%5+1) * usd("6")
		adm, err := f.eng.Admit(ctx, Claim{ID: fmt.Sprint("a", i), Scopes: scopes, Model: "big", Amount: amount}, nil)
		require.NoError(t, err)
		if adm.Rejection == nil {
			continue
		}
		want := min(usd("100")-min(tenant, usd("100")), usd("50")-min(team, usd("50")))
		if !adm.Rejection.Lowerable {
			assert.True(t, team+amount > usd("50"), "%d: refused by the team budget", i)
			continue
		}
		assert.Equal(t, want, adm.Rejection.Room, "%d", i)
		if want > 0 {
			adm, err = f.eng.Admit(ctx, Claim{ID: fmt.Sprint("b", i), Scopes: scopes, Model: "big", Amount: want}, nil)
			require.NoError(t, err)
			assert.NotNil(t, adm.Reservation, "%d: the room fits", i)
		}
	}
}
