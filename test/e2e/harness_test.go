package e2e

import (
	"bytes"
	"context"
	"flag"
	"io"
	"math/rand/v2"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spendguard/spendguard/test/fixtures"

	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/envoy"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/envoysim"
	"github.com/spendguard/spendguard/test/fakevllm"
)

var seedFlag = flag.Uint64("e2e.seed", 0, "seed for the random chunk splits (0: pick one and print it)")

// stack is one end-to-end setup: fake vLLM, spendguard, envoysim.
type stack struct {
	t       *testing.T
	vllm    *fakevllm.Server
	sg      *app.Instance
	proxy   *envoysim.Server
	reports *reportLog
	seed    uint64
	splits  atomic.Int64 // response bodies the chunker has split
}

type reportLog struct {
	mu   sync.Mutex
	list []*spendguardv1.CostReport
}

func (l *reportLog) Report(r *spendguardv1.CostReport) {
	l.mu.Lock()
	l.list = append(l.list, r)
	l.mu.Unlock()
}

func (l *reportLog) all() []*spendguardv1.CostReport {
	l.mu.Lock()
	defer l.mu.Unlock()
	return append([]*spendguardv1.CostReport(nil), l.list...)
}

// newStack starts everything with the given spendguard configuration. The
// proxy splits every response body at random offsets from a seeded source.
func newStack(t *testing.T, configYAML string, vcfg fakevllm.Config) *stack {
	t.Helper()
	return newStackWith(t, configYAML, vcfg, stackOptions{})
}

// stackOptions change the defaults of newStack.
type stackOptions struct {
	// streamThrough turns the random chunker off: envoysim then forwards each
	// upstream read as it comes (the chunker reads whole bodies first, which
	// client-abort tests cannot use).
	streamThrough bool
	// shippedEnvoy makes envoysim behave as envoy/envoy.yaml configures
	// Envoy (buffer limit, local_reply_config, ext_proc settings), the
	// message timeout aside.
	shippedEnvoy bool
	// grpcMaxMessageBytes is spendguard's --grpc-max-message-bytes (0: its default).
	grpcMaxMessageBytes int
	// logs, when set, also receives spendguard's log.
	logs io.Writer
}

func newStackWith(t *testing.T, configYAML string, vcfg fakevllm.Config, opts stackOptions) *stack {
	t.Helper()
	s := &stack{t: t, reports: &reportLog{}}
	s.seed = *seedFlag
	if s.seed == 0 {
		s.seed = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("chunk splits used seed %d: rerun with -e2e.seed=%d", s.seed, s.seed)
		}
	})

	s.vllm = fakevllm.New(vcfg)
	vllmURL, err := s.vllm.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { s.vllm.Close() })

	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(configYAML), 0o600))
	var logOut io.Writer = testWriter{t}
	if opts.logs != nil {
		logOut = io.MultiWriter(logOut, opts.logs)
	}
	s.sg, err = app.Start(app.ServeOptions{
		ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "warn", LogOutput: logOut, ShutdownTimeout: 5 * time.Second,
		Reporter: s.reports, GRPCMaxMessageBytes: opts.grpcMaxMessageBytes,
	})
	require.NoError(t, err)
	t.Cleanup(func() { s.sg.Shutdown() })

	cfg := envoysim.DefaultConfig(s.sg.GRPCAddr(), vllmURL)
	if opts.shippedEnvoy {
		require.NoError(t, cfg.ApplyBootstrapYAML(envoy.BootstrapYAML))
	}
	cfg.MessageTimeout = 5 * time.Second // generous: the race detector on 2 shared cores is slow
	var mu sync.Mutex
	rng := rand.New(rand.NewPCG(s.seed, 0x5eed))
	if !opts.streamThrough {
		cfg.ResponseChunker = func(body []byte) [][]byte {
			mu.Lock()
			defer mu.Unlock()
			s.splits.Add(1)
			return randomSplit(rng, body)
		}
	}
	px, err := envoysim.New(cfg)
	require.NoError(t, err)
	s.proxy, err = px.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { s.proxy.Close() })
	return s
}

// randomSplit cuts body into 1..8 chunks at random offsets (any byte:
// inside UTF-8 sequences, strings, numbers).
func randomSplit(rng *rand.Rand, body []byte) [][]byte {
	if len(body) < 2 {
		return [][]byte{body}
	}
	cuts := rng.IntN(8)
	var out [][]byte
	rest := body
	for i := 0; i < cuts && len(rest) > 1; i++ {
		n := 1 + rng.IntN(len(rest)-1)
		out = append(out, rest[:n])
		rest = rest[n:]
	}
	return append(out, rest)
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimRight(p, "\n")))
	return len(p), nil
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// post sends a real HTTP request through the proxy.
func (s *stack) post(path string, body string, headers ...string) response {
	s.t.Helper()
	req, err := http.NewRequest(http.MethodPost, s.proxy.URL()+path, bytes.NewBufferString(body))
	require.NoError(s.t, err)
	req.Header.Set("content-type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

// counter returns the committed and reserved spend of the budgets that
// apply to dims.
func (s *stack) counters(dims map[string]string) []budget.State {
	s.t.Helper()
	scopes := s.sg.CurrentConfig().Snapshot.Budgets.Applicable(dims)
	st, err := s.sg.Budgets.Status(context.Background(), scopes)
	require.NoError(s.t, err)
	return st
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return fixtures.Read(t, name)
}

// startVLLM starts a fake vLLM on a free loopback port for the test.
func startVLLM(t *testing.T, cfg fakevllm.Config) (*fakevllm.Server, string) {
	t.Helper()
	vllm := fakevllm.New(cfg)
	url, err := vllm.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { vllm.Close() })
	return vllm, url
}
