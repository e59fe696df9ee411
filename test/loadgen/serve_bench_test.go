package loadgen_test

import (
	"io"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/loadgen/workload"
)

// BenchmarkServeLifecycle is spendguard's own work for one lifecycle of the
// load generator, wired as `spendguard serve` wires it (metrics, exporter
// fan-out, settle retries) with the memory store, without gRPC, run hot in
// a loop; cold-cache runs it with caches that hold nothing of it. Under
// load (the load generator's CPU/lc column) the cost lies between the two
// (docs/performance.md).
func BenchmarkServeLifecycle(b *testing.B) {
	dir := b.TempDir()
	path := filepath.Join(dir, "spendguard.yaml")
	if err := os.WriteFile(path, []byte(workload.Config(workload.StoreSection(workload.Memory, "", ""))), 0o600); err != nil {
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
	for _, kind := range []workload.Kind{workload.JSON, workload.SSE} {
		b.Run(kind.String(), func(b *testing.B) {
			msgs := workload.Messages(kind)
			replay := workload.NewReplay(msgs)
			b.ReportAllocs()
			for b.Loop() {
				if err := replay.Run(in.Processor.Process); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	// cold-cache is a non-streaming lifecycle after 8 MiB of other memory
	// was written (outside the timer): the caches hold none of
	// spendguard's code or data, as when gRPC and Envoy ran in between.
	// Under load the truth lies between this and the hot loop above.
	b.Run("non-streaming/cold-cache", func(b *testing.B) {
		replay := workload.NewReplay(workload.Messages(workload.JSON))
		other := make([]byte, 8<<20)
		b.ReportAllocs()
		for b.Loop() {
			b.StopTimer()
			for i := 0; i < len(other); i += 64 {
				other[i]++
			}
			b.StartTimer()
			if err := replay.Run(in.Processor.Process); err != nil {
				b.Fatal(err)
			}
		}
	})
}
