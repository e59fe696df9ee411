package loadgen

import (
	"context"
	"errors"
	"fmt"
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
	"github.com/spendguard/spendguard/internal/config"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
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

// Store names the budget store of a spendguard target.
type Store string

// Stores spendguard runs with.
const (
	Memory Store = "memory"
	Redis  Store = "redis"
)

// Config is spendguard's configuration under load, shaped like the
// example configuration: a per-tenant monthly budget with a soft-cap
// downgrade, a fleet-wide daily budget and a per-user rolling guard, all
// with caps no run can reach. storeSection is the `store:` section.
func Config(storeSection string) string {
	return `version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
      - default: unknown
    user:
      - header: x-user-id
      - body_field: user
      - default: anonymous
pricing:
  models:
    - match: ` + Model + `
      input: 0.60
      cached_input: 0.30
      output: 0.80
    - match: meta-llama/Llama-3.1-8B-Instruct
      input: 0.06
      output: 0.06
  default_max_output_tokens: 1024
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    soft_usd: 900000
    hard_usd: 1000000
    on_soft:
      downgrade:
        ` + Model + `: meta-llama/Llama-3.1-8B-Instruct
  - name: fleet-daily
    period: day
    hard_usd: 1000000
  - name: runaway-agent-guard
    match: {user: "*"}
    rolling: 10m
    hard_usd: 100000
limits:
  max_request_usd: 2.00
  reservation_ttl: 10m
` + storeSection
}

// StoreSection is the `store:` section for a store; a Redis store uses
// the server at redisAddr under prefix, with a call timeout loose enough
// for two loaded cores.
func StoreSection(s Store, redisAddr, prefix string) string {
	if s == Redis {
		return fmt.Sprintf("store:\n  backend: redis\n  redis:\n    address: %s\n    key_prefix: %q\n    timeout: 1s\n", redisAddr, prefix)
	}
	return "store:\n  backend: memory\n"
}

// ExpectedCost is what spendguard charges for one lifecycle: the usage
// every response reports, priced by Config.
func ExpectedCost() (money.Nano, error) {
	cfg, err := config.Parse([]byte(Config(StoreSection(Memory, "", ""))))
	if err != nil {
		return 0, err
	}
	price, ok := cfg.Snapshot.Pricing.Lookup(Model)
	if !ok {
		return 0, errors.New("loadgen: the model has no price")
	}
	return price.Cost(pricing.Usage{Prompt: PromptTokens, Completion: CompletionTokens}).Total, nil
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
	if err := os.WriteFile(path, []byte(Config(storeSection)), 0o600); err != nil {
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
	scopes := in.Config.Snapshot.Budgets.Applicable(map[string]string{"tenant": "t0", "user": "u0", "model": Model})
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
