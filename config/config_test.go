package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/metrics"
)

// env returns a LookupEnv over a fixed map.
func env(vars map[string]string) func(string) (string, bool) {
	return func(name string) (string, bool) {
		v, ok := vars[name]
		return v, ok
	}
}

// exampleVars sets every ${VAR} of the spec's example file.
var exampleVars = map[string]string{
	"SPENDGUARD_REDIS_PASSWORD": "redis-secret",
	"LANGFUSE_BASIC_AUTH":       "cGs6c2s=",
	"HELICONE_API_KEY":          "sk-helicone",
	"SPENDGUARD_ALERT_WEBHOOK":  "https://hooks.example.com/x",
	"SPENDGUARD_PG_DSN":         "postgres://u:p@localhost/db",
	"SPENDGUARD_ADMIN_TOKEN":    "admin-secret",
}

// specFile reads a file of ../shared/spec beside the repository.
func specFile(t *testing.T, name string) []byte {
	t.Helper()
	for dir, _ := os.Getwd(); dir != "/"; dir = filepath.Dir(dir) {
		if b, err := os.ReadFile(filepath.Join(dir, "..", "shared", "spec", name)); err == nil {
			return b
		}
	}
	t.Fatalf("%s not found in ../shared/spec beside the repository", name)
	return nil
}

// problemsOf parses data and returns its problems (nil when valid).
func problemsOf(t *testing.T, data string, vars map[string]string) Problems {
	t.Helper()
	_, err := Loader{LookupEnv: env(vars)}.Parse([]byte(data))
	if err == nil {
		return nil
	}
	var ps Problems
	require.True(t, errors.As(err, &ps), "Parse returns Problems, got %T: %v", err, err)
	return ps
}

func TestExampleFileParsesOnceItsVariablesAreSet(t *testing.T) {
	data := specFile(t, "spendguard.example.yaml")
	c, err := Loader{LookupEnv: env(exampleVars)}.Parse(data)
	require.NoError(t, err)
	require.NotNil(t, c.Snapshot)
	assert.Len(t, c.Snapshot.Budgets.Budgets(), 5)
	assert.Equal(t, "admin-secret", c.File.Admin.Token)
	assert.Equal(t, []string{"team", "tenant", "use_case", "user"}, c.Snapshot.Identity.Dimensions())

	// Without them, every unset variable of a used section is named with
	// its line; the store's redis section is unused with backend memory.
	ps := problemsOf(t, string(data), nil)
	require.Len(t, ps, 5, ps.Error())
	for _, p := range ps {
		assert.Contains(t, p.Msg, "is not set")
		assert.Positive(t, p.Line)
		assert.NotContains(t, p.Msg, "SPENDGUARD_REDIS_PASSWORD")
	}
}

func TestUnsetVariableInUnusedSection(t *testing.T) {
	base := minimal + "store:\n  backend: %s\n  redis:\n    password: ${REDIS_PW}\n"
	ps := problemsOf(t, strings.Replace(base, "%s", "memory", 1), nil)
	assert.Empty(t, ps, "store.redis is unused with the memory backend")

	ps = problemsOf(t, strings.Replace(base, "%s", "redis", 1), nil)
	assert.Contains(t, messages(ps), "store.redis.password: environment variable REDIS_PW is not set")
}

func messages(ps Problems) []string {
	out := make([]string, len(ps))
	for i, p := range ps {
		out[i] = p.Msg
	}
	return out
}

// minimal is a valid configuration that test cases extend.
const minimal = `version: 1
identity:
  dimensions:
    tenant: [{header: x-tenant-id}, {default: unknown}]
pricing:
  default: {input: 1, output: 2}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 10
`

func TestFiveMistakesAreAllReportedWithTheirLines(t *testing.T) {
	data, err := os.ReadFile("testdata/five-mistakes.yaml")
	require.NoError(t, err)
	ps := problemsOf(t, string(data), nil)
	want := []Problem{
		{16, `budget "tenant-daily": unknown period "fortnight"`},
		{18, `budget "team-daily": matches on "team", which is not a dimension`},
		{21, `budget "team-daily": hard_usd: "1O": not a decimal USD amount`},
		{25, `store.backnd: unknown key; did you mean "backend"?`},
		{27, `admin.token: environment variable SPENDGUARD_TEST_UNSET_TOKEN is not set`},
	}
	require.Len(t, ps, len(want), ps.Error())
	for i, w := range want {
		assert.Equal(t, w.Line, ps[i].Line, ps[i].String())
		assert.Contains(t, ps[i].Msg, w.Msg)
	}
}

// anyLine accepts the problem on any line.
const anyLine = -1

func TestProblems(t *testing.T) {
	tests := []struct {
		name string
		yaml string
		line int
		msg  string
	}{
		{"empty", "", 0, "the configuration is empty"},
		{"comments only", "# nothing\n", 0, "the configuration is empty"},
		{"not a mapping", "- a\n- b\n", 1, "must be a mapping of sections"},
		{"syntax", "version: 1\nbudgets: [\n", 2, "did not find expected node content"},
		{"two documents", minimal + "---\nversion: 1\n", 12, "only one YAML document"},
		{"duplicate section", minimal + "version: 1\n", 12, "version: defined twice (first at line 1)"},
		{"unknown section", minimal + "budget: []\n", 12, `budget: unknown key; did you mean "budgets"?`},
		{"unknown nested key", minimal + "limits:\n  max_requests_usd: 1\n", 13, "limits.max_requests_usd: unknown key"},
		{"missing version", strings.TrimPrefix(minimal, "version: 1\n"), 0, "version: missing"},
		{"wrong version", strings.Replace(minimal, "version: 1", "version: 2", 1), 1, "version: must be 1, not 2"},
		{"wrong type", minimal + "metrics:\n  label_dimensions: tenant\n", 13, "metrics: cannot unmarshal !!str `tenant` into []string"},
		{"unknown label dimension", minimal + "metrics:\n  label_dimensions: [tenant, team]\n", 13, `metrics.label_dimensions[1]: "team" is not a configured dimension`},
		{"label spendguard uses itself", minimal + "metrics:\n  label_dimensions:\n    - tenant\n    - budget\n", 15, `metrics.label_dimensions[1]: "budget" is a label spendguard uses itself`},
		{"label listed twice", minimal + "metrics:\n  label_dimensions: [tenant, tenant]\n", 13, `metrics.label_dimensions[1]: "tenant" is listed twice`},
		{"refresh too often", minimal + "metrics:\n  budget_gauges:\n    refresh_interval: 1ms\n", 14, "metrics.budget_gauges.refresh_interval: must be between 1s and 1h0m0s"},
		{"refresh timeout past the interval", minimal + "metrics:\n  budget_gauges:\n    refresh_interval: 5s\n    refresh_timeout: 6s\n", 15, "refresh_timeout: 6s is longer than refresh_interval 5s"},
		{"timeout past the default interval", minimal + "metrics:\n  budget_gauges: {refresh_timeout: 31s}\n", 13, "refresh_timeout: 31s is longer than refresh_interval 30s"},
		{"too many scopes", minimal + "metrics:\n  budget_gauges:\n    max_scopes: 100001\n", 14, "max_scopes: must be between 1 and 100000"},
		{"token required, none set", minimal + "metrics:\n  require_token: true\n", 13, "metrics.require_token: neither admin.token nor admin.read_token is set"},
		{"read token equal to the admin token", minimal + "admin:\n  token: same\n  read_token: same\n", 14, "admin.read_token: equal to admin.token"},
		{"unset read token variable", minimal + "admin:\n  read_token: ${NOPE}\n", 13, "admin.read_token: environment variable NOPE is not set"},
		{"match key not a dimension", strings.Replace(minimal, "{tenant: \"*\"}", "{team: \"*\"}", 1), 8, `matches on "team"`},
		{"unknown store backend", minimal + "store:\n  backend: etcd\n", anyLine, `store.backend: unknown backend "etcd"`},
		{"identity source", strings.Replace(minimal, "{header: x-tenant-id}", "{cookie: x}", 1), 4, `identity.dimensions.tenant[0]: unknown source "cookie"`},
		{"malformed variable", minimal + "admin:\n  token: ${1X}\n", 13, "admin.token: malformed ${...}"},
		{"unset variable", minimal + "admin:\n  token: Bearer ${NOPE}\n", 13, "admin.token: environment variable NOPE is not set"},
		{"merge at top level", minimal + "<<: {admin: {token: x}}\n", 12, "merge keys (<<) are not supported at the top level"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ps := problemsOf(t, tc.yaml, nil)
			require.NotEmpty(t, ps)
			found := false
			for _, p := range ps {
				found = found || (tc.line == anyLine || p.Line == tc.line) && strings.Contains(p.Msg, tc.msg)
			}
			assert.True(t, found, "want line %d: %s\ngot:\n%s", tc.line, tc.msg, ps.Error())
		})
	}
}

func TestSectionsAreDecodedIndependently(t *testing.T) {
	// A mistake that stops the identity section from decoding does not
	// hide those of the other sections.
	data := minimal + `limits:
  max_request_usd: lots
metrics:
  label_dimensions: [nope]
`
	data = strings.Replace(data, "tenant: [{header: x-tenant-id}, {default: unknown}]", "tenant: header", 1)
	ps := problemsOf(t, data, nil)
	msgs := strings.Join(messages(ps), "\n")
	assert.Contains(t, msgs, "identity: a dimension is a list of sources")
	assert.Contains(t, msgs, `limits.max_request_usd: "lots"`)
	assert.Contains(t, msgs, `metrics.label_dimensions[0]: "nope" is not a configured dimension`)
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	data := strings.Replace(minimal, "  default: {input: 1, output: 2}\n", `  models:
    - &llama
      match: llama-70b
      input: 0.60
      output: 0.80
    - <<: *llama
      match: llama-70b-awq
      output: 0.70
`, 1)
	c, err := Loader{LookupEnv: env(nil)}.Parse([]byte(data))
	require.NoError(t, err)
	p, ok := c.Snapshot.Pricing.Lookup("llama-70b-awq")
	require.True(t, ok)
	assert.Equal(t, "0.600000", p.Input.USD())
	assert.Equal(t, "0.700000", p.Output.USD())

	bad := strings.Replace(data, "output: 0.70", "outpt: 0.70", 1)
	ps := problemsOf(t, bad, nil)
	assert.Contains(t, messages(ps), `pricing.models[1].outpt: unknown key; did you mean "output"? (allowed: match, input, cached_input, output, per_second)`)
}

// Must show: merge keys work in the sections that check their own keys
// (budgets, store, exporters) as in the others, and a key misspelt in a
// merged mapping is still reported, with its line and a suggestion.
func TestMergeKeysInSectionsThatCheckTheirOwnKeys(t *testing.T) {
	data := minimal + `  - <<: &team {match: {tenant: "*"}, period: day}
    name: tenant-weekly-cap
    hard_usd: 50
store:
  <<: {on_error: fail_open}
exporters:
  <<: {queue_size: 10}
  log: {path: stderr}
`
	c, err := Loader{LookupEnv: env(nil)}.Parse([]byte(data))
	require.NoError(t, err)
	assert.Equal(t, "day", c.File.Budgets[1].Period)
	assert.True(t, c.File.Store.FailOpen())
	assert.Equal(t, 10, c.File.Exporters.QueueSize)

	bad := strings.Replace(data, "period: day}", "perod: day}", 1)
	bad = strings.Replace(bad, "{on_error: fail_open}", "{on_eror: fail_open}", 1)
	ps := problemsOf(t, bad, nil)
	assert.Equal(t, []string{
		`line 12: budget "tenant-weekly-cap": unknown field "perod"; did you mean "period"? (allowed: name, match, period, timezone, rolling, soft_usd, hard_usd, on_soft, on_hard, alerts)`,
		`line 12: budget "tenant-weekly-cap": needs a period (hour, day, week, month or total) or a rolling window`,
		`line 16: store.on_eror: unknown key; did you mean "on_error"? (allowed: backend, memory, redis, on_error)`,
	}, strings.Split(ps.Error(), "\n"))
}

func TestProblemsAreSortedByLine(t *testing.T) {
	data := strings.Replace(minimal, "version: 1", "version: 3", 1) + "admin:\n  tokn: x\n"
	data = strings.Replace(data, "period: day", "period: someday", 1)
	ps := problemsOf(t, data, nil)
	require.Len(t, ps, 3, ps.Error())
	for i := 1; i < len(ps); i++ {
		assert.LessOrEqual(t, ps[i-1].Line, ps[i].Line)
	}
	assert.Equal(t, "line 1: version: must be 1, not 3", ps[0].String())
	assert.Equal(t, strings.Join([]string{ps[0].String(), ps[1].String(), ps[2].String()}, "\n"), ps.Error())
}

// Must show: metrics.budget_gauges and require_token are read, with
// their defaults when absent.
func TestMetricsSection(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       metrics.BudgetGaugeOptions
		token      bool
	}{
		{"defaults", minimal, metrics.BudgetGaugeOptions{Interval: 30 * time.Second, Timeout: 10 * time.Second, MaxScopes: 1000}, false},
		{"set", minimal + "metrics:\n  require_token: true\n  budget_gauges: {refresh_interval: 1m, refresh_timeout: 20s, max_scopes: 50}\nadmin:\n  token: t\n",
			metrics.BudgetGaugeOptions{Interval: time.Minute, Timeout: 20 * time.Second, MaxScopes: 50}, true},
		{"short interval bounds the default timeout", minimal + "metrics:\n  budget_gauges: {refresh_interval: 2s}\n",
			metrics.BudgetGaugeOptions{Interval: 2 * time.Second, Timeout: 2 * time.Second, MaxScopes: 1000}, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			c, err := Loader{LookupEnv: env(nil)}.Parse([]byte(tc.yaml))
			require.NoError(t, err)
			assert.Equal(t, tc.want, c.File.Metrics.BudgetGauges.Options())
			assert.Equal(t, tc.token, c.File.Metrics.RequireToken)
		})
	}
}

// Must show: both admin tokens come from ${VAR}s; a read token alone is
// valid (and enough for metrics.require_token); a read token equal to
// the admin token is refused without the value in the message.
func TestAdminTokens(t *testing.T) {
	vars := map[string]string{"ADMIN": "admin-s3cret", "READ": "read-s3cret", "SAME": "admin-s3cret"}
	load := func(admin string) (*Compiled, error) {
		return Loader{LookupEnv: env(vars)}.Parse([]byte(minimal + admin))
	}

	c, err := load("admin:\n  token: ${ADMIN}\n  read_token: \"${READ}\"\n")
	require.NoError(t, err)
	assert.Equal(t, Admin{Token: "admin-s3cret", ReadToken: "read-s3cret"}, c.File.Admin)

	c, err = load("admin:\n  read_token: ${READ}\nmetrics:\n  require_token: true\n")
	require.NoError(t, err, "a read-only admin API is a valid choice")
	assert.Equal(t, Admin{ReadToken: "read-s3cret"}, c.File.Admin)

	_, err = load("admin:\n  token: ${ADMIN}\n  read_token: ${SAME}\n")
	require.ErrorContains(t, err, "line 14: admin.read_token: equal to admin.token")
	assert.NotContains(t, err.Error(), "s3cret", "a token is never part of a message")

	_, err = load("admin:\n  token: ${ADMIN}\n  read_token: \"\"\n")
	require.NoError(t, err, "an empty read token is no read token, not one equal to an empty admin token")
	_, err = load("admin:\n  token: \"\"\n  read_token: \"\"\n")
	require.NoError(t, err)
}
