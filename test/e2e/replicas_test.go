package e2e

// Helpers for the store tests: spendguard replicas run as real OS processes
// of the built binary (so that one can be killed with SIGKILL), each behind
// its own envoysim proxy, with the budget counters read straight from the
// store the replicas share.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/test/envoysim"
)

// TestMain removes the spendguard binary built for the replica tests.
func TestMain(m *testing.M) {
	code := m.Run()
	if binDir != "" {
		os.RemoveAll(binDir)
	}
	os.Exit(code)
}

var (
	buildOnce sync.Once
	binDir    string
	binPath   string
	buildErr  error
)

// spendguardBinary builds cmd/spendguard once per test binary run.
func spendguardBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		binDir, buildErr = os.MkdirTemp("", "spendguard-e2e-bin-")
		if buildErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "spendguard")
		out, err := exec.Command("go", "build", "-o", binPath, "github.com/spendguard/spendguard/cmd/spendguard").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	require.NoError(t, buildErr)
	return binPath
}

// replicaProc is one `spendguard serve` process.
type replicaProc struct {
	t         *testing.T
	name      string
	cmd       *exec.Cmd
	grpcAddr  string
	adminAddr string
	logs      *lockedLog
	exited    chan struct{}
	exitErr   error
}

type lockedLog struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedLog) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedLog) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startReplica runs the binary with configPath (and extra flags of
// `spendguard serve`) and waits for its "serving" log line to learn the
// ext_proc and admin addresses. The process is killed when the test ends;
// its log is printed if the test failed.
func startReplica(t *testing.T, name, configPath string, extra ...string) *replicaProc {
	t.Helper()
	r := &replicaProc{t: t, name: name, logs: &lockedLog{}, exited: make(chan struct{})}
	args := append([]string{"serve", "--config", configPath,
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--log-level", "info", "--reload-interval", "0"}, extra...)
	r.cmd = exec.Command(spendguardBinary(t), args...)
	stderr, err := r.cmd.StderrPipe()
	require.NoError(t, err)
	require.NoError(t, r.cmd.Start())
	addr := make(chan [2]string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			fmt.Fprintln(r.logs, line)
			var entry struct {
				Msg       string `json:"msg"`
				GRPCAddr  string `json:"grpc_addr"`
				AdminAddr string `json:"admin_addr"`
			}
			if json.Unmarshal([]byte(line), &entry) == nil && entry.Msg == "spendguard serving" {
				addr <- [2]string{entry.GRPCAddr, entry.AdminAddr}
			}
		}
		_, _ = io.Copy(r.logs, stderr)
		r.exitErr = r.cmd.Wait()
		close(r.exited)
	}()
	t.Cleanup(func() {
		r.kill()
		if t.Failed() {
			t.Logf("replica %s log:\n%s", name, r.logs.String())
		}
	})
	select {
	case a := <-addr:
		r.grpcAddr, r.adminAddr = a[0], a[1]
	case <-r.exited:
		t.Fatalf("replica %s exited at start: %v\n%s", name, r.exitErr, r.logs.String())
	case <-time.After(30 * time.Second):
		t.Fatalf("replica %s did not start serving:\n%s", name, r.logs.String())
	}
	return r
}

// kill ends the process with SIGKILL: nothing is flushed or settled.
// holderHint is a part of the process's lease holder id (its pid
// between slashes: budget/lease names holders host/pid/random).
func (r *replicaProc) holderHint() string { return fmt.Sprintf("/%d/", r.cmd.Process.Pid) }

func (r *replicaProc) kill() {
	_ = r.cmd.Process.Signal(syscall.SIGKILL)
	<-r.exited
}

// stop sends SIGTERM and requires a clean exit.
func (r *replicaProc) stop() {
	r.t.Helper()
	require.NoError(r.t, r.cmd.Process.Signal(syscall.SIGTERM))
	select {
	case <-r.exited:
	case <-time.After(30 * time.Second):
		r.t.Fatalf("replica %s did not exit after SIGTERM", r.name)
	}
	require.NoError(r.t, r.exitErr, "replica %s exit status:\n%s", r.name, r.logs.String())
}

// proxyFor starts an envoysim proxy in front of processorAddr.
func proxyFor(t *testing.T, processorAddr, upstream string) *envoysim.Server {
	t.Helper()
	cfg := envoysim.DefaultConfig(processorAddr, upstream)
	cfg.MessageTimeout = 5 * time.Second // generous: the race detector on 2 shared cores is slow
	px, err := envoysim.New(cfg)
	require.NoError(t, err)
	srv, err := px.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { srv.Close() })
	return srv
}

// writeConfig writes a configuration file for the test.
func writeConfig(t *testing.T, yaml string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(yaml), 0o600))
	return path
}

// postTo sends a chat request through a proxy; a transport error (the
// replica died mid-request) gives status 0.
func postTo(ctx context.Context, url, body string, headers ...string) (response, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url+"/v1/chat/completions", strings.NewReader(body))
	if err != nil {
		return response{}, err
	}
	req.Header.Set("content-type", "application/json")
	for i := 0; i+1 < len(headers); i += 2 {
		req.Header.Set(headers[i], headers[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return response{}, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return response{status: resp.StatusCode, header: resp.Header, body: b}, err
}

// storeView reads the counters of a configuration's budgets from its store
// (the test's own connection to the Redis the replicas share).
type storeView struct {
	t      *testing.T
	cfg    *config.Compiled
	store  stores.Store
	engine *budget.Engine
}

func viewStore(t *testing.T, configYAML string) *storeView {
	t.Helper()
	cfg, err := config.Parse([]byte(configYAML))
	require.NoError(t, err)
	s, err := stores.Open(context.Background(), cfg.File.Store, nil)
	require.NoError(t, err)
	t.Cleanup(func() { s.Close() })
	return &storeView{t: t, cfg: cfg, store: s, engine: budget.NewEngine(s, time.Now)}
}

// counter returns committed and reserved of the first budget that applies
// to dims (the call also sweeps expired reservations of that counter).
func (v *storeView) counter(dims map[string]string) (budget.Counter, error) {
	scopes := v.cfg.Snapshot.Budgets.Applicable(dims)
	require.NotEmpty(v.t, scopes)
	st, err := v.engine.Status(context.Background(), scopes[:1])
	if err != nil {
		return budget.Counter{}, err
	}
	return st[0].Counter, nil
}

// usageCost is the cost in nano-USD of a non-streamed response's usage at
// the given per-token prices.
func usageCost(t *testing.T, body []byte, inputPerToken, outputPerToken int64) int64 {
	t.Helper()
	var r struct {
		Usage struct {
			Prompt     int64 `json:"prompt_tokens"`
			Completion int64 `json:"completion_tokens"`
		} `json:"usage"`
	}
	require.NoError(t, json.Unmarshal(body, &r), "%s", body)
	return r.Usage.Prompt*inputPerToken + r.Usage.Completion*outputPerToken
}

// startFailingReplica runs `spendguard serve` and requires it to exit with
// status 1 at start; it returns what the process printed.
func startFailingReplica(t *testing.T, configPath string) string {
	t.Helper()
	cmd := exec.Command(spendguardBinary(t), "serve", "--config", configPath,
		"--grpc-addr", "127.0.0.1:0", "--admin-addr", "127.0.0.1:0", "--reload-interval", "0")
	out, err := cmd.CombinedOutput()
	var exit *exec.ExitError
	require.ErrorAs(t, err, &exit, "spendguard started:\n%s", out)
	assert.Equal(t, 1, exit.ExitCode(), "%s", out)
	return string(out)
}

func writeFile(path, content string) error { return os.WriteFile(path, []byte(content), 0o600) }
