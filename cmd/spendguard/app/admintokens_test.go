package app_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
)

// call sends method to an admin path with a bearer token unless token is
// "".
func call(t *testing.T, in *app.Instance, method, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, "http://"+in.AdminAddr()+path, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(b)
}

// Must show, through the real admin server with both tokens from
// ${VAR}s: every guarded GET (/v1/budgets, /v1/estimates, /v1/spend,
// /metrics with require_token) takes either token, and /readyz and
// /v1/budgets show the store's error (its address) to either token's
// holder only; a write to a /v1/ path is 403 with the read token, passes
// the guard with admin.token (the mux has no write route yet: 405) and
// is 401 anonymously. With only a read token, nobody writes.
func TestAdminTokensOnTheRealServer(t *testing.T) {
	t.Setenv("SG_TEST_ADMIN_TOKEN", "admin-s3cret")
	t.Setenv("SG_TEST_READ_TOKEN", "read-s3cret")
	redisAddr := freeAddr(t) // unreachable: /readyz and /v1/budgets fail with its address
	config := strings.NewReplacer(
		"backend: memory", "backend: redis\n  redis: {address: \""+redisAddr+"\"}",
		"label_dimensions: [tenant]", "label_dimensions: [tenant]\n  require_token: true",
	).Replace(agreeBase)
	both := startWith(t, strings.Replace(config, "admin:\n  token: good-token\n",
		"admin:\n  token: ${SG_TEST_ADMIN_TOKEN}\n  read_token: \"${SG_TEST_READ_TOKEN}\"\n", 1), app.ServeOptions{})
	readOnly := startWith(t, strings.Replace(config, "admin:\n  token: good-token\n",
		"admin:\n  read_token: ${SG_TEST_READ_TOKEN}\n", 1), app.ServeOptions{})
	const adminTok, readTok = "admin-s3cret", "read-s3cret"

	tests := []struct {
		name, method, path, token string
		in                        *app.Instance
		status                    int
		has, hasNot               string
	}{
		{"budgets admin", "GET", "/v1/budgets", adminTok, both, 503, redisAddr, ""},
		{"budgets read", "GET", "/v1/budgets", readTok, both, 503, redisAddr, ""},
		{"budgets head read", "HEAD", "/v1/budgets", readTok, both, 503, "", ""},
		{"budgets anonymous", "GET", "/v1/budgets", "", both, 401, "admin.token or admin.read_token", redisAddr},
		{"budgets wrong", "GET", "/v1/budgets", "nope", both, 401, "neither admin.token nor admin.read_token", redisAddr},
		{"estimates read", "GET", "/v1/estimates", readTok, both, 200, `"estimates"`, ""},
		{"spend read (no ledger)", "GET", "/v1/spend", readTok, both, 404, "no spend ledger", ""},
		{"spend anonymous", "GET", "/v1/spend", "", both, 401, "unauthorized", ""},
		{"metrics read", "GET", "/metrics", readTok, both, 200, "spendguard_budget_metrics_scopes", ""},
		{"metrics admin", "GET", "/metrics", adminTok, both, 200, "spendguard_budget_metrics_scopes", ""},
		{"metrics anonymous", "GET", "/metrics", "", both, 401, "unauthorized", "spendguard_"},
		{"readyz read", "GET", "/readyz", readTok, both, 503, redisAddr, ""},
		{"readyz admin", "GET", "/readyz", adminTok, both, 503, redisAddr, ""},
		{"readyz anonymous", "GET", "/readyz", "", both, 503, `"status":"budget store unreachable"`, redisAddr},
		{"readyz wrong", "GET", "/readyz", "nope", both, 503, `"status":"budget store unreachable"`, redisAddr},
		{"post read", "POST", "/v1/budgets", readTok, both, 403, `"code":"forbidden"`, ""},
		{"put read", "PUT", "/v1/budgets/tenant-daily", readTok, both, 403, "admin.read_token, which can only read", ""},
		{"delete read", "DELETE", "/v1/budgets/tenant-daily", readTok, both, 403, "DELETE needs admin.token", ""},
		{"post admin passes the guard", "POST", "/v1/budgets", adminTok, both, 405, "", "forbidden"},
		{"delete admin passes the guard", "DELETE", "/v1/budgets/tenant-daily", adminTok, both, 405, "", "forbidden"},
		{"post anonymous", "POST", "/v1/budgets", "", both, 401, `needs Authorization: Bearer \u003cadmin.token\u003e"`, ""},
		{"read only: budgets read", "GET", "/v1/budgets", readTok, readOnly, 503, redisAddr, ""},
		{"read only: metrics anonymous", "GET", "/metrics", "", readOnly, 401, `Bearer \u003cadmin.read_token\u003e"`, ""},
		{"read only: readyz read", "GET", "/readyz", readTok, readOnly, 503, redisAddr, ""},
		{"read only: post read", "POST", "/v1/budgets", readTok, readOnly, 403, "can only read", ""},
		{"read only: post anyone", "POST", "/v1/budgets", "", readOnly, 403, "admin.token is not set, so nothing can be changed", ""},
		{"read only: delete with the admin token of the other", "DELETE", "/v1/budgets/x", adminTok, readOnly, 403, "forbidden", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := call(t, tt.in, tt.method, tt.path, tt.token)
			assert.Equal(t, tt.status, status, body)
			assert.Contains(t, body, tt.has)
			if tt.hasNot != "" {
				assert.NotContains(t, body, tt.hasNot)
			}
			assert.NotContains(t, body, "s3cret", "a token is never echoed")
		})
	}
}
