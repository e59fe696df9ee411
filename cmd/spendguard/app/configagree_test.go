package app_test

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
)

// agreeBase is a valid configuration; each case of
// TestEveryCommandRefusesTheSameConfigurations breaks one section of it.
const agreeBase = `version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
      - default: demo
    budget:
      - default: none
pricing:
  models:
    - match: "qwen*"
      input: 0.10
      output: 0.20
  default: {input: 1.00, output: 2.00}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 5
limits:
  reservation_ttl: 10m
store:
  backend: memory
metrics:
  label_dimensions: [tenant]
admin:
  token: good-token
`

// brokenConfigs break every section of agreeBase, each in a way one
// command or another used to miss.
var brokenConfigs = []struct {
	name, old, new string
	want           string // in every command's problem
}{
	{"version", "version: 1", "version: 2", "version: must be 1"},
	{"yaml syntax", "  backend: memory", "  backend: [memory", "did not find expected"},
	{"unknown section", "admin:\n", "admn: {}\nadmin:\n", "admn: unknown key"},
	{"identity", "      - header: x-tenant-id", "      - cookie: x-tenant-id", "identity"},
	{"pricing", "      input: 0.10", "      input: -1", "pricing"},
	{"budgets period", "period: day", "period: fortnight", "fortnight"},
	{"budgets match", "match: {tenant: \"*\"}", "match: {team: \"*\"}", `"team", which is not a dimension`},
	{"limits", "reservation_ttl: 10m", "reservation_ttl: -1m", "reservation_ttl"},
	{"store", "backend: memory", "backend: etcd", "store"},
	{"exporters", "metrics:\n", "exporters:\n  queue_size: -5\nmetrics:\n", "queue_size"},
	{"exporters log without a path", "metrics:\n", "exporters:\n  log: {}\nmetrics:\n", "exporters.log"},
	{"exporters otlp endpoint", "metrics:\n", "exporters:\n  otlp: {endpoint: \"::not a url\"}\nmetrics:\n", "exporters.otlp"},
	{"exporters webhook", "metrics:\n", "exporters:\n  webhook: {url: \"ftp://x\"}\nmetrics:\n", "exporters.webhook"},
	{"store redis", "backend: memory", "backend: redis\n  redis: {address: \"\"}", "store.redis"},
	{"metrics label is spendguard's own", "label_dimensions: [tenant]", "label_dimensions: [budget]", `"budget" is a label spendguard uses itself`},
	{"metrics label twice", "label_dimensions: [tenant]", "label_dimensions: [tenant, tenant]", "listed twice"},
	{"metrics label not a dimension", "label_dimensions: [tenant]", "label_dimensions: [team]", `"team" is not a configured dimension`},
	{"metrics refresh too often", "label_dimensions: [tenant]", "label_dimensions: [tenant]\n  budget_gauges: {refresh_interval: 10ms}", "refresh_interval: must be between"},
	{"metrics refresh timeout", "label_dimensions: [tenant]", "label_dimensions: [tenant]\n  budget_gauges: {refresh_interval: 10s, refresh_timeout: 1m}", "refresh_timeout"},
	{"metrics max scopes", "label_dimensions: [tenant]", "label_dimensions: [tenant]\n  budget_gauges: {max_scopes: -1}", "max_scopes"},
	{"metrics token without a token", "label_dimensions: [tenant]\nadmin:\n  token: good-token\n", "label_dimensions: [tenant]\n  require_token: true\n", "no token to require"},
	{"admin", "  token: good-token", "  tokn: good-token", "admin.tokn: unknown key"},
}

var problemLine = regexp.MustCompile(`line \d+: [^\n]*`)

// problemsIn returns the "line N: ..." problems in a command's output.
func problemsIn(s string) []string { return problemLine.FindAllString(s, -1) }

func writeConfig(t *testing.T, path, content string) {
	t.Helper()
	tmp := path + ".tmp"
	require.NoError(t, os.WriteFile(tmp, []byte(content), 0o600))
	require.NoError(t, os.Rename(tmp, path)) // as a ConfigMap update: one atomic change
}

// Must show: every configuration `serve` refuses, check-config and a hot
// reload refuse too, with the same problems and lines: check-config
// exits 1, a reload keeps the last good configuration and counts the
// failure (in its status and in spendguard_config_reloads_total), serve
// exits 1 without starting.
func TestEveryCommandRefusesTheSameConfigurations(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.yaml")
	writeConfig(t, good, agreeBase)
	code, _, stderr := run(t, "check-config", good)
	require.Equal(t, 0, code, "the base configuration is valid: %s", stderr)

	// One running instance hot-reloads each broken file in turn.
	live := filepath.Join(t.TempDir(), "spendguard.yaml")
	writeConfig(t, live, agreeBase)
	in, err := app.Start(app.ServeOptions{ConfigPath: live, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogOutput: io.Discard, ShutdownTimeout: 5 * time.Second, ReloadInterval: 50 * time.Millisecond, ReloadDebounce: 10 * time.Millisecond})
	require.NoError(t, err)
	defer in.Shutdown()
	first := in.CurrentConfig()

	for _, tt := range brokenConfigs {
		t.Run(tt.name, func(t *testing.T) {
			require.Contains(t, agreeBase, tt.old)
			content := strings.Replace(agreeBase, tt.old, tt.new, 1)
			path := filepath.Join(dir, strings.ReplaceAll(tt.name, " ", "-")+".yaml")
			writeConfig(t, path, content)

			code, stdout, stderr := run(t, "check-config", path)
			assert.Equal(t, 1, code, stdout)
			checkProblems := problemsIn(stderr)
			require.NotEmpty(t, checkProblems, "check-config names a line: %s", stderr)
			assert.Contains(t, stderr, tt.want)

			before, _ := in.ReloadStatus()
			writeConfig(t, live, content)
			var status struct {
				failures int64
				lastErr  string
			}
			require.Eventually(t, func() bool {
				st, _ := in.ReloadStatus()
				status.failures, status.lastErr = st.Failures, st.LastError
				return st.Failures > before.Failures
			}, 10*time.Second, 10*time.Millisecond, "the reload is refused")
			assert.Equal(t, checkProblems, problemsIn(status.lastErr), "reload and check-config give the same problems")
			assert.Same(t, first, in.CurrentConfig(), "the last good configuration stays in force")
			assert.Eventually(t, func() bool { return reloadFailures(t, in) == status.failures }, 10*time.Second, 50*time.Millisecond,
				"the failure is counted in the metrics (a scrape's answer is shared for a second)")

			ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
			defer cancel()
			var out, serveErr strings.Builder
			code = app.Main(ctx, []string{"serve", "--config", path, "--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0"}, &out, &serveErr)
			assert.Equal(t, 1, code, "serve refuses to start (exit 0 means it served until the test's deadline)")
			assert.Equal(t, checkProblems, problemsIn(serveErr.String()), "serve and check-config give the same problems")
		})
	}
}

// reloadFailures reads spendguard_config_reloads_total{result="failure"}.
func reloadFailures(t *testing.T, in *app.Instance) int64 {
	t.Helper()
	resp, err := http.Get("http://" + in.AdminAddr() + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	m := regexp.MustCompile(`(?m)^spendguard_config_reloads_total\{result="failure"\} (\d+)$`).FindStringSubmatch(string(b))
	require.NotNil(t, m)
	var n int64
	for _, c := range m[1] {
		n = n*10 + int64(c-'0')
	}
	return n
}
