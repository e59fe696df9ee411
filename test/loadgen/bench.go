package loadgen

import (
	"context"
	"errors"
	"fmt"
	"runtime/pprof"
	"slices"
	"time"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/loadgen/workload"
)

// BenchOptions configure Bench.
type BenchOptions struct {
	// Start starts a processor: "noop", or spendguard with one of Stores
	// ("memory", "redis", "memory+ledger").
	Start func(name string) (Target, error)
	// RedisCalls, when set, returns how many scripts the Redis server has
	// run so far (from INFO commandstats): the store's round trips.
	RedisCalls func() (int64, error)
	// LedgerRows, needed for the memory+ledger store, counts the rows of
	// its PostgreSQL ledger (the spendguard_ledger table).
	LedgerRows func(context.Context) (int64, error)
	// LedgerWait bounds the wait, after each ledger scenario, for every
	// row to reach PostgreSQL (default 60s): rows still missing then fail
	// the bench.
	LedgerWait time.Duration
	// Stores are the spendguard stores to run (default memory and redis),
	// Kinds the lifecycle shapes (default both).
	Stores []workload.Store
	Kinds  []workload.Kind
	// Duration is the length of one measured run (default 2s), Warmup the
	// length of the unmeasured run before them (default 500ms), Rounds the
	// number of measured runs of each processor, interleaved so that both
	// see the same noise (default 3).
	Duration, Warmup time.Duration
	Rounds           int
	Concurrency      int // lifecycles in flight (default 32)
	Conns            int // HTTP/2 connections (default 2)
	// IdleStreams is the number of streams held open to measure the
	// memory of one in-flight stream (default 500).
	IdleStreams int
}

func (o BenchOptions) withDefaults() BenchOptions {
	if len(o.Stores) == 0 {
		o.Stores = []workload.Store{workload.Memory, workload.Redis}
	}
	if len(o.Kinds) == 0 {
		o.Kinds = []workload.Kind{workload.JSON, workload.SSE}
	}
	if o.Duration <= 0 {
		o.Duration = 2 * time.Second
	}
	if o.Warmup <= 0 {
		o.Warmup = 500 * time.Millisecond
	}
	if o.Rounds <= 0 {
		o.Rounds = 3
	}
	if o.IdleStreams <= 0 {
		o.IdleStreams = 500
	}
	if o.LedgerWait <= 0 {
		o.LedgerWait = time.Minute
	}
	return o
}

// Measurement sums the measured runs of one processor in one scenario.
type Measurement struct {
	Result
	CPU        time.Duration // processor process CPU time
	ClientCPU  time.Duration // the load generator's own CPU time (Envoy's part)
	Mallocs    uint64        // processor heap allocations
	StoreCalls int64         // Redis round trips (-1 when not counted)
	// Charged is false when the spend spendguard recorded differs from
	// the lifecycles times the expected cost.
	Charged bool
}

// Per returns x per completed lifecycle.
func (m Measurement) Per(x float64) float64 {
	if m.Lifecycles == 0 {
		return 0
	}
	return x / float64(m.Lifecycles)
}

// Row is one scenario: the no-op floor and spendguard, measured in the
// same run.
type Row struct {
	Kind             workload.Kind
	Store            workload.Store
	Noop, Spendguard Measurement
	// RoundRatios is spendguard's throughput over the no-op's, round by
	// round: the spread the machine's noise gives.
	RoundRatios       []float64
	NoopMem, SpendMem StreamMemory // per idle in-flight stream (after the request body)
	MidStreamMem      StreamMemory // spendguard, per stream in the middle of an SSE response
	// Ledger is the ledger's account of the scenario (the memory+ledger
	// store only, else nil).
	Ledger *LedgerCount
}

// LedgerCount compares, for one scenario, the requests spendguard served
// (its CostReports: the measured runs, the warm-up and the streams held
// open) with the rows its ledger wrote to PostgreSQL.
type LedgerCount struct {
	Served, Rows int64
	// Drain is how long after the scenario's last request the counts
	// first agreed (polled every 50ms).
	Drain time.Duration
}

// Report is the outcome of Bench.
type Report struct {
	Rows []Row
	Opts BenchOptions
}

// Bench measures every scenario — non-streaming and streaming chat, with
// each store — against the no-op processor and spendguard, alternating
// between them run by run.
func Bench(ctx context.Context, o BenchOptions) (*Report, error) {
	o = o.withDefaults()
	if o.LedgerRows == nil && slices.ContainsFunc(o.Stores, workload.Store.Ledger) {
		return nil, errors.New("loadgen: the memory+ledger store needs BenchOptions.LedgerRows to count the ledger's rows")
	}
	cost, err := workload.ExpectedCost()
	if err != nil {
		return nil, err
	}
	noop, err := o.Start("noop")
	if err != nil {
		return nil, fmt.Errorf("starting the no-op processor: %w", err)
	}
	defer noop.Close()
	rep := &Report{Opts: o}
	for _, store := range o.Stores {
		sg, err := o.Start(string(store))
		if err != nil {
			return nil, fmt.Errorf("starting spendguard (%s store): %w", store, err)
		}
		for _, kind := range o.Kinds {
			row, err := o.scenario(ctx, noop, sg, kind, store, cost)
			if err != nil {
				sg.Close()
				return nil, fmt.Errorf("%s, %s store: %w", kind, store, err)
			}
			rep.Rows = append(rep.Rows, row)
		}
		if err := sg.Close(); err != nil {
			return nil, fmt.Errorf("stopping spendguard (%s store): %w", store, err)
		}
	}
	return rep, nil
}

func (o BenchOptions) scenario(ctx context.Context, noop, sg Target, kind workload.Kind, store workload.Store, cost money.Nano) (Row, error) {
	row := Row{Kind: kind, Store: store}
	var served0, rows0 int64
	if store.Ledger() {
		s, err := sg.Sample(false)
		if err != nil {
			return row, err
		}
		if rows0, err = o.LedgerRows(ctx); err != nil {
			return row, fmt.Errorf("counting the ledger's rows: %w", err)
		}
		served0 = s.Reports
	}
	load := Load{Kind: kind, Concurrency: o.Concurrency, Conns: o.Conns}
	for _, t := range []Target{noop, sg} {
		warm := load
		warm.Addr, warm.Duration = t.Addr(), o.Warmup
		if _, err := Run(ctx, warm); err != nil {
			return row, err
		}
	}
	row.Noop.StoreCalls, row.Spendguard.StoreCalls = -1, -1
	row.Spendguard.Charged = true
	for range o.Rounds {
		var rates [2]float64
		for i, t := range []Target{noop, sg} {
			m := &row.Noop
			if t == sg {
				m = &row.Spendguard
			}
			rate, err := o.measure(ctx, t, load, cost, m, t == sg)
			if err != nil {
				return row, err
			}
			rates[i] = rate
		}
		row.RoundRatios = append(row.RoundRatios, ratio(rates[1], rates[0]))
	}
	slices.Sort(row.Noop.Latencies)
	slices.Sort(row.Spendguard.Latencies)
	var err error
	if row.NoopMem, err = IdleMemory(ctx, noop, kind, o.IdleStreams, false); err != nil {
		return row, err
	}
	if row.SpendMem, err = IdleMemory(ctx, sg, kind, o.IdleStreams, false); err != nil {
		return row, err
	}
	if kind == workload.SSE {
		if row.MidStreamMem, err = IdleMemory(ctx, sg, kind, o.IdleStreams, true); err != nil {
			return row, err
		}
	}
	if store.Ledger() {
		lc, err := o.waitLedger(ctx, sg, served0, rows0)
		row.Ledger = &lc
		if err != nil {
			return row, err
		}
	}
	return row, nil
}

// waitLedger waits until the ledger holds a row for every request sg
// served since served0 and rows0 were counted, at most o.LedgerWait. The
// counts must agree twice in a row, unchanged, so that a report still on
// its way does not pass for a drained spool.
func (o BenchOptions) waitLedger(ctx context.Context, sg Target, served0, rows0 int64) (LedgerCount, error) {
	start := time.Now()
	deadline := start.Add(o.LedgerWait)
	var agreed *LedgerCount
	for {
		s, err := sg.Sample(false)
		if err != nil {
			return LedgerCount{}, err
		}
		rows, err := o.LedgerRows(ctx)
		if err != nil {
			return LedgerCount{}, fmt.Errorf("counting the ledger's rows: %w", err)
		}
		lc := LedgerCount{Served: s.Reports - served0, Rows: rows - rows0, Drain: time.Since(start)}
		if lc.Rows == lc.Served {
			if agreed != nil && agreed.Served == lc.Served {
				return *agreed, nil
			}
			agreed = &lc
		} else {
			agreed = nil
		}
		if time.Now().After(deadline) {
			return lc, fmt.Errorf("the ledger has %d rows for the %d requests spendguard served, %s after the last one: "+
				"rows were lost, duplicated or are stuck in the spool (see spendguard's log above, and its spendguard_ledger_* metrics)",
				lc.Rows, lc.Served, o.LedgerWait)
		}
		select {
		case <-ctx.Done():
			return lc, ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// measure adds one measured run of t to m and returns its throughput.
func (o BenchOptions) measure(ctx context.Context, t Target, load Load, cost money.Nano, m *Measurement, spendguard bool) (float64, error) {
	load.Addr, load.Duration = t.Addr(), o.Duration
	before, err := t.Sample(false)
	if err != nil {
		return 0, err
	}
	calls0, countCalls := int64(0), o.RedisCalls != nil && spendguard
	if countCalls {
		if calls0, err = o.RedisCalls(); err != nil {
			return 0, err
		}
	}
	client0, err := processCPU()
	if err != nil {
		return 0, err
	}
	// The label tells the two processors' load apart in a profile of the
	// load generator (loadgen -profile writes one).
	var res Result
	label := "no-op"
	if spendguard {
		label = "spendguard"
	}
	pprof.Do(ctx, pprof.Labels("processor", label), func(ctx context.Context) { res, err = Run(ctx, load) })
	if err != nil {
		return 0, err
	}
	client1, err := processCPU()
	if err != nil {
		return 0, err
	}
	after, err := t.Sample(false)
	if err != nil {
		return 0, err
	}
	if countCalls {
		calls, err := o.RedisCalls()
		if err != nil {
			return 0, err
		}
		m.StoreCalls = max(m.StoreCalls, 0) + calls - calls0
	}
	m.Lifecycles += res.Lifecycles
	m.Errors += res.Errors
	if m.FirstError == nil {
		m.FirstError = res.FirstError
	}
	m.Elapsed += res.Elapsed
	m.Latencies = append(m.Latencies, res.Latencies...)
	m.MutatedChunks += res.MutatedChunks
	m.HeaderMutations += res.HeaderMutations
	m.CPU += after.CPU - before.CPU
	m.ClientCPU += client1 - client0
	m.Mallocs += after.Mallocs - before.Mallocs
	if spendguard && after.Spend-before.Spend != cost*money.Nano(res.Lifecycles) {
		m.Charged = false
	}
	return res.PerSecond(), nil
}

// StreamMemory is the memory one in-flight stream holds in the
// processor's process: live heap and goroutine stacks, in bytes.
type StreamMemory struct{ Heap, Stack float64 }

// Total is heap plus stack.
func (m StreamMemory) Total() float64 { return m.Heap + m.Stack }

func (m StreamMemory) String() string {
	return fmt.Sprintf("%.1f KiB (%.1f+%.1f)", m.Total()/1024, m.Heap/1024, m.Stack/1024)
}

// IdleMemory opens n streams against t, takes each through its request
// phase (headers and body answered: an in-flight request awaiting the
// upstream) — with midStream, also through the response headers and ten
// SSE token chunks — and returns the growth of t's live heap and stacks
// per stream. The streams are then closed.
func IdleMemory(ctx context.Context, t Target, kind workload.Kind, n int, midStream bool) (StreamMemory, error) {
	conns, err := dial(t.Addr(), 2)
	if err != nil {
		return StreamMemory{}, err
	}
	defer closeAll(conns)
	before, err := t.Sample(true)
	if err != nil {
		return StreamMemory{}, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var open []*worker
	defer func() {
		for _, w := range open {
			_ = w.stream.CloseSend()
			_, _ = w.stream.Recv()
		}
	}()
	for i := range n {
		w := newWorker(conns[i%len(conns)], kind, i, 8, 1)
		if err := w.start(ctx, midStream); err != nil {
			return StreamMemory{}, err
		}
		open = append(open, w)
	}
	after, err := t.Sample(true)
	if err != nil {
		return StreamMemory{}, err
	}
	per := func(a, b uint64) float64 { return (float64(a) - float64(b)) / float64(n) }
	return StreamMemory{Heap: per(after.Heap, before.Heap), Stack: per(after.Stack, before.Stack)}, nil
}
