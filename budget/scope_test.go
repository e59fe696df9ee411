package budget

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cfg builds a budget with a $1 hard cap; match is key, value, key, value...
func cfg(name, period string, match ...string) Config {
	c := Config{Name: name, Period: period, HardUSD: USDOf(1_000_000_000), Match: map[string]string{}}
	for i := 0; i+1 < len(match); i += 2 {
		c.Match[match[i]] = match[i+1]
	}
	return c
}

func names(scopes []Scope) []string {
	out := []string{}
	for _, s := range scopes {
		out = append(out, s.Budget.Name())
	}
	return out
}

func TestApplicable(t *testing.T) {
	hierarchy := []Config{
		cfg("tenant-monthly", "month", "tenant", "*"),
		cfg("acme-monthly", "month", "tenant", "acme"),
		cfg("tenant-daily", "day", "tenant", "*"),
		cfg("any-team", "day", "tenant", "*", "team", "*"),
		cfg("search-any-tenant", "day", "tenant", "*", "team", "search"),
		cfg("acme-any-team", "day", "tenant", "acme", "team", "*"),
		cfg("acme-search", "day", "tenant", "acme", "team", "search"),
		cfg("fleet-daily", "day"),
		cfg("model-any", "day", "model", "*"),
		cfg("model-70b", "day", "model", "llama-70b"),
	}
	tests := []struct {
		name    string
		budgets []Config
		dims    map[string]string
		want    []string
	}{
		{"exact replaces star for its value", hierarchy,
			map[string]string{"tenant": "acme", "team": "search", "model": "llama-70b"},
			[]string{"acme-monthly", "tenant-daily", "acme-search", "fleet-daily", "model-70b"}},
		{"star applies to other values", hierarchy,
			map[string]string{"tenant": "globex", "team": "infra", "model": "qwen"},
			[]string{"tenant-monthly", "tenant-daily", "any-team", "fleet-daily", "model-any"}},
		{"more exact on one key wins", hierarchy,
			map[string]string{"tenant": "globex", "team": "search"},
			[]string{"tenant-monthly", "tenant-daily", "search-any-tenant", "fleet-daily"}},
		{"more exact on the other key wins", hierarchy,
			map[string]string{"tenant": "acme", "team": "infra"},
			[]string{"acme-monthly", "tenant-daily", "acme-any-team", "fleet-daily"}},
		{"incomparable budgets both apply", []Config{
			cfg("search-any-tenant", "day", "tenant", "*", "team", "search"),
			cfg("acme-any-team", "day", "tenant", "acme", "team", "*"),
			cfg("any-team", "day", "tenant", "*", "team", "*"),
		}, map[string]string{"tenant": "acme", "team": "search"},
			[]string{"search-any-tenant", "acme-any-team"}},
		{"same match and period both apply", []Config{
			cfg("a", "day", "tenant", "*"),
			cfg("b", "day", "tenant", "*"),
		}, map[string]string{"tenant": "acme"}, []string{"a", "b"}},
		{"absent key means one shared pool", hierarchy,
			map[string]string{"user": "bob"},
			[]string{"fleet-daily"}},
		{"empty value is absent", hierarchy,
			map[string]string{"tenant": "", "team": "search"},
			[]string{"fleet-daily"}},
		{"other exact value does not apply", []Config{
			cfg("acme", "day", "tenant", "acme"),
		}, map[string]string{"tenant": "globex"}, []string{}},
		{"no budgets", nil, map[string]string{"tenant": "acme"}, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := Compile(tt.budgets, Limits{})
			require.NoError(t, err)
			assert.Equal(t, tt.want, names(p.Applicable(tt.dims)))
		})
	}
}

func TestApplicableKnown(t *testing.T) {
	p, err := Compile([]Config{
		cfg("tenant-monthly", "month", "tenant", "*"),
		cfg("user-daily", "day", "user", "*"),
		cfg("tenant-model", "day", "tenant", "*", "model", "*"),
		cfg("acme-model", "day", "tenant", "acme", "model", "llama"),
		cfg("fleet", "day"),
	}, Limits{})
	require.NoError(t, err)
	dims := map[string]string{"tenant": "acme", "user": "bob", "model": "llama"}

	headers := func(k string) bool { return k != "model" && k != "user" }
	assert.Equal(t, []string{"tenant-monthly", "fleet"}, names(p.ApplicableKnown(dims, headers)))
	assert.Equal(t, []string{"tenant-monthly", "user-daily", "acme-model", "fleet"}, names(p.Applicable(dims)))

	all := func(string) bool { return true }
	assert.Equal(t, names(p.Applicable(dims)), names(p.ApplicableKnown(dims, all)))
}

func TestScopeKeysAndStrings(t *testing.T) {
	p, err := Compile([]Config{
		cfg("tenant-monthly", "month", "tenant", "*"),
		cfg("team", "day", "tenant", "*", "team", "*"),
		cfg("fleet", "total"),
		{Name: "guard", Match: map[string]string{"user": "*"}, Rolling: DurationOf(600e9), HardUSD: USDOf(1)},
	}, Limits{})
	require.NoError(t, err)

	scopes := p.Applicable(map[string]string{"tenant": "acme", "team": "search", "user": "a,b=c|d@e", "other": "x"})
	require.Len(t, scopes, 4)
	tests := []struct {
		str, key string
		values   map[string]string
	}{
		{"tenant=acme", "tenant-monthly|month|tenant=acme", map[string]string{"tenant": "acme"}},
		{"team=search,tenant=acme", "team|day|team=search,tenant=acme", map[string]string{"tenant": "acme", "team": "search"}},
		{"all", "fleet|total|", map[string]string{}},
		{"user=a,b=c|d@e", "guard|rolling600s|user=a%2Cb%3Dc%7Cd%40e", map[string]string{"user": "a,b=c|d@e"}},
	}
	for i, tt := range tests {
		t.Run(tt.str, func(t *testing.T) {
			assert.Equal(t, tt.str, scopes[i].String())
			assert.Equal(t, tt.key, scopes[i].Key)
			assert.Equal(t, tt.values, scopes[i].Values)
		})
	}

	again := p.Applicable(map[string]string{"tenant": "acme", "team": "search", "user": "a,b=c|d@e"})
	assert.Equal(t, scopes, again, "scopes are stable")
	other := p.Applicable(map[string]string{"tenant": "acme", "team": "search,tenant=acme"})
	assert.NotEqual(t, scopes[1].Key, other[1].Key, "values cannot forge another scope's key")
}
