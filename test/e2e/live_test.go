package e2e

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/envoysim"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// liveStack is a stack whose spendguard reads its configuration from a
// file that may change while it runs (hot reload on), whose upstream can
// hold requests, and which can open more Envoy listeners (e.g. one with
// jwt_authn's metadata).
type liveStack struct {
	*stack
	upstream *httptest.Server
	gate     *upstreamGate
	logs     *lockedBuffer // spendguard's log, for secrets checks
}

// holdHeader makes the upstream hold a request until gate.release.
const holdHeader = "x-test-hold"

// upstreamGate holds upstream requests that carry holdHeader.
type upstreamGate struct {
	entered chan struct{}
	release chan struct{}
}

// reloadDebounce is short: each test waits for the reload it causes with
// an eventually-style wait, never for a fixed time.
const reloadDebounce = 20 * time.Millisecond

// liveWait bounds eventually-style waits (generous for a loaded CI machine).
const liveWait = 15 * time.Second

func startLive(t *testing.T, configPath string) *liveStack {
	t.Helper()
	s := &liveStack{stack: &stack{t: t, reports: &reportLog{}}, logs: &lockedBuffer{}}
	s.vllm = fakevllm.New(fakevllm.Config{})
	s.gate = &upstreamGate{entered: make(chan struct{}, 16), release: make(chan struct{})}
	s.upstream = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(holdHeader) != "" {
			s.gate.entered <- struct{}{}
			<-s.gate.release
		}
		s.vllm.ServeHTTP(w, r)
	}))
	t.Cleanup(s.upstream.Close)

	var err error
	s.sg, err = app.Start(app.ServeOptions{
		ConfigPath: configPath, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "debug", LogOutput: io.MultiWriter(testWriter{t}, s.logs), ShutdownTimeout: 5 * time.Second,
		Reporter: s.reports, ReloadInterval: time.Hour, ReloadDebounce: reloadDebounce,
	})
	require.NoError(t, err)
	t.Cleanup(func() { s.sg.Shutdown() })
	s.proxy = s.listener(nil)
	return s
}

// listener starts one more Envoy stand-in in front of the same spendguard
// and upstream, attaching md to every ext_proc message as Envoy does for
// metadata_options.forwarding_namespaces.
func (s *liveStack) listener(md *corev3.Metadata) *envoysim.Server {
	s.t.Helper()
	cfg := envoysim.DefaultConfig(s.sg.GRPCAddr(), s.upstream.URL)
	cfg.MessageTimeout = 5 * time.Second
	cfg.MetadataContext = md
	px, err := envoysim.New(cfg)
	require.NoError(s.t, err)
	srv, err := px.Start("127.0.0.1:0")
	require.NoError(s.t, err)
	s.t.Cleanup(func() { srv.Close() })
	return srv
}

// postVia sends a request through the given listener.
func (s *liveStack) postVia(srv *envoysim.Server, path, body string, headers ...string) response {
	s.t.Helper()
	saved := s.proxy
	s.proxy = srv
	defer func() { s.proxy = saved }()
	return s.post(path, body, headers...)
}

// spent is what the named budget has committed for the scope of dims,
// under the configuration in force.
func (s *liveStack) spent(name string, dims map[string]string) money.Nano {
	s.t.Helper()
	var scopes []budget.Scope
	for _, sc := range s.sg.CurrentConfig().Snapshot.Budgets.Applicable(dims) {
		if sc.Budget.Name() == name {
			scopes = append(scopes, sc)
		}
	}
	require.Len(s.t, scopes, 1, "budget %s applies to %v", name, dims)
	st, err := s.sg.Budgets.Status(context.Background(), scopes)
	require.NoError(s.t, err)
	return st[0].Committed
}

// lockedBuffer is a log sink the test can read while spendguard writes.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
