package processor_test

import (
	"context"
	"io"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/config"
	"github.com/spendguard/spendguard/processor"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/loadgen"
)

// fakeStream plays a lifecycle's messages to Process without gRPC and
// drops the answers.
type fakeStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*extprocv3.ProcessingRequest
	next int
	sent int
}

func (f *fakeStream) Context() context.Context { return f.ctx }

func (f *fakeStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if f.next == len(f.msgs) {
		return nil, io.EOF
	}
	f.next++
	return f.msgs[f.next-1], nil
}

func (f *fakeStream) Send(*extprocv3.ProcessingResponse) error {
	f.sent++
	return nil
}

type countReporter struct{ n int }

func (c *countReporter) Report(*spendguardv1.CostReport) { c.n++ }

// BenchmarkLifecycle is the processor's own work for one request of the
// load generator (test/loadgen), every message through Server.Process
// with the memory store, without gRPC: what spendguard adds to the no-op
// floor, per lifecycle.
func BenchmarkLifecycle(b *testing.B) {
	cfg, err := config.Parse([]byte(loadgen.Config(loadgen.StoreSection(loadgen.Memory, "", ""))))
	require.NoError(b, err)
	for _, kind := range []loadgen.Kind{loadgen.JSON, loadgen.SSE} {
		b.Run(kind.String(), func(b *testing.B) {
			rep := &countReporter{}
			srv := processor.New(cfg.Snapshot, processor.Options{
				Budgets: budget.NewEngine(budget.NewMemoryStore(), time.Now), Reporter: rep,
			})
			msgs := loadgen.Messages(kind)
			fs := &fakeStream{ctx: context.Background(), msgs: msgs}
			b.ReportAllocs()
			for b.Loop() {
				fs.next, fs.sent = 0, 0
				if err := srv.Process(fs); err != nil || fs.sent != len(msgs) {
					b.Fatalf("%d answers to %d messages: %v", fs.sent, len(msgs), err)
				}
			}
			b.StopTimer()
			require.Equal(b, b.N, rep.n, "one report per lifecycle")
		})
	}
}
