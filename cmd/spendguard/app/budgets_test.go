package app_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/envoysim"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// budgetsConfig prices qwen-small at $0.001 a token either way, so a
// request's cost is (prompt + completion tokens) / 1000 USD. %s is the
// store section.
const budgetsConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
    team:
      - header: x-team-id
      - default: none
pricing:
  models:
    - {match: qwen-small, input: 1000, output: 1000}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    soft_usd: 0.05
    hard_usd: 0.1
  - name: team-rolling
    match: {tenant: "*", team: "*"}
    rolling: 1h
    hard_usd: 1
  - name: fleet-monthly
    period: month
    hard_usd: 100
admin:
  token: s3cret
  read_token: r3ad
store:
%s
`

const memoryStore = "  backend: memory"

// spendStack is spendguard started in-process behind envoysim, with a
// fake vLLM, so spend is seeded by real requests.
type spendStack struct {
	t     *testing.T
	sg    *app.Instance
	proxy *envoysim.Server
}

func newSpendStack(t *testing.T, storeSection string) *spendStack {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, fmt.Appendf(nil, budgetsConfig, storeSection), 0o600))
	sg, err := app.Start(app.ServeOptions{
		ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogOutput: io.Discard, ShutdownTimeout: 5 * time.Second, ReloadInterval: 0,
	})
	require.NoError(t, err)
	t.Cleanup(func() { sg.Shutdown() })
	vllm := fakevllm.New(fakevllm.Config{})
	url, err := vllm.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { vllm.Close() })
	cfg := envoysim.DefaultConfig(sg.GRPCAddr(), url)
	cfg.MessageTimeout = 5 * time.Second
	px, err := envoysim.New(cfg)
	require.NoError(t, err)
	proxy, err := px.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { proxy.Close() })
	return &spendStack{t: t, sg: sg, proxy: proxy}
}

// spend sends one chat request for tenant/team whose usage is prompt +
// completion tokens, and returns its status.
func (s *spendStack) spend(tenant, team string, prompt, completion int) int {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.proxy.URL()+"/v1/chat/completions",
		strings.NewReader(`{"model":"qwen-small","max_tokens":30,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(s.t, err)
	req.Header.Set("content-type", "application/json")
	req.Header.Set("x-tenant-id", tenant)
	if team != "" {
		req.Header.Set("x-team-id", team)
	}
	req.Header.Set("x-fake-prompt-tokens", fmt.Sprint(prompt))
	req.Header.Set("x-fake-completion-tokens", fmt.Sprint(completion))
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// seed spends: acme/search 0.08 (past the soft cap), globex/ads 0.01,
// initech 0.12 (past the hard cap: the second request reports more
// tokens than its worst case).
func (s *spendStack) seed() {
	s.t.Helper()
	for _, r := range []struct {
		tenant, team       string
		prompt, completion int
	}{
		{"acme", "search", 10, 30}, {"acme", "search", 10, 30}, {"globex", "ads", 5, 5},
		{"initech", "", 10, 30}, {"initech", "", 10, 70},
	} {
		require.Equal(s.t, http.StatusOK, s.spend(r.tenant, r.team, r.prompt, r.completion), "%+v", r)
	}
}

// budgets reads GET /v1/budgets from an admin address.
func budgets(t *testing.T, adminAddr, token, query string) (int, admin.Response, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, "http://"+adminAddr+"/v1/budgets"+query, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	var out admin.Response
	if resp.StatusCode == http.StatusOK {
		require.NoError(t, json.Unmarshal(body, &out), string(body))
	}
	return resp.StatusCode, out, string(body)
}

// digest is "budget scope spent reserved state" per scope.
func digest(r admin.Response) []string {
	out := []string{}
	for _, s := range r.Budgets {
		out = append(out, strings.Join([]string{s.Budget, admin.ScopeText(s.Scope), string(s.SpentUSD), string(s.ReservedUSD), s.State}, " "))
	}
	return out
}

var seededDigest = []string{
	"tenant-daily tenant=acme 0.080000 0.000000 soft",
	"tenant-daily tenant=globex 0.010000 0.000000 ok",
	"tenant-daily tenant=initech 0.120000 0.000000 hard",
	"team-rolling team=ads,tenant=globex 0.010000 0.000000 ok",
	"team-rolling team=none,tenant=initech 0.120000 0.000000 ok",
	"team-rolling team=search,tenant=acme 0.080000 0.000000 ok",
	"fleet-monthly all 0.210000 0.000000 ok",
}

func TestBudgetsAPIOnARealStack(t *testing.T) {
	s := newSpendStack(t, memoryStore)
	s.seed()
	addr := s.sg.AdminAddr()

	status, _, body := budgets(t, addr, "", "")
	assert.Equal(t, http.StatusUnauthorized, status, "admin.token is set")
	assert.Contains(t, body, `"code":"unauthorized"`)
	status, _, _ = budgets(t, addr, "wrong", "")
	assert.Equal(t, http.StatusUnauthorized, status)

	status, resp, body := budgets(t, addr, "s3cret", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, seededDigest, digest(resp))
	initech := resp.Budgets[2]
	require.NotNil(t, initech.RemainingUSD)
	assert.Equal(t, "0.000000", string(*initech.RemainingUSD))
	assert.Equal(t, "0.100000", string(*initech.HardUSD))
	assert.Equal(t, "0.050000", string(*initech.SoftUSD))
	assert.NotNil(t, resp.Budgets[3].BurnUSDPerHour, "a rolling window has a rate from its own spend")

	status, resp, _ = budgets(t, addr, "s3cret", "?tenant=acme&team=search")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, []string{"team-rolling team=search,tenant=acme 0.080000 0.000000 ok"}, digest(resp))
	status, resp, body = budgets(t, addr, "r3ad", "")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, seededDigest, digest(resp), "admin.read_token reads the same")

	for _, path := range []string{"/healthz", "/readyz", "/metrics", "/"} {
		resp, err := http.Get("http://" + addr + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, "%s needs no token", path)
	}
}

func TestStatusCommandAgainstARunningServer(t *testing.T) {
	s := newSpendStack(t, memoryStore)
	s.seed()
	adminURL := "http://" + s.sg.AdminAddr()

	code, stdout, stderr := run(t, "status", "--admin", adminURL, "--token", "s3cret")
	require.Equal(t, 0, code, stderr)
	lines := strings.Split(strings.TrimRight(stdout, "\n"), "\n")
	require.Len(t, lines, 8, stdout)
	assert.Regexp(t, `^BUDGET +SCOPE +PERIOD +SPENT +RESERVED +SOFT +HARD +USED +STATE +RESETS IN +BURN/H +EXHAUSTS IN$`, lines[0])
	assert.Regexp(t, `^tenant-daily +tenant=initech +day +0\.120000 +0\.00 +0\.050000 +0\.100000 +120\.0% +hard +\S+ +\S+ +exhausted$`, lines[1], "closest to its cap first")
	assert.Regexp(t, `^tenant-daily +tenant=acme +day +0\.080000 +0\.00 +0\.050000 +0\.100000 +80\.0% +soft `, lines[2])
	assert.Regexp(t, `^team-rolling +team=none,tenant=initech +rolling 1h +0\.120000 .* 12\.0% +ok `, lines[3])
	assert.Regexp(t, `^fleet-monthly +all +month +0\.210000 .* 0\.2% +ok `, lines[len(lines)-1])

	// Flags and filters in any order; the token from the environment.
	t.Setenv("SPENDGUARD_ADMIN_TOKEN", "s3cret")
	code, stdout, stderr = run(t, "status", "tenant=acme", "--json", "--admin", strings.TrimPrefix(adminURL, "http://"))
	require.Equal(t, 0, code, stderr)
	var resp admin.Response
	require.NoError(t, json.Unmarshal([]byte(stdout), &resp), stdout)
	assert.Equal(t, []string{
		"tenant-daily tenant=acme 0.080000 0.000000 soft",
		"team-rolling team=search,tenant=acme 0.080000 0.000000 ok",
	}, digest(resp))

	// The read token is enough, and preferred from the environment.
	code, _, stderr = run(t, "status", "--admin", adminURL, "--token", "r3ad")
	require.Equal(t, 0, code, stderr)
	t.Setenv("SPENDGUARD_ADMIN_TOKEN", "not-the-token")
	t.Setenv("SPENDGUARD_ADMIN_READ_TOKEN", "r3ad")
	code, _, stderr = run(t, "status", "--admin", adminURL)
	require.Equal(t, 0, code, stderr)

	code, _, stderr = run(t, "status", "--admin", adminURL, "--token", "nope")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, "the bearer token is neither admin.token nor admin.read_token (401 Unauthorized)")
	code, _, stderr = run(t, "status", "--admin", adminURL, "--token", "s3cret", "region=eu")
	assert.Equal(t, 1, code)
	assert.Contains(t, stderr, `filter "region": not a dimension (dimensions: model, team, tenant)`)
	code, _, stderr = run(t, "status", "tenant")
	assert.Equal(t, 2, code)
	assert.Contains(t, stderr, `"tenant" is not DIM=VALUE`)
}
