package e2e

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/redistest"
)

// decisionLog keeps the decision of every report of one tenant.
type decisionLog struct {
	tenant string
	mu     sync.Mutex
	list   []spendguardv1.Decision
}

func (d *decisionLog) Report(r *spendguardv1.CostReport) {
	if r.GetScope()["tenant"] != d.tenant {
		return
	}
	d.mu.Lock()
	d.list = append(d.list, r.GetDecision())
	d.mu.Unlock()
}

func (d *decisionLog) since(n int) []spendguardv1.Decision {
	d.mu.Lock()
	defer d.mu.Unlock()
	return append([]spendguardv1.Decision(nil), d.list[n:]...)
}

func (d *decisionLog) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.list)
}

// outageReplica is spendguard started in-process (its processor's
// counters are read directly) behind a proxy.
type outageReplica struct {
	sg    *app.Instance
	url   string
	probe *decisionLog
}

func startOutageReplica(t *testing.T, yaml, vllmURL string) *outageReplica {
	t.Helper()
	r := &outageReplica{probe: &decisionLog{tenant: "probe"}}
	var err error
	r.sg, err = app.Start(app.ServeOptions{
		ConfigPath: writeConfig(t, yaml), GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "error", LogOutput: testWriter{t}, ShutdownTimeout: 5 * time.Second, Reporter: r.probe,
	})
	require.NoError(t, err)
	t.Cleanup(func() { r.sg.Shutdown() })
	r.url = proxyFor(t, r.sg.GRPCAddr(), vllmURL).URL()
	return r
}

// send makes one request of the probe tenant and returns its status.
func (r *outageReplica) send(t *testing.T) response {
	t.Helper()
	resp, err := postTo(context.Background(), r.url, smallChat, "x-tenant-id", "probe")
	require.NoError(t, err)
	return resp
}

// TestRedisStoppedMidLoad stops a real redis-server (its own port, data
// in an AOF) while two replicas are under load and starts it again:
// fail_closed answers 503 in OpenAI's error shape while it is down,
// fail_open serves and counts the requests as unmetered, both recover by
// themselves, and no reservation is left behind in Redis afterwards.
func TestRedisStoppedMidLoad(t *testing.T) {
	srv := redistest.Start(t, redistest.AOF()...)
	_, vllmURL := startVLLM(t, fakevllm.Config{PromptTokens: 1, CompletionTokens: 10, Latency: 2 * time.Millisecond})
	yaml := func(policy string) string {
		return fmt.Sprintf(redisReplicaConfig, "1000", "2s", srv.Addr, "sg-outage:", policy)
	}
	closed := startOutageReplica(t, yaml("fail_closed"), vllmURL)
	open := startOutageReplica(t, yaml("fail_open"), vllmURL)
	require.Equal(t, http.StatusOK, closed.send(t).status)
	require.Equal(t, http.StatusOK, open.send(t).status)

	// Load on both replicas for the whole test, from another tenant.
	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var loadBad atomic.Int64
	for _, r := range []*outageReplica{closed, open} {
		for range 3 {
			wg.Go(func() {
				for ctx.Err() == nil {
					resp, err := postTo(ctx, r.url, smallChat, "x-tenant-id", "load")
					switch {
					case ctx.Err() != nil:
					case err != nil:
						loadBad.Add(1)
					case resp.status == http.StatusOK:
					case resp.status == http.StatusServiceUnavailable && r == closed:
					default:
						loadBad.Add(1)
						t.Logf("load request: %d %s", resp.status, resp.body)
					}
				}
			})
		}
	}
	defer func() { stopLoad(); wg.Wait() }()
	time.Sleep(100 * time.Millisecond) // let the load run before the stop (not a timing assertion)

	srv.Stop()
	require.Eventually(t, func() bool { return closed.send(t).status == http.StatusServiceUnavailable },
		10*time.Second, 20*time.Millisecond)
	for range 5 {
		resp := closed.send(t)
		require.Equal(t, http.StatusServiceUnavailable, resp.status)
		assert.Contains(t, string(resp.body), `"type":"service_unavailable"`)
		assert.Contains(t, string(resp.body), `"code":"service_unavailable"`)
	}
	reports := open.probe.len()
	for range 5 {
		require.Equal(t, http.StatusOK, open.send(t).status, "fail_open serves while Redis is down")
	}
	require.Eventually(t, func() bool { return open.probe.len() == reports+5 }, 10*time.Second, 10*time.Millisecond)
	for _, d := range open.probe.since(reports) {
		assert.Equal(t, spendguardv1.Decision_DECISION_UNMETERED, d)
	}

	srv.Restart()
	require.Eventually(t, func() bool { return closed.send(t).status == http.StatusOK },
		10*time.Second, 20*time.Millisecond, "fail_closed recovers by itself")
	require.Eventually(t, func() bool {
		n := open.probe.len()
		open.send(t)
		return waitDecision(open.probe, n) == spendguardv1.Decision_DECISION_ALLOWED
	}, 10*time.Second, 20*time.Millisecond, "fail_open meters again by itself")
	stopLoad()
	wg.Wait()
	assert.Zero(t, loadBad.Load(), "load requests got only 200 (and 503 from fail_closed)")
	for range 3 {
		n := open.probe.len()
		require.Equal(t, http.StatusOK, open.send(t).status)
		assert.Equal(t, spendguardv1.Decision_DECISION_ALLOWED, waitDecision(open.probe, n))
	}

	// Settles never failed: with leases they stay in the replica while
	// Redis is down and are sent when it answers. Once the load has
	// stopped nothing is reserved, and after the replicas shut down (which
	// gives their leases back) nothing is held in Redis.
	view := viewStore(t, yaml("fail_closed"))
	c := srv.Client()
	for _, tenant := range []string{"load", "probe"} {
		require.Eventually(t, func() bool {
			got, err := view.counter(map[string]string{"tenant": tenant, "model": "Hunyuan"})
			return err == nil && got.Reserved == 0
		}, 20*time.Second, 50*time.Millisecond)
	}
	require.NoError(t, closed.sg.Shutdown())
	require.NoError(t, open.sg.Shutdown())
	for _, k := range redistest.Keys(t, c, "sg-outage:") {
		typ, err := c.Type(context.Background(), k).Result()
		require.NoError(t, err)
		switch typ {
		case "zset":
			members, err := c.ZRange(context.Background(), k, 0, -1).Result()
			require.NoError(t, err)
			assert.Empty(t, members, "reservations or lease holders left in %s", k)
		case "hash":
			h, err := c.HGetAll(context.Background(), k).Result()
			require.NoError(t, err)
			for _, f := range []string{"r", "l", "q"} {
				if v, ok := h[f]; ok {
					assert.Equal(t, "0", v, "%s left in %s", f, k)
				}
			}
			for f := range h {
				assert.NotContains(t, f, "i:", "reservation left in %s", k)
				assert.False(t, strings.HasPrefix(f, "l:") || strings.HasPrefix(f, "q:"), "lease field %s left in %s", f, k)
			}
		}
	}
}

// waitDecision waits for report n of a decision log.
func waitDecision(d *decisionLog, n int) spendguardv1.Decision {
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		if got := d.since(n); len(got) > 0 {
			return got[0]
		}
		time.Sleep(5 * time.Millisecond)
	}
	return spendguardv1.Decision_DECISION_UNSPECIFIED
}
