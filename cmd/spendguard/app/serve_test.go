package app_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/envoysim"
	"github.com/spendguard/spendguard/test/fakevllm"
)

func start(t *testing.T) *app.Instance {
	t.Helper()
	in, err := app.Start(app.ServeOptions{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", LogOutput: io.Discard, ShutdownTimeout: 10 * time.Second})
	require.NoError(t, err)
	return in
}

func TestVersionAndUsage(t *testing.T) {
	var out, errOut bytes.Buffer
	assert.Equal(t, 0, app.Main(context.Background(), []string{"version"}, &out, &errOut))
	assert.True(t, strings.HasPrefix(out.String(), "spendguard "))
	assert.Equal(t, 2, app.Main(context.Background(), nil, &out, &errOut))
	assert.Equal(t, 2, app.Main(context.Background(), []string{"frobnicate"}, &out, &errOut))
	assert.Contains(t, errOut.String(), `unknown command "frobnicate"`)
	errOut.Reset()
	assert.Equal(t, 2, app.Main(context.Background(), []string{"serve", "--log-format", "xml", "--log-level", "loud"}, &out, &errOut))
	assert.Contains(t, errOut.String(), "--log-level")
	assert.Contains(t, errOut.String(), "--log-format", "every flag problem is reported at once")
}

func TestServeAnswersHealthAndAdmin(t *testing.T) {
	in := start(t)
	defer in.Shutdown()
	conn, err := grpc.NewClient(in.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	for _, svc := range []string{"", "envoy.service.ext_proc.v3.ExternalProcessor"} {
		resp, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{Service: svc})
		require.NoError(t, err)
		assert.Equal(t, healthpb.HealthCheckResponse_SERVING, resp.GetStatus())
	}
	for _, path := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get("http://" + in.AdminAddr() + path)
		require.NoError(t, err)
		resp.Body.Close()
		assert.Equal(t, http.StatusOK, resp.StatusCode, path)
	}
}

// TestShutdownLetsInFlightRequestsFinish starts a slow request, shuts down
// while it is in flight, and checks that it completes and is charged.
func TestShutdownLetsInFlightRequestsFinish(t *testing.T) {
	in := start(t)
	vllm := fakevllm.New(fakevllm.Config{Latency: 300 * time.Millisecond, CompletionTokens: 10})
	url, err := vllm.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer vllm.Close()
	cfg := envoysim.DefaultConfig(in.GRPCAddr(), url)
	cfg.MessageTimeout = 5 * time.Second
	px, err := envoysim.New(cfg)
	require.NoError(t, err)
	srv, err := px.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer srv.Close()

	type result struct {
		status int
		err    error
	}
	done := make(chan result, 1)
	go func() {
		resp, err := http.Post(srv.URL()+"/v1/chat/completions", "application/json",
			strings.NewReader(`{"model":"qwen-small","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
		if err != nil {
			done <- result{err: err}
			return
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		done <- result{status: resp.StatusCode}
	}()
	require.Eventually(t, func() bool { return in.Processor.Active() == 1 }, 5*time.Second, time.Millisecond)
	require.NoError(t, in.Shutdown())
	r := <-done
	require.NoError(t, r.err)
	assert.Equal(t, http.StatusOK, r.status, "the in-flight request finished normally")
	assert.Zero(t, in.Processor.Active())

	_, err = http.Get("http://" + in.AdminAddr() + "/healthz")
	assert.Error(t, err, "the admin server is closed")
}

func TestMetricsAfterTraffic(t *testing.T) {
	in := start(t)
	defer in.Shutdown()
	vllm := fakevllm.New(fakevllm.Config{})
	url, err := vllm.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer vllm.Close()
	px, err := envoysim.New(envoysim.DefaultConfig(in.GRPCAddr(), url))
	require.NoError(t, err)
	srv, err := px.Start("127.0.0.1:0")
	require.NoError(t, err)
	defer srv.Close()
	resp, err := http.Post(srv.URL()+"/v1/chat/completions", "application/json",
		strings.NewReader(`{"model":"qwen-small","max_tokens":10,"messages":[{"role":"user","content":"hi"}]}`))
	require.NoError(t, err)
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	require.Equal(t, http.StatusOK, resp.StatusCode)

	require.Eventually(t, func() bool {
		// The per-scope gauges come from a background refresh (every 30s
		// by default); refresh now rather than wait.
		if in.RefreshBudgetGauges(context.Background()) != nil {
			return false
		}
		m, err := http.Get("http://" + in.AdminAddr() + "/metrics")
		if err != nil {
			return false
		}
		defer m.Body.Close()
		b, _ := io.ReadAll(m.Body)
		return strings.Contains(string(b), `spendguard_requests_total{decision="allowed"`) &&
			strings.Contains(string(b), "spendguard_extproc_message_duration_seconds") &&
			strings.Contains(string(b), `spendguard_budget_limit_usd{budget="tenant-daily"`)
	}, 5*time.Second, 10*time.Millisecond)
}

// TestGRPCMaxMessageBytesFlag refuses a gRPC limit that cannot hold even a
// header block (a unit mistake) or that gRPC cannot represent.
func TestGRPCMaxMessageBytesFlag(t *testing.T) {
	for _, v := range []string{"9", "65535", "-1", "2147483648"} {
		t.Run(v, func(t *testing.T) {
			var out, errOut bytes.Buffer
			assert.Equal(t, 2, app.Main(context.Background(), []string{"serve", "--grpc-max-message-bytes", v}, &out, &errOut))
			assert.Contains(t, errOut.String(), "--grpc-max-message-bytes")
		})
	}
	_, err := app.Start(app.ServeOptions{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", LogOutput: io.Discard, GRPCMaxMessageBytes: 1000})
	assert.ErrorContains(t, err, "--grpc-max-message-bytes", "Start checks the option too")
}
