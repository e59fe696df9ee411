package app_test

import (
	"bufio"
	"errors"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
)

// startWith starts spendguard on a configuration file with extra
// options.
func startWith(t testing.TB, config string, opts app.ServeOptions) *app.Instance {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(config), 0o600))
	opts.ConfigPath, opts.GRPCAddr, opts.AdminAddr, opts.LogOutput = path, "127.0.0.1:0", "127.0.0.1:0", io.Discard
	opts.ShutdownTimeout = 5 * time.Second
	in, err := app.Start(opts)
	require.NoError(t, err)
	t.Cleanup(func() { in.Shutdown() })
	return in
}

// get GETs an admin path, with a bearer token unless token is "".
func get(t *testing.T, in *app.Instance, path, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest("GET", "http://"+in.AdminAddr()+path, nil)
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

// freeAddr is a loopback address nothing listens on.
func freeAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	addr := l.Addr().String()
	require.NoError(t, l.Close())
	return addr
}

// Must show: what anonymous callers get from the open endpoints never
// names infrastructure: /readyz with an unreachable Redis says only that
// the store is unreachable; the admin token's holder gets the error
// (which names the address). /metrics is open by default and behind the
// token with metrics.require_token.
func TestAnonymousCallersLearnNothingAboutInfrastructure(t *testing.T) {
	redisAddr := freeAddr(t)
	config := strings.NewReplacer("backend: memory", "backend: redis\n  redis: {address: \""+redisAddr+"\"}").Replace(agreeBase)
	open := startWith(t, config, app.ServeOptions{ReloadInterval: 0})
	guarded := startWith(t, strings.Replace(config, "label_dimensions: [tenant]", "label_dimensions: [tenant]\n  require_token: true", 1),
		app.ServeOptions{ReloadInterval: 0})
	tokenless := startWith(t, strings.Replace(config, "admin:\n  token: good-token\n", "", 1), app.ServeOptions{ReloadInterval: 0})

	tests := []struct {
		name, path, token string
		in                *app.Instance
		status            int
		has, hasNot       string
	}{
		{"readyz anonymous", "/readyz", "", open, 503, `"status":"budget store unreachable"`, redisAddr},
		{"readyz wrong token", "/readyz", "not-the-token", open, 503, `"status":"budget store unreachable"`, redisAddr},
		{"readyz with the token", "/readyz", "good-token", open, 503, redisAddr, ""},
		{"healthz anonymous", "/healthz", "", open, 200, `"status":"ok"`, redisAddr},
		{"metrics open by default", "/metrics", "", open, 200, "spendguard_budget_metrics_scopes", redisAddr},
		{"metrics need the token when asked", "/metrics", "", guarded, 401, `"code":"unauthorized"`, "spendguard_"},
		{"metrics wrong token", "/metrics", "not-the-token", guarded, 401, "not admin.token", "spendguard_"},
		{"metrics with the token", "/metrics", "good-token", guarded, 200, "spendguard_budget_metrics_scopes", ""},
		{"budgets anonymous", "/v1/budgets", "", guarded, 401, "unauthorized", redisAddr},
		{"budgets with the token", "/v1/budgets", "good-token", open, 503, redisAddr, ""},
		{"budgets open without admin.token", "/v1/budgets", "", tokenless, 503, `"code":"store_unavailable"`, redisAddr},
		{"readyz without admin.token", "/readyz", "anything", tokenless, 503, `"status":"budget store unreachable"`, redisAddr},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, tt.in, tt.path, tt.token)
			assert.Equal(t, tt.status, status, body)
			assert.Contains(t, body, tt.has)
			if tt.hasNot != "" {
				assert.NotContains(t, body, tt.hasNot)
			}
		})
	}
}

// Must show: the admin server closes a connection left idle between
// requests (after AdminIdleTimeout; 10s is only the test's bound on
// waiting, far above the 100ms configured), and refuses oversized
// request headers.
func TestAdminServerBoundsConnections(t *testing.T) {
	in := startWith(t, agreeBase, app.ServeOptions{AdminIdleTimeout: 100 * time.Millisecond})

	t.Run("idle connection is closed", func(t *testing.T) {
		conn, err := net.Dial("tcp", in.AdminAddr())
		require.NoError(t, err)
		defer conn.Close()
		_, err = io.WriteString(conn, "GET /healthz HTTP/1.1\r\nHost: spendguard\r\n\r\n")
		require.NoError(t, err)
		r := bufio.NewReader(conn)
		resp, err := http.ReadResponse(r, nil)
		require.NoError(t, err)
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		require.Equal(t, 200, resp.StatusCode)
		require.NoError(t, conn.SetReadDeadline(time.Now().Add(10*time.Second)))
		_, err = r.ReadByte()
		var ne net.Error
		require.False(t, errors.As(err, &ne) && ne.Timeout(), "the server kept the idle connection open")
		assert.ErrorIs(t, err, io.EOF, "the server closed the idle connection")
	})

	t.Run("oversized headers", func(t *testing.T) {
		req, err := http.NewRequest("GET", "http://"+in.AdminAddr()+"/healthz", nil)
		require.NoError(t, err)
		req.Header.Set("X-Padding", strings.Repeat("a", 200<<10))
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusRequestHeaderFieldsTooLarge, resp.StatusCode)
	})
}
