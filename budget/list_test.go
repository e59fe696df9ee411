package budget

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
)

func TestParseCounterKeyInvertsEveryKeyTheEngineWrites(t *testing.T) {
	p, err := compileYAML(t, exampleYAML)
	require.NoError(t, err)
	now := mustTime(t, "2026-11-15T10:00:00+01:00")
	for _, dims := range []map[string]string{
		acme,
		{"tenant": "globex", "team": "ads", "user": "bob"},
		{"tenant": "a,b=c@d|e%f g", "team": "ünïcode/é", "user": "x*y?[z]\\"},
	} {
		for _, s := range p.Applicable(dims) {
			it := itemFor(s, "", now)
			got, period, ok := p.ParseCounterKey(it.Key)
			require.True(t, ok, it.Key)
			assert.Equal(t, s.Key, got.Key)
			assert.Equal(t, s.Values, got.Values)
			assert.Same(t, s.Budget, got.Budget)
			assert.True(t, s.Budget.current(period, now), "%s is in the current period", it.Key)
			for _, w := range it.Window {
				_, period, ok := p.ParseCounterKey(w)
				require.True(t, ok, w)
				assert.True(t, s.Budget.current(period, now), "%s is in the current window", w)
			}
		}
	}
	for _, bad := range []string{
		"", "tenant-monthly", "nope|month|tenant=acme@1", "tenant-monthly|day|tenant=acme@1",
		"tenant-monthly|month|tenant=acme", "tenant-monthly|month|team=acme@1",
		"tenant-monthly|month|tenant=@1", "tenant-monthly|month|tenant=a%2x@1",
		"tenant-monthly|month|tenant=a b@1", // canonical form escapes the space as +
		"acme-monthly|month|tenant=globex@1", "fleet-daily|day|tenant=acme@1",
		"search-team-daily|day|tenant=acme,team=search,user=bob@1",
	} {
		_, _, ok := p.ParseCounterKey(bad)
		assert.False(t, ok, bad)
	}
}

func states(l Listing) []string {
	var out []string
	for _, s := range l.States {
		out = append(out, s.Scope.Budget.Name()+" "+s.Scope.String()+" "+s.Committed.Fixed(2))
	}
	return out
}

func TestListEveryScope(t *testing.T) {
	f := newFixture(t, exampleYAML, "2026-11-15T10:00:00+01:00")
	ctx := context.Background()
	list := func(opts ListOptions) Listing {
		t.Helper()
		l, err := f.eng.List(ctx, f.p, f.store, opts)
		require.NoError(t, err)
		return l
	}
	assert.Equal(t, []string{
		"acme-monthly tenant=acme 0.00", "search-team-daily team=search,tenant=acme 0.00", "fleet-daily all 0.00",
	}, states(list(ListOptions{})), "budgets without a * key are listed with no spend")

	f.commit(t, map[string]string{"tenant": "globex", "team": "ads", "user": "bob"}, usd("3"))
	f.commit(t, map[string]string{"tenant": "initech", "team": "ads", "user": "alice"}, usd("1"))
	f.commit(t, acme, usd("2"))
	// A counter left from before acme-monthly existed: it applies no more.
	stale := Scope{Budget: f.p.budgets[0]}
	stale.Values, stale.Key = scopeValues(stale.Budget, map[string]string{"tenant": "acme"})
	f.commit2(t, stale, usd("7"))

	assert.Equal(t, []string{
		"tenant-monthly tenant=globex 3.00", "tenant-monthly tenant=initech 1.00",
		"acme-monthly tenant=acme 2.00", "search-team-daily team=search,tenant=acme 2.00",
		"fleet-daily all 6.00",
		"runaway-agent-guard user=alice 1.00", "runaway-agent-guard user=bob 5.00",
	}, states(list(ListOptions{})))

	filtered := []struct {
		filter map[string]string
		budget string
		want   []string
	}{
		{map[string]string{"tenant": "globex"}, "", []string{"tenant-monthly tenant=globex 3.00"}},
		{map[string]string{"tenant": "newco"}, "", []string{"tenant-monthly tenant=newco 0.00"}},
		{map[string]string{"tenant": "acme"}, "", []string{"acme-monthly tenant=acme 2.00", "search-team-daily team=search,tenant=acme 2.00"}},
		{map[string]string{"team": "search"}, "", []string{"search-team-daily team=search,tenant=acme 2.00"}},
		{map[string]string{"team": "ads"}, "", nil},
		{map[string]string{"user": "bob", "tenant": "acme"}, "", nil},
		{nil, "runaway-agent-guard", []string{"runaway-agent-guard user=alice 1.00", "runaway-agent-guard user=bob 5.00"}},
		{map[string]string{"user": "bob"}, "runaway-agent-guard", []string{"runaway-agent-guard user=bob 5.00"}},
		{nil, "nope", nil},
	}
	for _, tc := range filtered {
		assert.Equal(t, tc.want, states(list(ListOptions{Filter: tc.filter, Budget: tc.budget})), "%v %s", tc.filter, tc.budget)
	}

	l := list(ListOptions{MaxScopes: 3})
	assert.True(t, l.Truncated)
	assert.Len(t, l.States, 3)
	l = list(ListOptions{MaxKeys: 2, Budget: "tenant-monthly"})
	assert.True(t, l.Truncated)

	// The rolling window forgets after 11 minutes; the month goes on.
	f.clock.add(11 * time.Minute)
	assert.NotContains(t, states(list(ListOptions{})), "runaway-agent-guard user=bob 5.00")
	assert.Contains(t, states(list(ListOptions{})), "tenant-monthly tenant=globex 3.00")
	// A new month starts new counters.
	f.clock.set(mustTime(t, "2026-12-01T02:00:00+01:00"))
	assert.Equal(t, []string{
		"acme-monthly tenant=acme 0.00", "search-team-daily team=search,tenant=acme 0.00", "fleet-daily all 0.00",
	}, states(list(ListOptions{})))
}

func TestListNeedsALister(t *testing.T) {
	f := newFixture(t, exampleYAML, "2026-11-15T10:00:00+01:00")
	_, err := f.eng.List(context.Background(), f.p, nil, ListOptions{})
	assert.ErrorIs(t, err, ErrNotListable)
	l, err := f.eng.List(context.Background(), f.p, nil, ListOptions{Budget: "fleet-daily"})
	require.NoError(t, err)
	assert.Len(t, l.States, 1, "a budget without * keys needs no listing")
}

// commit2 adds amount to one scope's counter.
func (f *fixture) commit2(t *testing.T, s Scope, amount money.Nano) {
	t.Helper()
	now := f.clock.now()
	require.NoError(t, f.store.Settle(context.Background(), "seed", amount, itemsFor([]Scope{s}, "", now), now))
}
