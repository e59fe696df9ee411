package processor

import (
	"context"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor/usage"
)

// tokenEvent is one vLLM chat token event without usage.
const tokenEvent = `data: {"id":"chatcmpl-9a60df2b23bb539f","object":"chat.completion.chunk","created":1774751760,"model":"Hunyuan","choices":[{"index":0,"delta":{"content":" models"},"logprobs":null,"finish_reason":null}]}` + "\n\n"

// streamingState is a stream in its response-body phase, as after a
// streaming chat request whose usage spendguard injected.
func streamingState(drop bool) *stream {
	srv := New(&Snapshot{}, Options{})
	st := newStream(srv, srv.cfg.Load())
	st.endpoint = pricing.ChatCompletions
	st.req = &pricing.Request{Stream: true}
	st.reservation = &budget.Reservation{}
	st.status, st.sse, st.dropUsage = 200, true, drop
	st.sseScan = usage.NewSSEScanner(usage.SSEChat, drop)
	return st
}

func tokenChunk(eos bool) *extprocv3.HttpBody {
	return &extprocv3.HttpBody{Body: []byte(tokenEvent), EndOfStream: eos}
}

// BenchmarkResponseTokenChunk is the per-chunk cost of the processor for a
// token event without usage, in the streaming hot path: it must not
// allocate.
func BenchmarkResponseTokenChunk(b *testing.B) {
	for _, drop := range []bool{false, true} {
		name := "client-asked-usage"
		if drop {
			name = "usage-injected"
		}
		b.Run(name, func(b *testing.B) {
			st, msg, ctx := streamingState(drop), tokenChunk(false), context.Background()
			b.ReportAllocs()
			b.SetBytes(int64(len(tokenEvent)))
			for b.Loop() {
				if st.onResponseBody(ctx, msg) != answerResponseBody {
					b.Fatal("a token chunk needs no mutation")
				}
			}
		})
	}
}

func TestResponseTokenChunkDoesNotAllocate(t *testing.T) {
	for _, drop := range []bool{false, true} {
		st, msg, ctx := streamingState(drop), tokenChunk(false), context.Background()
		st.onResponseBody(ctx, msg) // let the scanner's buffers grow once
		allocs := testing.AllocsPerRun(200, func() { st.onResponseBody(ctx, msg) })
		if allocs != 0 {
			t.Errorf("drop=%v: %v allocations per token chunk, want 0", drop, allocs)
		}
	}
}
