package budget

import (
	"math/rand/v2"
	"testing"

	"github.com/stretchr/testify/require"
)

// cachePolicies compiles budgets over tenant, team and model with exact
// and "*" matches, so that requests differ in what applies.
func cachePolicies(t testing.TB) *Policies {
	p, err := Compile([]Config{
		cfg("tenant-monthly", "month", "tenant", "*"),
		cfg("acme-monthly", "month", "tenant", "acme"),
		cfg("any-team", "day", "tenant", "*", "team", "*"),
		cfg("acme-search", "day", "tenant", "acme", "team", "search"),
		cfg("fleet-daily", "day"),
		cfg("model-70b", "day", "model", "llama-70b"),
		cfg("user-guard", "week", "user", "*"),
	}, Limits{})
	require.NoError(t, err)
	return p
}

// randomDims draws request values from small sets, "" and absent included,
// so that requests repeat and collide.
func randomDims(r *rand.Rand) map[string]string {
	dims := map[string]string{}
	for k, vals := range map[string][]string{
		"tenant": {"acme", "globex", "", "a=b,c"},
		"team":   {"search", "infra", ""},
		"model":  {"llama-70b", "llama-8b"},
		"user":   {"u1", "u2", "u3", ""},
		"other":  {"x", "y"},
	} {
		if i := r.IntN(len(vals) + 1); i < len(vals) {
			dims[k] = vals[i]
		}
	}
	return dims
}

// TestScopeCacheAgrees checks cached lookups against the uncached
// computation, for many repeated requests and known-key masks.
func TestScopeCacheAgrees(t *testing.T) {
	p := cachePolicies(t)
	r := rand.New(rand.NewPCG(1, 2))
	for range 5000 {
		dims := randomDims(r)
		var known func(string) bool
		if r.IntN(2) == 0 {
			hide := []string{"model", "team", "user"}[r.IntN(3)]
			known = func(k string) bool { _, ok := dims[k]; return ok && k != hide }
		}
		want := p.applicable(dims, known)
		got := p.lookup(dims, known)
		if len(want) == 0 {
			require.Empty(t, got, "dims %v", dims)
			continue
		}
		require.Equal(t, want, got, "dims %v", dims)
		require.Equal(t, len(got), cap(got), "a shared result must not be appended to in place")
	}
}

// TestScopeCacheChecksValues fills every slot with an entry for other
// values: a lookup that landed on one must not take its scopes.
func TestScopeCacheChecksValues(t *testing.T) {
	p := cachePolicies(t)
	bogus := []Scope{{Budget: p.budgets[0], Key: "bogus"}}
	for i := range p.scopes.slots {
		p.scopes.slots[i].Store(&scopeEntry{known: 1<<len(p.keys) - 1, values: []string{"", "zzz", "", "", ""}[:len(p.keys)], scopes: bogus})
	}
	dims := map[string]string{"tenant": "acme", "team": "search", "user": "u1"}
	require.Equal(t, p.applicable(dims, nil), p.Applicable(dims))
	known := func(k string) bool { return k != "model" }
	require.Equal(t, p.applicable(dims, known), p.ApplicableKnown(dims, known))
}

// TestScopeCacheManyKeys: policies with more match keys than a cached
// lookup handles are computed every time, with the same answers.
func TestScopeCacheManyKeys(t *testing.T) {
	var budgets []Config
	dims := map[string]string{}
	for i := range maxCachedKeys + 1 {
		k := string(rune('a'+i)) + "key"
		budgets = append(budgets, cfg(k, "day", k, "*"))
		dims[k] = "v"
	}
	p, err := Compile(budgets, Limits{})
	require.NoError(t, err)
	require.Len(t, p.Applicable(dims), maxCachedKeys+1)
}

func BenchmarkApplicable(b *testing.B) {
	p := cachePolicies(b)
	dims := map[string]string{"tenant": "acme", "team": "search", "user": "u1", "model": "llama-70b"}
	b.Run("cached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.Applicable(dims)
		}
	})
	b.Run("uncached", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			p.applicable(dims, nil)
		}
	})
}
