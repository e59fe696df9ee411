// Command loadgen measures spendguard against a no-op ext_proc processor:
// many concurrent request lifecycles over real gRPC streams, each
// processor in its own child process so that its CPU time, allocations
// and memory are its own. `make bench` runs it; see docs/performance.md.
//
//	loadgen [-duration 2s] [-rounds 3] [-redis private|ADDR|none] [-pg-dsn DSN|none] [-profile DIR]
//
// The memory+ledger rows run spendguard with the PostgreSQL spend ledger
// (its spool in a temporary directory) on a database created for the run
// and dropped after it, unless -pg-dsn names one; without PostgreSQL they
// are skipped, with one line that says why.
//
// With -serve it is such a child: it serves one processor and answers
// the parent's sample requests on stdin/stdout (loadgen.ServeControl).
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"time"

	"github.com/spendguard/spendguard/test/loadgen"
	"github.com/spendguard/spendguard/test/loadgen/workload"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "loadgen:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	fs := flag.NewFlagSet("loadgen", flag.ContinueOnError)
	var (
		serve       = fs.String("serve", "", "child mode: serve noop, memory, redis or memory+ledger and answer samples on stdin/stdout")
		redisFlag   = fs.String("redis", "private", `Redis for the redis-store scenarios: "private" (a redis-server started for the run), an address, or "none"`)
		pgDSN       = fs.String("pg-dsn", "", `PostgreSQL database for the memory+ledger scenarios' ledger, or "none" (default: a database spendguard_bench_<random> created on `+defaultAdminDSN+` for the run, and dropped after it)`)
		prefix      = fs.String("prefix", "", "child mode: Redis key prefix")
		profile     = fs.String("profile", "", "directory: each processor's process writes CPU, allocation and mutex profiles there (NAME.cpu.pprof, NAME.allocs.pprof, NAME.mutex.pprof), and the load generator its own (loadgen.*.pprof, labelled processor=no-op|spendguard)")
		duration    = fs.Duration("duration", 2*time.Second, "length of one measured run")
		warmup      = fs.Duration("warmup", 500*time.Millisecond, "unmeasured run before each scenario")
		rounds      = fs.Int("rounds", 3, "measured runs per processor and scenario, interleaved")
		concurrency = fs.Int("concurrency", 32, "lifecycles in flight")
		conns       = fs.Int("conns", 2, "HTTP/2 connections to each processor")
		idle        = fs.Int("idle", 500, "streams held open to measure the memory of one")
		kinds       = fs.String("kinds", "json,sse", "lifecycle shapes: json (non-streaming), sse (streaming)")
	)
	if err := fs.Parse(args); err != nil {
		return err
	}
	if *serve != "" {
		return serveChild(*serve, *redisFlag, *prefix, *pgDSN, *profile)
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	exe, err := os.Executable()
	if err != nil {
		return err
	}
	opts := loadgen.BenchOptions{
		Duration: *duration, Warmup: *warmup, Rounds: *rounds,
		Concurrency: *concurrency, Conns: *conns, IdleStreams: *idle,
		Stores: []workload.Store{workload.Memory},
	}
	for k := range strings.SplitSeq(*kinds, ",") {
		switch k {
		case "json":
			opts.Kinds = append(opts.Kinds, workload.JSON)
		case "sse":
			opts.Kinds = append(opts.Kinds, workload.SSE)
		default:
			return fmt.Errorf("-kinds: %q is neither json nor sse", k)
		}
	}
	redisAddr := *redisFlag
	switch redisAddr {
	case "none":
	case "private":
		srv, err := startRedis()
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: no private Redis (%v); skipping the redis-store scenarios\n", err)
			redisAddr = "none"
			break
		}
		defer srv.stop()
		redisAddr = srv.addr
	}
	keyPrefix := "spendguard-loadgen:" + randomHex() + ":"
	if redisAddr != "none" {
		opts.Stores = append(opts.Stores, workload.Redis)
		rc, err := newRedisCounter(redisAddr)
		if err != nil {
			return err
		}
		defer rc.close(keyPrefix)
		opts.RedisCalls = rc.calls
	}
	ledgerDSN := *pgDSN
	if ledgerDSN != "none" {
		lc, cleanup, err := openLedger(ctx, ledgerDSN)
		if err != nil {
			fmt.Fprintf(os.Stderr, "loadgen: skipping the memory+ledger scenarios: %v\n", err)
			ledgerDSN = "none"
		} else {
			defer cleanup()
			ledgerDSN = lc.dsn
			opts.Stores = append(opts.Stores, workload.MemoryLedger)
			opts.LedgerRows = lc.rows
		}
	}
	opts.Start = func(name string) (loadgen.Target, error) {
		args := []string{"-serve", name, "-redis", redisAddr, "-prefix", keyPrefix, "-pg-dsn", ledgerDSN}
		if *profile != "" {
			args = append(args, "-profile", *profile)
		}
		return loadgen.Spawn(exe, args...)
	}
	if *profile != "" {
		// The load generator's own CPU, labelled processor=no-op or
		// processor=spendguard by the load it drove (pprof -tagfocus).
		stop, err := startProfile(*profile, "loadgen")
		if err != nil {
			return err
		}
		defer stop()
	}
	fmt.Printf("loadgen: %s\n\n", machine())
	rep, err := loadgen.Bench(ctx, opts)
	if err != nil {
		return err
	}
	return rep.Print(os.Stdout)
}

// openLedger returns the counter of the ledger's rows in the database
// dsn, or with an empty dsn in a database created for the run; cleanup
// closes it and drops that database (printing what went wrong).
func openLedger(ctx context.Context, dsn string) (*ledgerCounter, func(), error) {
	var db *benchDatabase
	if dsn == "" {
		var err error
		if db, err = createBenchDatabase(ctx, defaultAdminDSN); err != nil {
			return nil, nil, err
		}
		dsn = db.DSN
	}
	lc, err := newLedgerCounter(ctx, dsn)
	if err != nil {
		if db != nil {
			err = errors.Join(err, db.drop())
		}
		return nil, nil, err
	}
	return lc, func() {
		lc.close()
		if db != nil {
			if err := db.drop(); err != nil {
				fmt.Fprintln(os.Stderr, "loadgen:", err)
			}
		}
	}, nil
}

// serveChild serves one processor for the parent.
func serveChild(name, redisAddr, prefix, pgDSN, profileDir string) error {
	var (
		t   loadgen.Target
		err error
	)
	switch name {
	case "noop":
		t, err = loadgen.StartNoop()
	case string(workload.Memory), string(workload.Redis), string(workload.MemoryLedger):
		dir, derr := os.MkdirTemp("", "loadgen")
		if derr != nil {
			return derr
		}
		defer os.RemoveAll(dir)
		store := workload.Store(name)
		section := workload.StoreSection(store, redisAddr, prefix)
		if store.Ledger() {
			if pgDSN == "" || pgDSN == "none" {
				return errors.New("-serve memory+ledger needs -pg-dsn")
			}
			section += workload.LedgerSection(pgDSN, filepath.Join(dir, "spool"))
		}
		t, err = loadgen.StartSpendguard(dir, section, os.Stderr)
	default:
		return fmt.Errorf("-serve %q: want noop, memory, redis or memory+ledger", name)
	}
	if err != nil {
		return err
	}
	if profileDir != "" {
		stop, err := startProfile(profileDir, name)
		if err != nil {
			t.Close()
			return err
		}
		t = profiled{Target: t, stop: stop}
	}
	return loadgen.ServeControl(os.Stdin, os.Stdout, t)
}

// startProfile starts a CPU profile of this process and samples mutex
// contention; the returned stop ends it and writes the allocation and
// mutex profiles beside it.
func startProfile(dir, name string) (func() error, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	cpu, err := os.Create(fmt.Sprintf("%s/%s.cpu.pprof", dir, name))
	if err != nil {
		return nil, err
	}
	if err := pprof.StartCPUProfile(cpu); err != nil {
		cpu.Close()
		return nil, err
	}
	runtime.SetMutexProfileFraction(5)
	return func() error {
		pprof.StopCPUProfile()
		cpu.Close()
		for _, p := range []string{"allocs", "mutex"} {
			f, err := os.Create(fmt.Sprintf("%s/%s.%s.pprof", dir, name, p))
			if err != nil {
				return err
			}
			err = pprof.Lookup(p).WriteTo(f, 0)
			f.Close()
			if err != nil {
				return err
			}
		}
		return nil
	}, nil
}

type profiled struct {
	loadgen.Target
	stop func() error
}

func (p profiled) Close() error {
	err := p.Target.Close()
	if serr := p.stop(); err == nil {
		err = serr
	}
	return err
}

func randomHex() string {
	var b [6]byte
	_, _ = io.ReadFull(rand.Reader, b[:])
	return hex.EncodeToString(b[:])
}
