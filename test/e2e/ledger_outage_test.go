package e2e

// Issue 21, "the ledger never loses a row": spendguard writes every
// request's ledger row to a local spool before it answers the request,
// and ships the spool to PostgreSQL in order, retrying for as long as
// PostgreSQL is away. These tests take a private PostgreSQL server
// (pgtest.StartServer) away under real `spendguard serve` processes on
// the Redis store, behind envoysim, and require afterwards that the
// ledger holds exactly one row for every request spendguard answered.

import (
	"context"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/prometheus/common/expfmt"
	"github.com/prometheus/common/model"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/pgtest"
	"github.com/spendguard/spendguard/test/redistest"
)

// spoolConfig: a Redis store (shared Redis, a key prefix per test), a
// budget no load reaches, a tenant "broke" whose budget refuses every
// request (402, a row with decision rejected), and the ledger with its
// spool. %s: key prefix, DSN, spool directory.
const spoolConfig = `
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
    hard_usd: 1000
  - name: broke
    match: {tenant: broke}
    period: day
    hard_usd: 0.000001
store:
  backend: redis
  redis:
    address: 127.0.0.1:6379
    key_prefix: "%s"
    timeout: 2s
  on_error: fail_closed
exporters:
  batch_size: 64
  postgres:
    dsn: %q
    start_timeout: 10s
    ready_requires_ledger: false
    spool:
      dir: %q
      max_bytes: 1GiB
      on_full: refuse
      fsync_interval: 10ms
      fsync_rows: 256
      segment_bytes: 16MiB
`

const streamedChat = `{"model":"Hunyuan","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`

// outageSetup is one test's PostgreSQL server, spendguard configuration
// (with its own spool directory) and fake vLLM.
type outageSetup struct {
	t       *testing.T
	pg      *pgtest.Server
	cfgPath string
	vllmURL string
}

func newOutageSetup(t *testing.T) *outageSetup {
	t.Helper()
	_, prefix := redistest.Shared(t)
	pg := pgtest.StartServer(t)
	_, vllmURL := startVLLM(t, fakevllm.Config{PromptTokens: 10, CompletionTokens: 5, Latency: 2 * time.Millisecond})
	return &outageSetup{t: t, pg: pg, vllmURL: vllmURL,
		cfgPath: writeConfig(t, fmt.Sprintf(spoolConfig, prefix, pg.DSN(), t.TempDir()))}
}

// start runs a spendguard process behind its own proxy and returns it
// with the proxy's URL.
func (o *outageSetup) start(name string) (*replicaProc, string) {
	o.t.Helper()
	r := startReplica(o.t, name, o.cfgPath, "--shutdown-timeout", "5s")
	return r, proxyFor(o.t, r.grpcAddr, o.vllmURL).URL()
}

// answers records, per x-request-id, the status spendguard answered.
type answers struct {
	mu     sync.Mutex
	status map[string]int
}

func newAnswers() *answers { return &answers{status: map[string]int{}} }

// send makes request n: every third streamed, every tenth from the broke
// tenant (402); a transport error is recorded as status 0. It returns the
// status and the status spendguard should answer.
func (a *answers) send(ctx context.Context, url, id string, n int) (got, want int) {
	body, tenant, want := smallChat, "acme", http.StatusOK
	if n%3 == 1 {
		body = streamedChat
	}
	if n%10 == 7 {
		tenant, want = "broke", http.StatusPaymentRequired
	}
	resp, err := postTo(ctx, url, body, "x-tenant-id", tenant, "x-request-id", id)
	if err != nil {
		resp.status = 0
	}
	a.mu.Lock()
	a.status[id] = resp.status
	a.mu.Unlock()
	return resp.status, want
}

func (a *answers) len() int {
	a.mu.Lock()
	defer a.mu.Unlock()
	return len(a.status)
}

// split returns the ids answered with 200 or 402 (each has a ledger row)
// and the others with their status.
func (a *answers) split() (rows map[string]bool, other map[string]int) {
	a.mu.Lock()
	defer a.mu.Unlock()
	rows, other = map[string]bool{}, map[string]int{}
	for id, st := range a.status {
		if st == http.StatusOK || st == http.StatusPaymentRequired {
			rows[id] = true
		} else {
			other[id] = st
		}
	}
	return rows, other
}

// load sends rate requests per second from workers goroutines until ctx
// ends, ids "<tag>-<n>". A request in flight when ctx ends is finished
// (each has 30s): cutting it would leave it neither answered nor
// certainly unrecorded.
func (a *answers) load(ctx context.Context, url, tag string, rate, workers int) *sync.WaitGroup {
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			tick := time.NewTicker(time.Duration(workers) * time.Second / time.Duration(rate))
			defer tick.Stop()
			for n := w; ; n += workers {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
				}
				reqCtx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
				a.send(reqCtx, url, fmt.Sprintf("%s-%06d", tag, n), n)
				cancel()
			}
		})
	}
	return &wg
}

// ledgerIDs returns every request_id in the ledger (with repeats), or an
// error while PostgreSQL or the table is not there.
func ledgerIDs(dsn string) ([]string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT request_id FROM spendguard_ledger")
	if err != nil {
		return nil, err
	}
	return pgx.CollectRows(rows, pgx.RowTo[string])
}

// requireLedger waits up to within for the ledger to hold one row per id
// of want, then requires exactly that: no id missing, none extra, none
// twice. Failures name the ids.
func requireLedger(t *testing.T, dsn string, want map[string]bool, within time.Duration) {
	t.Helper()
	var ids []string
	var err error
	deadline := time.Now().Add(within)
	for {
		ids, err = ledgerIDs(dsn)
		if (err == nil && len(ids) >= len(want)) || time.Now().After(deadline) {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	require.NoError(t, err, "reading the ledger")
	seen := map[string]int{}
	for _, id := range ids {
		seen[id]++
	}
	var missing, extra, twice []string
	for id := range want {
		if seen[id] == 0 {
			missing = append(missing, id)
		}
	}
	for id, n := range seen {
		if !want[id] {
			extra = append(extra, id)
		}
		if n > 1 {
			twice = append(twice, fmt.Sprintf("%s×%d", id, n))
		}
	}
	if len(missing) > 0 {
		t.Errorf("%d of %d answered requests have no ledger row (%d rows in all): %s",
			len(missing), len(want), len(ids), sample(missing))
	}
	if len(extra) > 0 {
		t.Errorf("%d ledger rows belong to no answered request: %s", len(extra), sample(extra))
	}
	if len(twice) > 0 {
		t.Errorf("%d request ids have more than one row (count(*) != count(distinct request_id)): %s",
			len(twice), sample(twice))
	}
}

// sample lists up to 10 of ids, sorted.
func sample(ids []string) string {
	sort.Strings(ids)
	if len(ids) > 10 {
		return strings.Join(ids[:10], ", ") + fmt.Sprintf(", ... (%d more)", len(ids)-10)
	}
	return strings.Join(ids, ", ")
}

// spoolMetrics reads the spool's metrics from a spendguard's /metrics,
// each summed over its series; a metric that is not exported is absent
// from the map.
func spoolMetrics(t *testing.T, adminAddr string) map[string]float64 {
	t.Helper()
	resp, err := http.Get("http://" + adminAddr + "/metrics")
	require.NoError(t, err)
	defer resp.Body.Close()
	parser := expfmt.NewTextParser(model.UTF8Validation)
	families, err := parser.TextToMetricFamilies(resp.Body)
	require.NoError(t, err)
	out := map[string]float64{}
	for _, name := range spoolMetricNames {
		f, ok := families[name]
		if !ok {
			continue
		}
		var v float64
		for _, m := range f.GetMetric() {
			v += m.GetCounter().GetValue() + m.GetGauge().GetValue() + m.GetUntyped().GetValue()
		}
		out[name] = v
	}
	return out
}

// requireSpoolEmpty waits (10s at most) for the spool to report no rows
// waiting, and requires that none was dropped and that every spool metric
// is exported.
func requireSpoolEmpty(t *testing.T, adminAddr string) {
	t.Helper()
	var m map[string]float64
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(100 * time.Millisecond) {
		m = spoolMetrics(t, adminAddr)
		if v, ok := m["spendguard_ledger_spool_rows"]; (ok && v == 0) || time.Now().After(deadline) {
			break
		}
	}
	var absent []string
	for _, name := range spoolMetricNames {
		if _, ok := m[name]; !ok {
			absent = append(absent, name)
		}
	}
	assert.Empty(t, absent, "metrics missing from /metrics")
	assert.Zero(t, m["spendguard_ledger_spool_rows"], "spendguard_ledger_spool_rows once everything is shipped")
	assert.Zero(t, m["spendguard_ledger_rows_dropped_total"], "spendguard_ledger_rows_dropped_total (on_full: refuse)")
	t.Logf("spool metrics at the end: %v", m)
}

// spoolMetricNames are the ledger spool's metrics.
var spoolMetricNames = []string{"spendguard_ledger_spool_rows", "spendguard_ledger_spool_bytes",
	"spendguard_ledger_spool_oldest_age_seconds", "spendguard_ledger_rows_shipped_total", "spendguard_ledger_rows_dropped_total"}

// outageUnderLoad runs load at rate requests per second, stops PostgreSQL
// 5s in and starts it outage later, keeps the load up 15s more, then
// requires every answered request's row in the ledger within a minute.
func outageUnderLoad(t *testing.T, rate int, outage time.Duration) {
	o := newOutageSetup(t)
	sg, url := o.start("spooled")
	a := newAnswers()
	ctx, stopLoad := context.WithCancel(context.Background())
	wg := a.load(ctx, url, "load", rate, 3)
	defer func() { stopLoad(); wg.Wait() }()

	time.Sleep(5 * time.Second)
	o.pg.Stop()
	atStop := a.len()
	time.Sleep(outage)
	atStart := a.len()
	o.pg.Start()
	t.Logf("PostgreSQL stopped after %d requests, started after %d", atStop, atStart)
	require.Greater(t, atStart, atStop, "requests were made while PostgreSQL was down")
	time.Sleep(15 * time.Second)
	stopLoad()
	wg.Wait()

	rows, other := a.split()
	t.Logf("%d requests answered with 200 or 402, %d otherwise", len(rows), len(other))
	if len(other) > 0 {
		var list []string
		for id, st := range other {
			list = append(list, fmt.Sprintf("%s:%d", id, st))
		}
		t.Errorf("%d requests were answered neither 200 nor 402 (status 0: no answer): %s", len(other), sample(list))
	}
	requireLedger(t, o.pg.DSN(), rows, time.Minute)
	requireSpoolEmpty(t, sg.adminAddr)
}

// TestLedgerOutage20sUnderLoad: PostgreSQL stopped for 20s under ~30
// requests per second (plain, streamed and refused): every answered
// request has exactly one row afterwards and the spool drains to zero.
func TestLedgerOutage20sUnderLoad(t *testing.T) {
	t.Parallel()
	outageUnderLoad(t, 30, 20*time.Second)
}

// TestLedgerOutage2mUnderLoad: the same with PostgreSQL away for two
// minutes at ~10 requests per second.
func TestLedgerOutage2mUnderLoad(t *testing.T) {
	t.Parallel()
	outageUnderLoad(t, 10, 2*time.Minute)
}

// sendAnswered sends n requests "<tag>-<i>" one after the other and
// requires each to be answered as it should (200, or 402 for the broke
// tenant); it returns their ids.
func sendAnswered(t *testing.T, url, tag string, n int) map[string]bool {
	t.Helper()
	a := newAnswers()
	for i := range n {
		id := fmt.Sprintf("%s-%03d", tag, i)
		got, want := a.send(context.Background(), url, id, i)
		require.Equal(t, want, got, "request %s", id)
	}
	rows, _ := a.split()
	return rows
}

// outageThenEnd: a spendguard serving with PostgreSQL up (5 rows written),
// PostgreSQL stopped, 50 requests answered, the process ended by end;
// PostgreSQL started and a new spendguard on the same spool: all 55 rows
// arrive, once each.
func outageThenEnd(t *testing.T, end func(*replicaProc)) {
	o := newOutageSetup(t)
	first, url := o.start("first")
	want := sendAnswered(t, url, "before", 5)
	requireLedger(t, o.pg.DSN(), want, 30*time.Second)

	o.pg.Stop()
	during := sendAnswered(t, url, "during", 50)
	began := time.Now()
	end(first)
	t.Logf("the first spendguard ended %s after the signal", time.Since(began).Round(time.Millisecond))
	o.pg.Start()
	for id := range during {
		want[id] = true
	}

	second, _ := o.start("second")
	requireLedger(t, o.pg.DSN(), want, time.Minute)
	requireSpoolEmpty(t, second.adminAddr)
}

// TestLedgerOutageSIGTERM: SIGTERM while PostgreSQL is down ends the
// process cleanly (status 0, within replicaProc.stop's 30s; its
// --shutdown-timeout is 5s) and leaves the rows in the spool; the next
// process ships them.
func TestLedgerOutageSIGTERM(t *testing.T) {
	t.Parallel()
	outageThenEnd(t, func(r *replicaProc) { r.stop() })
}

// TestLedgerOutageKill9: SIGKILL while PostgreSQL is down loses no row of
// an answered request: each was in the spool before its answer.
func TestLedgerOutageKill9(t *testing.T) {
	t.Parallel()
	outageThenEnd(t, func(r *replicaProc) { r.kill() })
}

// TestLedgerDownAtStart: with the Redis store, spendguard starts while
// PostgreSQL is down (a fresh server, the schema never migrated), is
// ready and serves; when PostgreSQL comes, the rows arrive.
func TestLedgerDownAtStart(t *testing.T) {
	t.Parallel()
	o := newOutageSetup(t)
	o.pg.Stop()
	sg, url := o.start("started-without-ledger")
	resp, err := http.Get("http://" + sg.adminAddr + "/readyz")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode, "/readyz ignores the ledger (ready_requires_ledger: false)")
	want := sendAnswered(t, url, "down", 20)

	o.pg.Start()
	requireLedger(t, o.pg.DSN(), want, time.Minute)
	requireSpoolEmpty(t, sg.adminAddr)
}
