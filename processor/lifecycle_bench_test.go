package processor_test

import (
	"math"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/metrics"
	"github.com/spendguard/spendguard/processor"
	"github.com/spendguard/spendguard/test/loadgen/workload"
)

type countReporter struct{ n int }

func (c *countReporter) Report(*sink.Event) { c.n++ }

// BenchmarkLifecycle is the processor's own work for one request of the
// load generator (test/loadgen), every message through Server.Process
// with the memory store, without gRPC: what spendguard adds to the no-op
// floor, per lifecycle.
func BenchmarkLifecycle(b *testing.B) {
	cfg, err := config.Parse([]byte(workload.Config(workload.StoreSection(workload.Memory, "", ""))))
	require.NoError(b, err)
	for _, kind := range []workload.Kind{workload.JSON, workload.SSE} {
		b.Run(kind.String(), func(b *testing.B) {
			rep := &countReporter{}
			srv := processor.New(cfg.Snapshot, processor.Options{
				Budgets: budget.NewEngine(memstore.New(), time.Now), Reporter: rep,
			})
			msgs := workload.Messages(kind)
			replay := workload.NewReplay(msgs)
			b.ReportAllocs()
			for b.Loop() {
				if err := replay.Run(srv.Process); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			require.Equal(b, b.N, rep.n, "one report per lifecycle")
		})
	}
}

// TestTokenChunksDoNotAllocate counts allocations (not time): a streaming
// lifecycle with 200 more token events than another, through Process with
// the metrics observer, allocates exactly as much — a token chunk without
// usage costs no allocation anywhere in spendguard's path.
func TestTokenChunksDoNotAllocate(t *testing.T) {
	cfg, err := config.Parse([]byte(workload.Config(workload.StoreSection(workload.Memory, "", ""))))
	require.NoError(t, err)
	m, err := metrics.New(nil)
	require.NoError(t, err)
	srv := processor.New(cfg.Snapshot, processor.Options{
		Budgets:  budget.NewEngine(m.InstrumentStore(memstore.New()), time.Now),
		Reporter: &countReporter{}, Observer: m,
	})
	msgs := workload.Messages(workload.SSE) // headers, body, response headers, 200 token events, usage, [DONE], end
	head, tokens, tail := msgs[:3], msgs[3:3+workload.TokenEvents], msgs[3+workload.TokenEvents:]
	allocs := func(tokenEvents int) float64 {
		var seq []*extprocv3.ProcessingRequest
		seq = append(seq, head...)
		for len(seq) < 3+tokenEvents {
			seq = append(seq, tokens...)
		}
		seq = append(seq[:3+tokenEvents], tail...)
		replay := workload.NewReplay(seq)
		return testing.AllocsPerRun(50, func() {
			require.NoError(t, replay.Run(srv.Process))
		})
	}
	few, many := allocs(10), allocs(210)
	// One allocation per chunk would show as 200, one every ten chunks as
	// 20. The race detector makes sync.Pool drop items at random, and each
	// pooled part of a lifecycle (the stream, its scanner, the headers
	// answer) it drops costs a few allocations in one of the two runs: a
	// margin of 10 absorbs that and still catches any per-chunk cost.
	assert.Less(t, math.Abs(many-few), 10.0, "200 more token events cost %v allocations", many-few)
}
