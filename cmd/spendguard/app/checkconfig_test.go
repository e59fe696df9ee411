package app_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
)

// run calls the program as the shell would and returns its exit status and
// output.
func run(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var stdout, stderr bytes.Buffer
	code := app.Main(context.Background(), args, &stdout, &stderr)
	return code, stdout.String(), stderr.String()
}

func TestCheckConfigListsEveryMistakeWithItsLine(t *testing.T) {
	code, stdout, stderr := run(t, "check-config", "../../../config/testdata/five-mistakes.yaml")
	assert.Equal(t, 1, code)
	assert.Empty(t, stdout)
	want := []string{
		`line 16: budget "tenant-daily": unknown period "fortnight"`,
		`line 18: budget "team-daily": matches on "team", which is not a dimension`,
		`line 21: budget "team-daily": hard_usd: "1O": not a decimal USD amount`,
		`line 25: store.backnd: unknown key`,
		`line 27: admin.token: environment variable SPENDGUARD_TEST_UNSET_TOKEN is not set`,
	}
	assert.Contains(t, stderr, "5 problem(s):")
	problems := regexp.MustCompile(`(?m)^  line \d+: .*$`).FindAllString(stderr, -1)
	require.Len(t, problems, len(want), stderr)
	for i, w := range want {
		assert.Contains(t, problems[i], w)
	}
}

func TestCheckConfigPassesTheSpecExampleOnceItsVariablesAreSet(t *testing.T) {
	path := specExample(t)
	code, _, stderr := run(t, "check-config", path)
	require.Equal(t, 1, code, "its ${VAR}s are not set yet")
	assert.Contains(t, stderr, "environment variable SPENDGUARD_ADMIN_TOKEN is not set")

	for v, value := range map[string]string{
		"SPENDGUARD_REDIS_PASSWORD": "set-by-test", "LANGFUSE_BASIC_AUTH": "cGs6c2s=", "HELICONE_API_KEY": "sk-helicone-test",
		"SPENDGUARD_ALERT_WEBHOOK": "https://hooks.example.com/services/T0/B0/x", "SPENDGUARD_PG_DSN": "postgres://localhost/spendguard",
		"SPENDGUARD_ADMIN_TOKEN": "set-by-test",
	} {
		t.Setenv(v, value)
	}
	code, stdout, stderr := run(t, "check-config", path)
	require.Equal(t, 0, code, stderr)
	for _, want := range []string{
		"is valid.",
		"tenant     api_key tenant, jwt_claim tenant, header x-tenant-id, default \"unknown\"",
		"  tenant-monthly (line ",
		"    applies to: one counter per tenant\n                except tenant=acme: acme-monthly applies instead\n",
		"    period:     month (calendar, in Europe/Berlin)\n",
		"    soft cap:   800.00 USD\n      past it:  meta-llama/Llama-3.1-70B-Instruct is served as meta-llama/Llama-3.1-8B-Instruct\n",
		"    hard cap:   1000.00 USD\n      past it:  still serves free-tier-model\n",
		"    applies to: team=search, tenant=acme\n",
		"    applies to: all traffic (one shared pool)\n",
		"    period:     rolling window of 10m0s\n",
		"  max_request_usd: 2.00 USD",
		"  /v1/messages               metered as messages\n",
		"  /invocations               metered as invocations\n",
		"  free: /detokenize, /health, ",
	} {
		assert.Contains(t, stdout, want)
	}
	assert.NotContains(t, stdout, "set-by-test", "secrets are never printed")
}

func TestCheckConfigUsage(t *testing.T) {
	tests := []struct {
		args []string
		code int
		err  string
	}{
		{[]string{"check-config"}, 2, "usage: spendguard check-config FILE"},
		{[]string{"check-config", "a", "b"}, 2, "usage: spendguard check-config FILE"},
		{[]string{"check-config", filepath.Join(t.TempDir(), "nope.yaml")}, 1, "no such file"},
		{[]string{"serve", "--reload-interval", "-1s"}, 2, "--reload-interval must not be negative"},
	}
	for _, tc := range tests {
		t.Run(strings.Join(tc.args, " "), func(t *testing.T) {
			code, _, stderr := run(t, tc.args...)
			assert.Equal(t, tc.code, code)
			assert.Contains(t, stderr, tc.err)
		})
	}
}

func specExample(t *testing.T) string {
	t.Helper()
	for dir, _ := os.Getwd(); dir != "/"; dir = filepath.Dir(dir) {
		p := filepath.Join(dir, "..", "shared", "spec", "spendguard.example.yaml")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	t.Fatal("../shared/spec/spendguard.example.yaml not found beside the repository")
	return ""
}

// TestCheckConfigSaysWhoCanChooseADimension: a client-controlled source
// after an authenticated one is named in the summary, as a choice clients
// get when it opts in and as a warning when it does not.
func TestCheckConfigSaysWhoCanChooseADimension(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`version: 1
identity:
  dimensions:
    tenant:
      - api_key: tenant
      - jwt_claim: tenant
      - header: x-tenant-id
      - default: unknown
    team:
      - api_key: team
      - header: x-team-id
        without_credential: true
      - default: none
    user:
      - header: x-user-id
      - body_field: user
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1
`), 0o600))
	code, stdout, stderr := run(t, "check-config", path)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "  team       api_key team, header x-team-id (without_credential), default \"none\"\n             clients can choose team when they send no key\n")
	assert.Contains(t, stdout, "             warning: header x-tenant-id (line 7) is not read for requests without a key or token")
	assert.NotContains(t, stdout, "clients can choose tenant")
	assert.NotContains(t, stdout, "clients can choose user", "a header before any authenticated source is the operator's plain choice")
	assert.Equal(t, 1, strings.Count(stdout, "warning:"))
}

func TestCheckConfigShowsAlertThresholds(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(`version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    hard_usd: 10
    alerts: {thresholds: [0.95, 50%, 0.8]}
`), 0o600))
	code, stdout, stderr := run(t, "check-config", path)
	require.Equal(t, 0, code, stderr)
	assert.Contains(t, stdout, "    hard cap:   10.00 USD\n    alerts at:  50%, 80%, 95% of the hard cap (threshold_crossed)\n")
}
