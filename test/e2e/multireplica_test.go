package e2e

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/redistest"
)

// redisReplicaConfig: one tenant budget on a Redis store; Hunyuan costs
// 600 and 800 nano-USD per input and output token, so every charge is a
// multiple of 200 nano-USD; "free" costs nothing and is used to ask a
// replica for the remaining budget without spending.
const redisReplicaConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
    - {match: free, input: 0, output: 0}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: %s
limits:
  reservation_ttl: %s
store:
  backend: redis
  redis:
    address: %s
    key_prefix: "%s"
    timeout: 2s
    leases: {sync_interval: 100ms, ttl: 3s}
  on_error: %s
`

const freeProbe = `{"model":"free","max_tokens":1,"messages":[{"role":"user","content":"hi"}]}`

// smallChatWorst is the worst case reserved for smallChat, in nano-USD.
func smallChatWorst(t *testing.T) money.Nano {
	t.Helper()
	req, err := pricing.ParseRequest(pricing.ChatCompletions, []byte(smallChat))
	require.NoError(t, err)
	w := req.WorstCase(pricing.DefaultMaxOutputTokens)
	return money.Nano(w.Prompt*600 + w.Completion*800)
}

// TestFourReplicasShareOneHardCap runs four spendguard processes on one
// Redis, each behind its own proxy, and sends 200 concurrent requests
// spread over the four against one tenant's hard cap. The cap is an odd
// number of nano-USD, so spend (multiples of 200) can approach it but
// never reach it exactly, and a free request can always ask a replica for
// the remaining budget afterwards.
func TestFourReplicasShareOneHardCap(t *testing.T) {
	_, prefix := redistest.Shared(t)
	const capNano = money.Nano(4_000_001) // $0.004000001: about 100 of the ~200 requests fit
	yaml := fmt.Sprintf(redisReplicaConfig, capNano.Fixed(9), "10m", redistest.SharedAddr, prefix, "fail_closed")
	path := writeConfig(t, yaml)

	_, vllmURL := startVLLM(t, fakevllm.Config{PromptTokens: 1, Latency: 5 * time.Millisecond})

	var urls []string
	for i := range 4 {
		r := startReplica(t, fmt.Sprint("r", i), path)
		urls = append(urls, proxyFor(t, r.grpcAddr, vllmURL).URL())
	}

	// Each request reports 1 prompt token (within the estimate of smallChat)
	// and 1..100 completion tokens (max_tokens is 100): actual cost never
	// passes the reservation, so the cap must hold exactly.
	const n = 200
	results := make([]response, n)
	var wg sync.WaitGroup
	start := make(chan struct{})
	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for i := range n {
		completion := strconv.Itoa(1 + rng.IntN(100))
		wg.Go(func() {
			<-start
			resp, err := postTo(context.Background(), urls[i%4], smallChat, "x-tenant-id", "acme",
				fakevllm.HeaderCompletionTokens, completion)
			assert.NoError(t, err)
			results[i] = resp
		})
	}
	close(start)
	wg.Wait()

	statuses := map[int]int{}
	var charged int64
	for _, r := range results {
		statuses[r.status]++
		if r.status == http.StatusOK {
			charged += usageCost(t, r.body, 600, 800)
		}
	}
	t.Logf("statuses %v, charged %d nano-USD of %d", statuses, charged, capNano)
	require.Equal(t, n, statuses[http.StatusOK]+statuses[http.StatusPaymentRequired], "only 200 and 402: %v", statuses)
	require.Positive(t, statuses[http.StatusPaymentRequired], "the cap was reached")

	// Each replica sends its settled spend with its next lease sync
	// (100ms here): Redis then holds exactly what the served requests
	// cost, and nothing reserved.
	view := viewStore(t, yaml)
	var c budget.Counter
	require.Eventually(t, func() bool {
		var err error
		c, err = view.counter(map[string]string{"tenant": "acme", "model": "Hunyuan"})
		return err == nil && c.Reserved == 0 && c.Committed == money.Nano(charged)
	}, 10*time.Second, 20*time.Millisecond, "every reservation settled and sent")
	assert.LessOrEqual(t, c.Committed, capNano, "recorded spend never exceeds the cap")
	assert.Equal(t, money.Nano(charged), c.Committed, "recorded spend is exactly what the served requests cost")
	// (Spend may end well below the cap: while many requests are in
	// flight their worst cases are held, and late ones are refused.)

	// Every replica reports the same remaining budget, hence the same
	// spend, once its view has synced.
	want := (capNano - c.Committed).USD()
	for i, url := range urls {
		var got string
		require.Eventually(t, func() bool {
			resp, err := postTo(context.Background(), url, freeProbe, "x-tenant-id", "acme")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
			assert.Equal(t, "tenant-daily", resp.header.Get("x-spendguard-budget"))
			got = resp.header.Get("x-spendguard-remaining-usd")
			return got == want
		}, 10*time.Second, 20*time.Millisecond, "replica %d: remaining %s, want %s", i, got, want)
	}
}

// TestKilledReplicaLeaseIsForfeited: a replica holding reservations is
// killed with SIGKILL, so it never settles them nor gives its lease
// back. Another replica still counts the lease as held, and once the
// lease's TTL (3s here) has passed without a renewal Redis counts it in
// full as spent: the recorded spend is then higher than the truth (the
// killed requests were never served) by at most the lease, never lower,
// the budget stays refused, and nothing of the dead replica is held in
// Redis any more.
func TestKilledReplicaLeaseIsForfeited(t *testing.T) {
	c, prefix := redistest.Shared(t)
	worst := smallChatWorst(t)
	capNano := 5*worst + worst/2 // the 5 held requests leave room for no sixth
	yaml := fmt.Sprintf(redisReplicaConfig, capNano.Fixed(9), "2s", redistest.SharedAddr, prefix, "fail_closed")
	path := writeConfig(t, yaml)

	_, vllmURL := startVLLM(t, fakevllm.Config{PromptTokens: 1, CompletionTokens: 1})
	doomed := startReplica(t, "doomed", path)
	survivor := startReplica(t, "survivor", path)
	doomedURL := proxyFor(t, doomed.grpcAddr, vllmURL).URL()
	survivorURL := proxyFor(t, survivor.grpcAddr, vllmURL).URL()
	view := viewStore(t, yaml)
	acme := map[string]string{"tenant": "acme", "model": "Hunyuan"}

	// Five requests through the doomed replica hang at the upstream while
	// their reservations are held (and reported with the lease syncs).
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var wg sync.WaitGroup
	var killed atomic.Bool
	for range 5 {
		wg.Go(func() {
			// A request held at the upstream returns only when the test
			// ends; one that returns before was refused (a store call
			// that timed out on a loaded machine) and is sent again.
			for ctx.Err() == nil && !killed.Load() {
				_, _ = postTo(ctx, doomedURL, smallChat, "x-tenant-id", "acme", fakevllm.HeaderLatencyMS, "60000")
				time.Sleep(50 * time.Millisecond)
			}
		})
	}
	require.Eventually(t, func() bool {
		got, err := view.counter(acme)
		return err == nil && got.Reserved == 5*worst
	}, 20*time.Second, 20*time.Millisecond, "the doomed replica holds five reservations")

	killed.Store(true)
	doomed.kill()
	resp, err := postTo(context.Background(), survivorURL, smallChat, "x-tenant-id", "acme")
	require.NoError(t, err)
	assert.Equal(t, http.StatusPaymentRequired, resp.status, "the dead replica's lease is still out of reach: %s", resp.body)

	// After the lease TTL the next sync on the counter forfeits the lease:
	// counted as spent, in full.
	require.Eventually(t, func() bool {
		_, _ = postTo(context.Background(), survivorURL, freeProbe, "x-tenant-id", "acme")
		for _, k := range redistest.Keys(t, c, prefix+"c:{tenant-daily|day|tenant=acme}@") {
			f, err := c.HGetAll(context.Background(), k).Result()
			require.NoError(t, err)
			for name := range f {
				if strings.HasPrefix(name, "f:") && strings.Contains(name, doomed.holderHint()) {
					return true
				}
			}
		}
		return false
	}, 30*time.Second, 50*time.Millisecond, "the dead replica's lease is forfeited")
	got, err := view.counter(acme)
	require.NoError(t, err)
	assert.Zero(t, got.Reserved, "nothing held for the dead replica any more")
	assert.GreaterOrEqual(t, got.Committed, 5*worst, "its reservations are counted as spent: more than the truth, never less")
	assert.LessOrEqual(t, got.Committed, capNano)
	resp, err = postTo(context.Background(), survivorURL, smallChat, "x-tenant-id", "acme")
	require.NoError(t, err)
	assert.Equal(t, http.StatusPaymentRequired, resp.status, "%s", resp.body)

	// The dead replica holds nothing in Redis: no lease, no holder entry.
	cancel()
	wg.Wait()
	for _, k := range redistest.Keys(t, c, prefix) {
		if strings.Contains(k, ":h:{") {
			members, err := c.ZRange(context.Background(), k, 0, -1).Result()
			require.NoError(t, err)
			for _, m := range members {
				assert.NotContains(t, m, doomed.holderHint(), "the dead replica still holds a lease in %s", k)
			}
		}
	}
}
