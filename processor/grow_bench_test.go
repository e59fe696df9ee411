package processor_test

import (
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/metrics"
	"github.com/spendguard/spendguard/processor"
	"github.com/spendguard/spendguard/test/loadgen/workload"
)

// growLifecycle is one growing chat stream's messages as Envoy sends them
// in the shipped mode (response body FULL_DUPLEX_STREAMED): request
// headers and body, response headers, then the role chunk, tokens token
// chunks with vLLM's continuous usage, the usage chunk and [DONE], one
// message each.
func growLifecycle(tokens int) []*extprocv3.ProcessingRequest {
	seq := []*extprocv3.ProcessingRequest{
		duplexModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")),
		reqBody(`{"model":"Hunyuan","stream":true,"messages":[{"role":"user","content":"Hi"}]}`),
		{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: &extprocv3.HttpHeaders{
			Headers: hdrs(":status", "200", "content-type", "text/event-stream")}}},
	}
	events := chatStream(tokens)
	for i, ev := range events {
		seq = append(seq, respBody(ev, i == len(events)-1))
	}
	return seq
}

// growServer serves growConfig with the cap raised out of reach and the
// default output limit def: the first claim covers def tokens, and one
// extension asks for max(def, 64) more.
func growServer(tb testing.TB, def int) *processor.Server {
	yaml := strings.Replace(growConfig, "hard_usd: 0.0001", "hard_usd: 1000000", 1)
	yaml = strings.Replace(yaml, "default_max_output_tokens: 10", fmt.Sprintf("default_max_output_tokens: %d", def), 1)
	cfg, err := config.Parse([]byte(yaml))
	require.NoError(tb, err)
	m, err := metrics.New(nil)
	require.NoError(tb, err)
	return processor.New(cfg.Snapshot, processor.Options{
		Budgets:  budget.NewEngine(m.InstrumentStore(memstore.New()), time.Now),
		Reporter: &countReporter{}, Observer: m,
	})
}

// TestGrowingStreamTokenChunksDoNotAllocate counts allocations (not
// time): on a growing stream whose first claim covers its answer (no
// extension), 200 more token chunks (each carrying continuous usage that
// is read, then hidden from the client) allocate nothing more.
func TestGrowingStreamTokenChunksDoNotAllocate(t *testing.T) {
	srv := growServer(t, 100_000)
	allocs := func(tokens int) float64 {
		replay := workload.NewReplay(growLifecycle(tokens))
		return testing.AllocsPerRun(50, func() {
			require.NoError(t, replay.Run(srv.Process))
		})
	}
	few, many := allocs(10), allocs(210)
	// As TestTokenChunksDoNotAllocate: a margin of 10 absorbs what the
	// race detector's sync.Pool drops; a per-chunk cost shows as 200.
	assert.Less(t, math.Abs(many-few), 10.0, "200 more token chunks cost %v allocations", many-few)
}

// BenchmarkGrowingStreamChunks measures a 200-token streamed chat
// lifecycle through Process, reported per token chunk: plain (the
// response STREAMED: no growth, the limit written), growing with a first
// claim that covers the answer (no extension), and growing from a
// 10-token claim, which extends by 64 tokens about every 64 chunks (3
// extensions, each a goroutine and a store call, amortized over the
// chunks).
func BenchmarkGrowingStreamChunks(b *testing.B) {
	const tokens = 200
	streamed := growLifecycle(tokens)
	streamed[0] = reqHeaders("/v1/chat/completions", "x-tenant-id", "acme") // no protocol_config: STREAMED assumed
	for _, c := range []struct {
		name string
		def  int
		seq  []*extprocv3.ProcessingRequest
	}{
		{"streamed", 100_000, streamed},
		{"grow-no-extension", 100_000, growLifecycle(tokens)},
		{"grow-extending", 10, growLifecycle(tokens)},
	} {
		b.Run(c.name, func(b *testing.B) {
			srv := growServer(b, c.def)
			replay := workload.NewReplay(c.seq)
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := replay.Run(srv.Process); err != nil {
					b.Fatal(err)
				}
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/tokens, "ns/chunk")
		})
	}
}
