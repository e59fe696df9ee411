package loadgen_test

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/loadgen"
)

// replayStream plays a lifecycle's messages to Process without gRPC and
// drops the answers.
type replayStream struct {
	grpc.ServerStream
	ctx  context.Context
	msgs []*extprocv3.ProcessingRequest
	next int
	sent int
}

func (f *replayStream) Context() context.Context { return f.ctx }

func (f *replayStream) Recv() (*extprocv3.ProcessingRequest, error) {
	if f.next == len(f.msgs) {
		return nil, io.EOF
	}
	f.next++
	return f.msgs[f.next-1], nil
}

func (f *replayStream) Send(*extprocv3.ProcessingResponse) error {
	f.sent++
	return nil
}

// SendMsg is how Process sends the answer to the response headers.
func (f *replayStream) SendMsg(any) error {
	f.sent++
	return nil
}

// BenchmarkServeLifecycle is spendguard's own work for one lifecycle of the
// load generator, wired as `spendguard serve` wires it (metrics, exporter
// fan-out, settle retries) with the memory store, without gRPC, run hot in
// a loop; cold-cache runs it with caches that hold nothing of it. Under
// load (the load generator's CPU/lc column) the cost lies between the two
// (docs/performance.md).
func BenchmarkServeLifecycle(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "spendguard.yaml")
	if err := os.WriteFile(path, []byte(loadgen.Config(loadgen.StoreSection(loadgen.Memory, "", ""))), 0o600); err != nil {
		b.Fatal(err)
	}
	in, err := app.Start(app.ServeOptions{
		ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "warn", LogOutput: io.Discard, ShutdownTimeout: 5 * time.Second,
	})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { _ = in.Shutdown() })
	for _, kind := range []loadgen.Kind{loadgen.JSON, loadgen.SSE} {
		b.Run(kind.String(), func(b *testing.B) {
			msgs := loadgen.Messages(kind)
			fs := &replayStream{ctx: context.Background(), msgs: msgs}
			b.ReportAllocs()
			for b.Loop() {
				fs.next, fs.sent = 0, 0
				if err := in.Processor.Process(fs); err != nil || fs.sent != len(msgs) {
					b.Fatalf("%d answers to %d messages: %v", fs.sent, len(msgs), err)
				}
			}
		})
	}
	// cold-cache is a non-streaming lifecycle after 8 MiB of other memory
	// was written (outside the timer): the caches hold none of
	// spendguard's code or data, as when gRPC and Envoy ran in between.
	// Under load the truth lies between this and the hot loop above.
	b.Run("non-streaming/cold-cache", func(b *testing.B) {
		msgs := loadgen.Messages(loadgen.JSON)
		fs := &replayStream{ctx: context.Background(), msgs: msgs}
		other := make([]byte, 8<<20)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			for i := 0; i < len(other); i += 64 {
				other[i]++
			}
			b.StartTimer()
			fs.next, fs.sent = 0, 0
			if err := in.Processor.Process(fs); err != nil || fs.sent != len(msgs) {
				b.Fatalf("%d answers to %d messages: %v", fs.sent, len(msgs), err)
			}
		}
	})
}
