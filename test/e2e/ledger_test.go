package e2e

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/fakevllm"
	"github.com/spendguard/spendguard/test/pgtest"
)

// ledgerConfig: one tenant budget per day, a rolling guard per use case
// (a little larger, so a free probe shows either in its remaining header),
// the memory store (with the snapshot section given) and the ledger at %s.
const ledgerConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
    use_case:
      - header: x-use-case
      - default: general
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
    - {match: free, input: 0, output: 0}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    timezone: Europe/Berlin
    hard_usd: 1
  - name: use-case-guard
    match: {use_case: "*"}
    rolling: 1h
    hard_usd: 1.0005
store:
  backend: memory
%s
exporters:
  batch_size: 8
  postgres:
    dsn: %q
`

func queryRows[T any](t *testing.T, dsn, sql string, scan func(pgx.CollectableRow) (T, error)) []T {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), sql)
	require.NoError(t, err)
	out, err := pgx.CollectRows(rows, scan)
	require.NoError(t, err)
	return out
}

// guard is use-case-guard's hard cap.
const guard = money.Nano(1_000_500_000)

// probe asks a replica for the remaining budget of a tenant on use case
// rag with a free request (it reserves and spends nothing).
func probe(t *testing.T, url, tenant string) string {
	t.Helper()
	resp, err := postTo(context.Background(), url, freeProbe, "x-tenant-id", tenant, "x-use-case", "rag")
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	return resp.header.Get("x-spendguard-remaining-usd")
}

func ledgerCount(t *testing.T, dsn string) int {
	return queryRows(t, dsn, "SELECT count(*) FROM spendguard_ledger", pgx.RowTo[int])[0]
}

// TestLedgerRowsMatchTheRequests: every request through envoysim and
// spendguard — allowed, streamed, refused with 402, failed upstream —
// becomes exactly one ledger row equal to its CostReport, and the charged
// cost in the ledger is what the clients were charged.
func TestLedgerRowsMatchTheRequests(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	s := newStack(t, fmt.Sprintf(ledgerConfig, "", dsn), fakevllm.Config{PromptTokens: 1000})
	var charged int64
	for i := range 24 {
		tenant := []string{"acme", "initech", "umbrella"}[i%3]
		useCase := []string{"rag", "chat"}[i%2]
		body := smallChat
		if i%4 == 1 {
			body = `{"model":"Hunyuan","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"hi"}]}`
		}
		hdr := []string{"x-tenant-id", tenant, "x-use-case", useCase, fakevllm.HeaderCompletionTokens, strconv.Itoa(10 + i)}
		if i%11 == 5 {
			hdr = append(hdr, fakevllm.HeaderStatus, "500")
		}
		resp := s.post("/v1/chat/completions", body, hdr...)
		if resp.status == http.StatusOK && i%4 != 1 {
			charged += usageCost(t, resp.body, 600, 800)
		}
	}
	// Spend the umbrella tenant out: the next request is refused (402).
	resp := s.post("/v1/chat/completions", `{"model":"Hunyuan","max_tokens":100000,"messages":[{"role":"user","content":"hi"}]}`,
		"x-tenant-id", "umbrella", fakevllm.HeaderCompletionTokens, "2000000")
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	resp = s.post("/v1/chat/completions", smallChat, "x-tenant-id", "umbrella")
	require.Equal(t, http.StatusPaymentRequired, resp.status, "%s", resp.body)

	reports := s.reports.all()
	require.Len(t, reports, 26)
	require.Eventually(t, func() bool { return ledgerCount(t, dsn) == len(reports) }, 30*time.Second, 50*time.Millisecond,
		"every report reaches the ledger")

	type row struct {
		id, decision, tenant, useCase, served string
		prompt, completion, cost              int64
		status                                int32
		estimated, stream                     bool
		start                                 time.Time
	}
	got := map[string]row{}
	for _, r := range queryRows(t, dsn, `SELECT request_id, decision, scope->>'tenant', scope->>'use_case', served_model,
		prompt_tokens, completion_tokens, cost_nano_usd, upstream_status, estimated, stream, start_time FROM spendguard_ledger`,
		func(c pgx.CollectableRow) (row, error) {
			var x row
			err := c.Scan(&x.id, &x.decision, &x.tenant, &x.useCase, &x.served, &x.prompt, &x.completion, &x.cost, &x.status, &x.estimated, &x.stream, &x.start)
			return x, err
		}) {
		got[r.id] = r
	}
	var ledgerCharged, streamed int64
	for _, rep := range reports {
		r, ok := got[rep.GetRequestId()]
		require.True(t, ok, "no row for %s", rep.GetRequestId())
		assert.Equal(t, row{id: rep.GetRequestId(), decision: sink.DecisionName(rep.GetDecision()), tenant: rep.GetScope()["tenant"],
			useCase: rep.GetScope()["use_case"], served: rep.GetServedModel(), prompt: rep.GetPromptTokens(),
			completion: rep.GetCompletionTokens(), cost: rep.GetCostNanoUsd(), status: rep.GetUpstreamStatus(),
			estimated: rep.GetEstimated(), stream: rep.GetStream(), start: rep.GetStartTime().AsTime().Truncate(time.Microsecond)},
			row{r.id, r.decision, r.tenant, r.useCase, r.served, r.prompt, r.completion, r.cost, r.status, r.estimated, r.stream, r.start.UTC()})
		if r.stream {
			streamed += r.cost
		}
		ledgerCharged += r.cost
	}
	last := got[reports[len(reports)-2].GetRequestId()].cost // the big umbrella request
	assert.Equal(t, charged+streamed+last, ledgerCharged, "the ledger charges what the clients were charged")
	decisions := map[string]int{}
	for _, r := range got {
		decisions[r.decision]++
	}
	assert.Equal(t, map[string]int{"allowed": 25, "rejected": 1}, decisions)
}

// TestRestartWithLedgerKeepsSpend: a replica with the memory store and a
// ledger is stopped (SIGTERM) and started again; its counters for the
// current periods come back from the ledger: spend before == spend after,
// to the nano-USD, and it keeps counting. With a snapshot as well, the
// two are combined without counting anything twice.
func TestRestartWithLedgerKeepsSpend(t *testing.T) {
	for _, tc := range []struct {
		name     string
		snapshot bool
	}{{"ledger only", false}, {"snapshot and ledger", true}} {
		t.Run(tc.name, func(t *testing.T) {
			dsn := pgtest.NewDatabase(t)
			mem := ""
			if tc.snapshot {
				mem = fmt.Sprintf("  memory: {snapshot_path: %q, snapshot_interval: 1h}", filepath.Join(t.TempDir(), "state.json"))
			}
			cfgPath := writeConfig(t, fmt.Sprintf(ledgerConfig, mem, dsn))
			_, vllmURL := startVLLM(t, fakevllm.Config{PromptTokens: 1})

			first := startReplica(t, "first", cfgPath)
			url := proxyFor(t, first.grpcAddr, vllmURL).URL()
			var charged int64
			for i := range 15 {
				resp, err := postTo(context.Background(), url, smallChat, "x-tenant-id", "acme", "x-use-case", "rag",
					fakevllm.HeaderCompletionTokens, strconv.Itoa(9*i+5))
				require.NoError(t, err)
				require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
				charged += usageCost(t, resp.body, 600, 800)
			}
			// acme's remaining is its daily budget's; another tenant's on
			// use case rag shows the rolling guard's.
			before := [2]string{probe(t, url, "acme"), probe(t, url, "other")}
			want := func() [2]string {
				return [2]string{(money.PerUSD - money.Nano(charged)).USD(), (guard - money.Nano(charged)).USD()}
			}
			assert.Equal(t, want(), before)
			first.stop() // flushes the ledger
			assert.Equal(t, 15+2, ledgerCount(t, dsn), "15 requests and the free probes")

			second := startReplica(t, "second", cfgPath)
			url = proxyFor(t, second.grpcAddr, vllmURL).URL()
			assert.Equal(t, before, [2]string{probe(t, url, "acme"), probe(t, url, "other")}, "spend before == spend after the restart")
			resp, err := postTo(context.Background(), url, smallChat, "x-tenant-id", "acme", "x-use-case", "rag", fakevllm.HeaderCompletionTokens, "50")
			require.NoError(t, err)
			require.Equal(t, http.StatusOK, resp.status)
			charged += usageCost(t, resp.body, 600, 800)
			assert.Equal(t, want(), [2]string{probe(t, url, "acme"), probe(t, url, "other")}, "and keeps counting")
			second.stop()

			third := startReplica(t, "third", cfgPath)
			url = proxyFor(t, third.grpcAddr, vllmURL).URL()
			assert.Equal(t, want(), [2]string{probe(t, url, "acme"), probe(t, url, "other")}, "a second restart counts nothing twice")
			third.stop()
		})
	}
}
