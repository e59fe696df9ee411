package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/pgtest"
)

// openLedger opens a ledger on a fresh database of its own.
func openLedger(t *testing.T) *Ledger {
	t.Helper()
	l, err := Open(Config{DSN: pgtest.NewDatabase(t)}, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() { l.Close(context.Background()) })
	return l
}

var t0 = time.Date(2026, 11, 25, 10, 0, 0, 123456000, time.UTC)

// report is a CostReport for tests: allowed, 1000 prompt and 100
// completion tokens, 0.00062 USD, at t0 plus the given offset.
func report(id string, offset time.Duration, scope map[string]string) *spendguardv1.CostReport {
	start := t0.Add(offset)
	return &spendguardv1.CostReport{
		RequestId: id, StartTime: timestamppb.New(start), EndTime: timestamppb.New(start.Add(1500 * time.Millisecond)),
		Endpoint: "/v1/chat/completions", Scope: scope,
		RequestedModel: "m-large", ServedModel: "m-large", ResponseModel: "m-large",
		PromptTokens: 1000, CachedPromptTokens: 200, CompletionTokens: 100, ReasoningTokens: 10,
		CostNanoUsd: 620000, InputCostNanoUsd: 540000, OutputCostNanoUsd: 80000,
		Decision: spendguardv1.Decision_DECISION_ALLOWED, Budget: "tenant-monthly", UpstreamStatus: 200,
		Duration: durationpb.New(1500 * time.Millisecond), UpstreamTimeToFirstByte: durationpb.New(250 * time.Millisecond),
		ProcessorTime: durationpb.New(120 * time.Microsecond),
	}
}

func events(reps ...*spendguardv1.CostReport) []*sink.Event {
	out := make([]*sink.Event, len(reps))
	for i, r := range reps {
		out[i] = &sink.Event{Report: r}
	}
	return out
}

func count(t *testing.T, l *Ledger) int {
	t.Helper()
	var n int
	require.NoError(t, l.pool.QueryRow(context.Background(), "SELECT count(*) FROM spendguard_ledger").Scan(&n))
	return n
}

// TestRowsMatchTheReports: every field of a report lands in its column.
func TestRowsMatchTheReports(t *testing.T) {
	l := openLedger(t)
	full := report("req-1", 0, map[string]string{"tenant": "acme", "use_case": "rag"})
	rejected := &spendguardv1.CostReport{
		RequestId: "req-2", StartTime: timestamppb.New(t0), EndTime: timestamppb.New(t0),
		Endpoint: "/v1/completions", Decision: spendguardv1.Decision_DECISION_REJECTED,
		RejectReason: "budget tenant-monthly exhausted for tenant=initech", Budget: "tenant-monthly",
		Scope: map[string]string{"tenant": "initech"}, RequestedModel: "bad\x00model\xff",
	}
	require.NoError(t, l.Export(context.Background(), events(full, rejected)))

	type row struct {
		RequestID, Endpoint, Requested, Served, Response, Decision, Reason, Budget string
		Start, End                                                                 time.Time
		Scope                                                                      map[string]string
		Prompt, Cached, Completion, Reasoning, Cost, In, Out                       int64
		Estimated, Stream, Aborted                                                 bool
		Status                                                                     int32
		Duration, Processor                                                        float64
		TTFB                                                                       *float64
	}
	rows, err := l.pool.Query(context.Background(), `SELECT request_id, endpoint, requested_model, served_model, response_model,
		decision, reject_reason, budget, start_time, end_time, scope, prompt_tokens, cached_prompt_tokens, completion_tokens,
		reasoning_tokens, cost_nano_usd, input_cost_nano_usd, output_cost_nano_usd, estimated, stream, aborted,
		upstream_status, duration_seconds, processor_seconds, upstream_ttfb_seconds FROM spendguard_ledger ORDER BY request_id`)
	require.NoError(t, err)
	inUTC := func(x row) row {
		x.Start, x.End = x.Start.UTC(), x.End.UTC()
		return x
	}
	got, err := pgx.CollectRows(rows, func(r pgx.CollectableRow) (row, error) {
		var x row
		err := r.Scan(&x.RequestID, &x.Endpoint, &x.Requested, &x.Served, &x.Response, &x.Decision, &x.Reason, &x.Budget,
			&x.Start, &x.End, &x.Scope, &x.Prompt, &x.Cached, &x.Completion, &x.Reasoning, &x.Cost, &x.In, &x.Out,
			&x.Estimated, &x.Stream, &x.Aborted, &x.Status, &x.Duration, &x.Processor, &x.TTFB)
		return x, err
	})
	require.NoError(t, err)
	require.Len(t, got, 2)
	ttfb := 0.25
	assert.Equal(t, row{
		RequestID: "req-1", Endpoint: "/v1/chat/completions", Requested: "m-large", Served: "m-large", Response: "m-large",
		Decision: "allowed", Budget: "tenant-monthly", Start: t0, End: t0.Add(1500 * time.Millisecond),
		Scope: map[string]string{"tenant": "acme", "use_case": "rag"}, Prompt: 1000, Cached: 200, Completion: 100,
		Reasoning: 10, Cost: 620000, In: 540000, Out: 80000, Status: 200, Duration: 1.5, Processor: 0.00012, TTFB: &ttfb,
	}, inUTC(got[0]))
	assert.Equal(t, "rejected", got[1].Decision)
	assert.Equal(t, "budget tenant-monthly exhausted for tenant=initech", got[1].Reason)
	assert.Equal(t, "bad\uFFFDmodel\uFFFD", got[1].Requested, "NUL and invalid UTF-8 replaced, not a failed batch")
	assert.Nil(t, got[1].TTFB)
	assert.Zero(t, got[1].Cost)
}

// TestRetriedBatchAddsNothing: the same batch written again, a batch
// overlapping it, and a duplicate inside one batch add no rows; the same
// x-request-id at another time is another request.
func TestRetriedBatchAddsNothing(t *testing.T) {
	l := openLedger(t)
	ctx := context.Background()
	var batch []*spendguardv1.CostReport
	for i := range 50 {
		batch = append(batch, report(fmt.Sprintf("req-%d", i), time.Duration(i)*time.Second, map[string]string{"tenant": "acme"}))
	}
	require.NoError(t, l.Export(ctx, events(batch...)))
	require.NoError(t, l.Export(ctx, events(batch...)), "a retry of a batch that was in fact committed")
	assert.Equal(t, 50, count(t, l))

	reused := report("req-0", time.Hour, map[string]string{"tenant": "acme"}) // a client reusing its id later
	require.NoError(t, l.Export(ctx, events(append(batch[40:], reused, reused)...)))
	assert.Equal(t, 51, count(t, l))

	// Concurrent writers of the same reports (two workers, or a retry racing
	// a slow commit) still leave one row each.
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() { assert.NoError(t, l.Export(ctx, events(batch...))) })
	}
	wg.Wait()
	assert.Equal(t, 51, count(t, l))
}

// TestMigrationsRunOnceWhenReplicasStartTogether: several Opens at once on
// one empty database all succeed and every migration is recorded once.
func TestMigrationsRunOnceWhenReplicasStartTogether(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	var wg sync.WaitGroup
	ledgers := make([]*Ledger, 5)
	errs := make([]error, 5)
	for i := range ledgers {
		wg.Go(func() { ledgers[i], errs[i] = Open(Config{DSN: dsn}, nil, nil) })
	}
	wg.Wait()
	for i, l := range ledgers {
		require.NoError(t, errs[i])
		defer l.Close(context.Background())
	}
	all, err := loadMigrations()
	require.NoError(t, err)
	var versions []int
	rows, err := ledgers[0].pool.Query(context.Background(), "SELECT version FROM spendguard_schema_migrations ORDER BY version")
	require.NoError(t, err)
	versions, err = pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	want := make([]int, len(all))
	for i, m := range all {
		want[i] = m.version
	}
	assert.Equal(t, want, versions)
	applied, err := Migrate(context.Background(), ledgers[0].pool)
	require.NoError(t, err)
	assert.Empty(t, applied, "nothing left to apply")
}

// TestOpenFailsClearly: an unreachable server is an error naming it,
// without the password.
func TestOpenFailsClearly(t *testing.T) {
	_, err := Open(Config{DSN: "postgres://u:secret@127.0.0.1:1/db?connect_timeout=2", StartTimeout: 5 * time.Second}, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "cannot reach PostgreSQL at 127.0.0.1:1/db")
	assert.NotContains(t, err.Error(), "secret")
}

func TestConfigValidate(t *testing.T) {
	assert.Empty(t, Config{DSN: "postgres://u:p@db/x", Reconcile: &ReconcileConfig{VLLMMetricsURLs: []string{"http://vllm:8000/metrics"}}}.Validate())
	errs := Config{DSN: "postgres://u:secret@db:notaport/x", MaxConns: -1, StartTimeout: -time.Second,
		Reconcile: &ReconcileConfig{VLLMMetricsURLs: []string{"vllm:8000"}, Interval: -1}}.Validate()
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
		assert.NotContains(t, e.Msg, "secret")
	}
	assert.ElementsMatch(t, []string{"dsn", "max_conns", "start_timeout", "reconcile.vllm_metrics_urls", "reconcile.interval"}, fields)
	assert.Equal(t, "dsn", Config{}.Validate()[0].Field)
	assert.Equal(t, "reconcile.vllm_metrics_urls", Config{DSN: "postgres://db/x", Reconcile: &ReconcileConfig{}}.Validate()[0].Field)
}
