package loadgen

import (
	"bytes"
	"context"
	"io"
	"path/filepath"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/loadgen/workload"
	"github.com/spendguard/spendguard/test/pgtest"
	"github.com/spendguard/spendguard/test/redistest"
)

// These tests check the load generator itself — every lifecycle
// completes, spendguard charges each one exactly — on a few hundred
// lifecycles. They never look at how fast anything was.

func startSpendguard(t *testing.T, storeSection string) Target {
	t.Helper()
	sg, err := StartSpendguard(t.TempDir(), storeSection, io.Discard)
	require.NoError(t, err)
	t.Cleanup(func() { assert.NoError(t, sg.Close()) })
	return sg
}

// runCounted runs n lifecycles of kind against t and checks that each
// completed and, for spendguard, was charged and reported once.
func runCounted(t *testing.T, tg Target, kind workload.Kind, n int, spendguard bool) Result {
	t.Helper()
	before, err := tg.Sample(false)
	require.NoError(t, err)
	res, err := Run(context.Background(), Load{Addr: tg.Addr(), Kind: kind, Count: n, Concurrency: 8})
	require.NoError(t, err)
	require.NoError(t, res.FirstError)
	assert.EqualValues(t, n, res.Lifecycles)
	assert.Zero(t, res.Errors)
	assert.Len(t, res.Latencies, n)
	after, err := tg.Sample(false)
	require.NoError(t, err)
	if spendguard {
		cost, err := workload.ExpectedCost()
		require.NoError(t, err)
		assert.Equal(t, cost*money.Nano(n), after.Spend-before.Spend, "every lifecycle charged its usage exactly")
		assert.EqualValues(t, n, after.Reports-before.Reports, "one report per lifecycle")
	}
	return res
}

func TestLifecyclesAgainstSpendguardMemory(t *testing.T) {
	sg := startSpendguard(t, workload.StoreSection(workload.Memory, "", ""))
	res := runCounted(t, sg, workload.JSON, 300, true)
	assert.EqualValues(t, 300, res.HeaderMutations, "x-spendguard-remaining-usd on every response")
	assert.Zero(t, res.MutatedChunks, "a JSON response passes unchanged")

	res = runCounted(t, sg, workload.SSE, 60, true)
	// The shipped mode: each token chunk's continuous usage is hidden, and
	// the usage event spendguard asked for is removed.
	assert.EqualValues(t, 60*(workload.TokenEvents+1), res.MutatedChunks, "every chunk's usage hidden, and the usage event")
}

func TestLifecyclesAgainstSpendguardRedis(t *testing.T) {
	_, prefix := redistest.Shared(t)
	sg := startSpendguard(t, workload.StoreSection(workload.Redis, redistest.SharedAddr, prefix))
	runCounted(t, sg, workload.JSON, 100, true)
	runCounted(t, sg, workload.SSE, 20, true)
}

func TestLifecyclesAgainstNoop(t *testing.T) {
	noop, err := StartNoop()
	require.NoError(t, err)
	defer noop.Close()
	for _, kind := range []workload.Kind{workload.JSON, workload.SSE} {
		res := runCounted(t, noop, kind, 100, false)
		assert.Zero(t, res.MutatedChunks)
		assert.Zero(t, res.HeaderMutations)
	}
}

// TestBenchPrintsEveryScenario runs the whole bench on tiny durations,
// with one processor behind the control protocol, and checks the table.
func TestBenchPrintsEveryScenario(t *testing.T) {
	start := func(name string) (Target, error) {
		if name == "noop" {
			return StartNoop()
		}
		return StartSpendguard(t.TempDir(), workload.StoreSection(workload.Memory, "", ""), io.Discard)
	}
	opts := BenchOptions{
		Start: func(name string) (Target, error) {
			if name != "memory" {
				return start(name)
			}
			sg, err := start(name)
			if err != nil {
				return nil, err
			}
			return viaControl(t, sg), nil
		},
		Stores:   []workload.Store{workload.Memory},
		Duration: 50 * time.Millisecond, Warmup: 20 * time.Millisecond, Rounds: 1,
		Concurrency: 4, IdleStreams: 10,
	}
	rep, err := Bench(context.Background(), opts)
	require.NoError(t, err)
	require.Len(t, rep.Rows, 2)
	for _, row := range rep.Rows {
		assert.Zero(t, row.Noop.Errors)
		assert.Zero(t, row.Spendguard.Errors)
		assert.True(t, row.Spendguard.Charged, "%s: spend recorded equals lifecycles × cost", row.Kind)
		assert.Positive(t, row.Spendguard.Lifecycles)
	}
	var out bytes.Buffer
	require.NoError(t, rep.Print(&out))
	for _, want := range []string{"non-streaming, memory", "streaming, memory", "ratio", "memory per in-flight stream"} {
		assert.Contains(t, out.String(), want)
	}
}

// ledgerBench is the bench of the memory+ledger store alone, on tiny
// durations, with spendguard's ledger in a database of the test's own;
// rows counts that database's ledger rows.
func ledgerBench(t *testing.T) (opts BenchOptions, rows func(context.Context) (int64, error)) {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	rows = func(ctx context.Context) (int64, error) {
		var n int64
		err := conn.QueryRow(ctx, "SELECT count(*) FROM spendguard_ledger").Scan(&n)
		return n, err
	}
	opts = BenchOptions{
		Start: func(name string) (Target, error) {
			if name == "noop" {
				return StartNoop()
			}
			require.Equal(t, string(workload.MemoryLedger), name)
			dir := t.TempDir()
			section := workload.StoreSection(workload.MemoryLedger, "", "") + workload.LedgerSection(dsn, filepath.Join(dir, "spool"))
			sg, err := StartSpendguard(dir, section, io.Discard)
			if err != nil {
				return nil, err
			}
			return viaControl(t, sg), nil
		},
		Stores:   []workload.Store{workload.MemoryLedger},
		Duration: 50 * time.Millisecond, Warmup: 20 * time.Millisecond, Rounds: 1,
		Concurrency: 4, IdleStreams: 10,
		LedgerRows: rows,
	}
	return opts, rows
}

// TestBenchLedgerRowsMatchRequestsServed runs the memory+ledger scenarios
// briefly: once the spool has drained, PostgreSQL holds one row for
// every request spendguard served — the measured lifecycles, the
// warm-up and the streams held open to measure memory — and the table
// says so.
func TestBenchLedgerRowsMatchRequestsServed(t *testing.T) {
	opts, rows := ledgerBench(t)
	rep, err := Bench(context.Background(), opts)
	require.NoError(t, err)
	require.Len(t, rep.Rows, 2)
	var served int64
	for _, row := range rep.Rows {
		assert.Equal(t, workload.MemoryLedger, row.Store)
		assert.Zero(t, row.Spendguard.Errors)
		assert.True(t, row.Spendguard.Charged, "%s: spend recorded equals lifecycles × cost", row.Kind)
		require.NotNil(t, row.Ledger, "%s: the ledger was counted", row.Kind)
		assert.Equal(t, row.Ledger.Served, row.Ledger.Rows, "%s: one ledger row per request served", row.Kind)
		// Served counts the warm-up and the streams held open too.
		assert.GreaterOrEqual(t, row.Ledger.Served, row.Spendguard.Lifecycles+int64(opts.IdleStreams), row.Kind)
		served += row.Ledger.Served
	}
	n, err := rows(context.Background())
	require.NoError(t, err)
	assert.Equal(t, served, n, "the ledger holds the rows of both scenarios, and no others")

	var out bytes.Buffer
	require.NoError(t, rep.Print(&out))
	for _, want := range []string{"non-streaming, memory+ledger", "streaming, memory+ledger", "rows in PostgreSQL for"} {
		assert.Contains(t, out.String(), want)
	}
}

// TestBenchFailsWhenLedgerRowsAreMissing: a ledger that never gets its
// rows (here, a count that stays at zero) fails the bench once the wait
// is over, with both numbers.
func TestBenchFailsWhenLedgerRowsAreMissing(t *testing.T) {
	opts, _ := ledgerBench(t)
	opts.Kinds = []workload.Kind{workload.JSON}
	opts.LedgerWait = 300 * time.Millisecond
	opts.LedgerRows = func(context.Context) (int64, error) { return 0, nil }
	_, err := Bench(context.Background(), opts)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "the ledger has 0 rows for the")
	assert.Contains(t, err.Error(), "stuck in the spool")
}

// viaControl serves t through ServeControl on pipes, as a child process
// would, and returns the Target that controls it.
func viaControl(t *testing.T, tg Target) Target {
	t.Helper()
	inR, inW := io.Pipe()
	outR, outW := io.Pipe()
	done := make(chan error, 1)
	go func() {
		done <- ServeControl(inR, outW, tg)
		outW.Close()
	}()
	remote, err := NewRemote(inW, outR, func() error { return <-done })
	require.NoError(t, err)
	return remote
}
