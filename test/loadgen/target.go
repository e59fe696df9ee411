package loadgen

import (
	"context"
	"errors"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"sync/atomic"
	"syscall"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/loadgen/workload"
)

// Target is a processor under load: its gRPC address and a way to sample
// the resources of the process that runs it.
type Target interface {
	Addr() string
	// Sample reads the process's counters; with gc, a garbage collection
	// runs first so that Live is the memory still reachable.
	Sample(gc bool) (Sample, error)
	Close() error
}

// Sample is a reading of a processor's process.
type Sample struct {
	CPU     time.Duration // user + system time of the process so far
	Mallocs uint64        // heap objects allocated so far
	Heap    uint64        // live heap (after a GC when asked)
	Stack   uint64        // goroutine stacks in use
	// Spend is the committed spend of the fleet-wide budget, which every
	// lifecycle is charged on (spendguard only).
	Spend money.Nano
	// Reports is the number of CostReports spendguard has made.
	Reports int64
}

// local is a processor running in this process.
type local struct {
	addr    string
	close   func() error
	spend   func(context.Context) (money.Nano, error)
	reports atomic.Int64
}

func (l *local) Addr() string { return l.addr }
func (l *local) Close() error { return l.close() }

func (l *local) Report(*spendguardv1.CostReport) { l.reports.Add(1) }

// processCPU is the user and system time of this process so far
// (getrusage).
func processCPU() (time.Duration, error) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, err
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano()), nil
}

// Sample reads getrusage and the runtime's memory statistics.
func (l *local) Sample(gc bool) (Sample, error) {
	if gc {
		runtime.GC()
	}
	cpu, err := processCPU()
	if err != nil {
		return Sample{}, err
	}
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	s := Sample{
		CPU:     cpu,
		Mallocs: ms.Mallocs,
		Heap:    ms.HeapAlloc,
		Stack:   ms.StackInuse,
		Reports: l.reports.Load(),
	}
	if l.spend != nil {
		var err error
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if s.Spend, err = l.spend(ctx); err != nil {
			return s, err
		}
	}
	return s, nil
}

// StartNoop serves the no-op processor on a loopback port.
func StartNoop() (Target, error) {
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	gs := grpc.NewServer()
	extprocv3.RegisterExternalProcessorServer(gs, Noop{})
	go func() { _ = gs.Serve(lis) }()
	return &local{addr: lis.Addr().String(), close: func() error { gs.Stop(); return nil }}, nil
}

// StartSpendguard runs spendguard as `spendguard serve` does (app.Start)
// with Config and the given store section, on loopback ports; logs at
// warn and above go to logs. dir holds the configuration file.
func StartSpendguard(dir, storeSection string, logs io.Writer) (Target, error) {
	path := filepath.Join(dir, "spendguard-loadgen.yaml")
	if err := os.WriteFile(path, []byte(workload.Config(storeSection)), 0o600); err != nil {
		return nil, err
	}
	l := &local{}
	in, err := app.Start(app.ServeOptions{
		ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0",
		LogLevel: "warn", LogOutput: logs, ShutdownTimeout: 5 * time.Second,
		Reporter: l,
	})
	if err != nil {
		return nil, err
	}
	l.addr, l.close = in.GRPCAddr(), in.Shutdown
	// Every lifecycle is charged on the one fleet-wide counter.
	scopes := in.CurrentConfig().Snapshot.Budgets.Applicable(map[string]string{"tenant": "t0", "user": "u0", "model": workload.Model})
	l.spend = func(ctx context.Context) (money.Nano, error) {
		states, err := in.Budgets.Status(ctx, scopes)
		if err != nil {
			return 0, err
		}
		for _, st := range states {
			if st.Scope.Budget.Name() == "fleet-daily" {
				return st.Committed, nil
			}
		}
		return 0, errors.New("loadgen: no fleet-daily budget applies")
	}
	return l, nil
}
