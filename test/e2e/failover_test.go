package e2e

import (
	"context"
	"fmt"
	"net/http"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/pgtest"
	"github.com/spendguard/spendguard/test/redistest"
)

// failoverConfig is redisReplicaConfig on Sentinel, with the ledger.
// %s: hard cap, sentinel addresses (YAML list), key prefix, ledger DSN.
const failoverConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: %s
store:
  backend: redis
  redis:
    sentinel: {master_name: %s, addresses: %s}
    key_prefix: "%s"
    timeout: 500ms
    leases: {sync_interval: 100ms, ttl: 2m}
exporters:
  postgres:
    dsn: %q
`

// TestSentinelFailoverMidLoadLedgerEqualsCounters: three spendguard
// processes on a Sentinel-watched Redis, under load from one tenant,
// while the primary is killed; Sentinel promotes the replica and the old
// primary returns as its replica. Requests get 200, 402 or (while no
// primary answers) 503 or 504; after the load stops and the replicas shut down
// with SIGTERM, the promoted primary's counter equals the ledger's sum of
// the served requests' cost to the nano-USD, and neither passes the cap.
func TestSentinelFailoverMidLoadLedgerEqualsCounters(t *testing.T) {
	sn := redistest.StartSentinel(t)
	dsn := pgtest.NewDatabase(t)
	_, prefix := redistest.Shared(t)      // a unique prefix; the keys live on the Sentinel set
	const capNano = money.Nano(6_000_001) // about 150 requests: reached around the failover
	addrs := fmt.Sprintf("[%q, %q, %q]", sn.SentinelAddrs()[0], sn.SentinelAddrs()[1], sn.SentinelAddrs()[2])
	yaml := fmt.Sprintf(failoverConfig, capNano.Fixed(9), redistest.SentinelMaster, addrs, prefix, dsn)
	path := writeConfig(t, yaml)
	_, vllmURL := startVLLM(t, fakevllm.Config{PromptTokens: 1, Latency: 2 * time.Millisecond})

	var replicas []*replicaProc
	var urls []string
	for i := range 3 {
		r := startReplica(t, fmt.Sprint("r", i), path)
		replicas = append(replicas, r)
		urls = append(urls, proxyFor(t, r.grpcAddr, vllmURL).URL())
	}

	ctx, stopLoad := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	var served, refused, unavailable, other atomic.Int64
	for i := range 6 {
		wg.Go(func() {
			for n := 0; ctx.Err() == nil; n++ {
				resp, err := postTo(ctx, urls[i%3], smallChat, "x-tenant-id", "acme",
					fakevllm.HeaderCompletionTokens, fmt.Sprint(1+(n*7+i)%100))
				switch {
				case ctx.Err() != nil:
				case err != nil:
					other.Add(1)
				case resp.status == http.StatusOK:
					served.Add(1)
				case resp.status == http.StatusPaymentRequired:
					refused.Add(1)
					time.Sleep(5 * time.Millisecond)
				case resp.status == http.StatusServiceUnavailable, resp.status == http.StatusGatewayTimeout:
					// 503 while no primary answers; 504 when the proxy's
					// message timeout ends a request that waited for one.
					unavailable.Add(1)
					time.Sleep(5 * time.Millisecond)
				default:
					other.Add(1)
					t.Logf("load: %d %s", resp.status, resp.body)
				}
			}
		})
	}
	progress := func(what string, cond func() bool) {
		require.Eventually(t, cond, 60*time.Second, 10*time.Millisecond, what)
	}
	progress("load before the failover", func() bool { return served.Load() > 100 })
	sn.KillPrimary()
	sn.WaitFailover()
	sn.RestartOldPrimary() // back as the promoted primary's replica: syncs count again
	before := served.Load()
	progress("load after the failover", func() bool { return served.Load() > before+100 || refused.Load() > 50 })
	stopLoad()
	wg.Wait()
	for _, r := range replicas {
		r.stop() // SIGTERM: settles, sends the spend, gives the leases back, flushes the ledger
	}
	t.Logf("served %d, refused %d, unavailable %d during the failover", served.Load(), refused.Load(), unavailable.Load())
	assert.Zero(t, other.Load(), "only 200, 402, 503 and 504")

	cfg, err := config.Parse([]byte(yaml))
	require.NoError(t, err)
	s, err := stores.Open(context.Background(), cfg.File.Store, nil)
	require.NoError(t, err)
	defer s.Close()
	scopes := cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	st, err := budget.NewEngine(s, time.Now).Status(context.Background(), scopes[:1])
	require.NoError(t, err)

	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	var ledger, rows int64
	require.NoError(t, conn.QueryRow(context.Background(),
		`SELECT coalesce(sum(cost_nano_usd), 0), count(*) FROM spendguard_ledger WHERE decision IN ('allowed', 'downgraded')`).Scan(&ledger, &rows))
	// Every served request has its row; a request the proxy timed out
	// after the upstream answered was charged too, and has one as well.
	assert.GreaterOrEqual(t, rows, served.Load(), "a ledger row per served request")
	assert.Equal(t, money.Nano(ledger), st[0].Counter.Committed, "the counter equals the ledger to the nano-USD")
	assert.Zero(t, st[0].Counter.Reserved)
	assert.LessOrEqual(t, st[0].Counter.Committed, capNano, "no overshoot")
	assert.Positive(t, refused.Load(), "the cap was reached")
}
