package app

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strings"
	"sync/atomic"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/prometheus/client_golang/prometheus"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/exporters/postgres"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/metrics"
	"github.com/spendguard/spendguard/processor"
)

// ServeOptions are the settings of `spendguard serve`.
type ServeOptions struct {
	ConfigPath      string // "" = the embedded default configuration
	GRPCAddr        string
	AdminAddr       string
	LogLevel        string
	LogFormat       string
	ShutdownTimeout time.Duration
	// ReloadInterval turns hot reload of ConfigPath on: its directory is
	// watched and the file is re-read this often as well; 0 is off.
	ReloadInterval time.Duration
	// ReloadDebounce is the quiet time after a change before the file is
	// read again (DefaultReloadDebounce when 0).
	ReloadDebounce time.Duration
	// GRPCMaxMessageBytes bounds an ext_proc message spendguard receives
	// (DefaultGRPCMaxMessageBytes when 0): at least Envoy's
	// per_connection_buffer_limit_bytes plus GRPCHeadroom.
	GRPCMaxMessageBytes int
	LogOutput           io.Writer // default stderr
	// ExporterFlushTimeout bounds how long shutdown waits for the exporters
	// to deliver queued reports (default 10s).
	ExporterFlushTimeout time.Duration
	// AdminIdleTimeout closes an admin connection idle this long between
	// requests (DefaultAdminIdleTimeout when 0).
	AdminIdleTimeout time.Duration
	// Reporter, when set, receives every CostReport after the metrics and
	// the exporters (tests; see reporting.go).
	Reporter ReportObserver
}

func parseServeFlags(args []string, stderr io.Writer) (ServeOptions, error) {
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(stderr)
	o := ServeOptions{}
	fs.StringVar(&o.ConfigPath, "config", "", "configuration file (default: the embedded demo configuration)")
	fs.StringVar(&o.GRPCAddr, "grpc-addr", ":50051", "ext_proc gRPC listen address")
	fs.StringVar(&o.AdminAddr, "admin-addr", ":9090", "admin HTTP listen address")
	fs.StringVar(&o.LogLevel, "log-level", "info", "debug, info, warn or error")
	fs.StringVar(&o.LogFormat, "log-format", "json", "json or console")
	fs.DurationVar(&o.ShutdownTimeout, "shutdown-timeout", 25*time.Second, "how long SIGTERM waits for in-flight streams")
	fs.DurationVar(&o.ReloadInterval, "reload-interval", time.Minute, "with --config: watch its directory, and re-read it this often too; 0 turns hot reload off")
	fs.IntVar(&o.GRPCMaxMessageBytes, "grpc-max-message-bytes", DefaultGRPCMaxMessageBytes,
		"largest ext_proc message accepted: Envoy's per_connection_buffer_limit_bytes plus 1 MiB; raise the two together")
	if err := fs.Parse(args); err != nil {
		return o, errUsage
	}
	var errs []error
	if err := checkGRPCMaxMessageBytes(o.GRPCMaxMessageBytes); err != nil {
		errs = append(errs, err)
	}
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if _, err := zapcore.ParseLevel(o.LogLevel); err != nil {
		errs = append(errs, fmt.Errorf("--log-level: %w", err))
	}
	if o.LogFormat != "json" && o.LogFormat != "console" {
		errs = append(errs, fmt.Errorf("--log-format: %q is neither json nor console", o.LogFormat))
	}
	if o.ShutdownTimeout <= 0 {
		errs = append(errs, errors.New("--shutdown-timeout must be positive"))
	}
	if o.ReloadInterval < 0 {
		errs = append(errs, errors.New("--reload-interval must not be negative"))
	}
	if err := errors.Join(errs...); err != nil {
		fmt.Fprintln(stderr, err)
		return o, errUsage
	}
	o.LogOutput = stderr
	return o, nil
}

// Instance is a running spendguard: the ext_proc gRPC server and the admin
// HTTP server.
type Instance struct {
	Log       *zap.Logger
	Processor *processor.Server
	Metrics   *metrics.Metrics
	Exporters *exporters.Fanout
	Ledger    *postgres.Ledger // exporters.postgres, or nil; closed (its spool shipped as far as it can) with the exporters
	Budgets   *budget.Engine
	Store     stores.Store // closed (memory: last snapshot written) by Shutdown
	// Estimates is the learned output estimate of streamed responses,
	// synced through Store (estimates.go).
	Estimates *estimate.Estimator

	// current is the configuration in force (CurrentConfig); atStart
	// holds what Start read from the sections a reload does not apply.
	current atomic.Pointer[config.Compiled]
	atStart startSettings

	opts      ServeOptions
	grpc      *grpc.Server
	health    *health.Server
	admin     *http.Server
	grpcLis   net.Listener
	adminLis  net.Listener
	serveErrs chan error
	// stack holds the closer of everything Start opened (cleanup.go):
	// a failed Start and Shutdown both unwind it.
	stack cleanup

	reloader   *config.Reloader // nil when hot reload is off
	budgetsAPI *admin.API
	tok        tokenizer // pricing.tokenizer's client (tokenizer.go)
	instance   string    // this process's name (instanceID), set once at Start
}

// GRPCAddr is the bound ext_proc address.
func (in *Instance) GRPCAddr() string { return in.grpcLis.Addr().String() }

// AdminAddr is the bound admin address.
func (in *Instance) AdminAddr() string { return in.adminLis.Addr().String() }

// Serve runs spendguard until ctx is done, then shuts down gracefully.
func Serve(ctx context.Context, opts ServeOptions) error {
	in, err := Start(opts)
	if err != nil {
		return err
	}
	select {
	case <-ctx.Done():
		in.Log.Info("shutting down", zap.Duration("timeout", opts.ShutdownTimeout))
	case err := <-in.serveErrs:
		in.Log.Error("server failed", zap.Error(err))
		in.Shutdown()
		return err
	}
	return in.Shutdown()
}

// Start loads the configuration, opens the store, the exporters and both
// listeners, and serves in the background. Each resource's closer goes on
// the instance's cleanup stack as the resource is opened: if a step
// fails, everything opened before it is closed, in reverse order, before
// Start returns the error (the exporters are shut down, the store
// closed, the listeners released).
func Start(opts ServeOptions) (_ *Instance, err error) {
	if opts.LogOutput == nil {
		opts.LogOutput = os.Stderr
	}
	if opts.ShutdownTimeout <= 0 {
		opts.ShutdownTimeout = 25 * time.Second
	}
	if opts.ExporterFlushTimeout <= 0 {
		opts.ExporterFlushTimeout = 10 * time.Second
	}
	if opts.GRPCMaxMessageBytes == 0 {
		opts.GRPCMaxMessageBytes = DefaultGRPCMaxMessageBytes
	}
	if err := checkGRPCMaxMessageBytes(opts.GRPCMaxMessageBytes); err != nil {
		return nil, err
	}
	log, err := newLogger(opts.LogLevel, opts.LogFormat, opts.LogOutput)
	if err != nil {
		return nil, err
	}
	cfg, reloader, err := openConfig(opts, log)
	if err != nil {
		return nil, err
	}
	in := &Instance{Log: log, opts: opts, serveErrs: make(chan error, 2), reloader: reloader, atStart: readStartSettings(cfg)}
	in.current.Store(cfg)
	defer func() {
		if err != nil {
			_ = in.stack.unwind() // closers log their own failures
		}
	}()

	// The admin server is closed last (its closer is at the bottom of the
	// stack): /healthz, /readyz and /metrics answer while the streams
	// drain and the exporters flush.
	in.stack.push(in.stopAdmin)
	if in.Store, err = stores.Open(context.Background(), cfg.File.Store, log); err != nil {
		return nil, err
	}
	in.stack.push(in.closeStore)
	if in.Metrics, err = metrics.New(cfg.File.Metrics.LabelDimensions); err != nil {
		return nil, err
	}
	// A Redis store's loss flag (spendguard_store_lost) and loss count.
	if c, ok := in.Store.(interface{ Collector() prometheus.Collector }); ok {
		in.Metrics.Registry().MustRegister(c.Collector())
	}
	if err := in.startEstimates(cfg); err != nil {
		return nil, err
	}
	// Calls to a networked store are timed; the memory store's are
	// in-process map updates that timing would cost more than they do.
	var store budget.Store = in.Store
	if cfg.File.Store.BackendName() != budget.BackendMemory {
		store = in.Metrics.InstrumentStore(store)
	}
	in.Budgets = budget.NewEngine(store, time.Now)
	// A Settle that fails after the upstream served the request is retried
	// in the background (Redis settles count once per id), so a store that
	// goes away for a while loses no spend. A Reserve that failed with an
	// unknown outcome (Redis may have applied it) is released the same
	// way, so that nobody's reservation holds the budget until the TTL.
	in.Budgets.RetrySettles(budget.SettleRetry{
		OnGiveUp: func(id string, actual money.Nano, err error) {
			log.Error("gave up committing a request's spend to the budget store", zap.String("reservation", id), zap.Stringer("actual_usd", actual), zap.Error(err))
		},
		OnRelease: func(id, reason string, err error) {
			in.Metrics.ObserveReservationRelease(reason)
			log.Warn("a reservation whose store call failed with an unknown outcome is released in the background",
				zap.String("reservation", id), zap.String("reason", reason), zap.Error(err))
		},
	})
	in.stack.push(in.closeBudgets)
	expCfg := cfg.File.Exporters
	expCfg.ServiceVersion = Version
	if rs := stores.AsRedis(in.Store); rs != nil { // replicas share it: one of them sends each alert
		expCfg.AlertClaims, expCfg.AlertOwner = rs.Redis(), in.instanceID()
	}
	if err = in.startExporters(expCfg); err != nil {
		return nil, err
	}
	in.stack.push(in.flushExporters)
	if err := in.recoverFromLedger(); err != nil { // the memory store's spend, from the ledger
		return nil, err
	}
	// A Redis store that lost its data is rebuilt from the ledger.
	lossStop := make(chan struct{})
	in.stack.push(func() error { close(lossStop); return nil })
	in.watchStoreLoss(lossStop)
	in.watchForfeits(lossStop) // a dead replica's lease forfeits, settled against its ledger rows
	rep := reporting{metrics: in.Metrics, fan: in.Exporters, extra: opts.Reporter}
	popts := processor.Options{
		Log: log, Budgets: in.Budgets, Observer: in.Metrics,
		Reporter: rep, Gather: rep.gather(), Estimates: outputEstimates{in.Estimates},
	}
	if in.Ledger != nil { // each row spooled before its request is answered
		popts.Recorder, popts.Admission = in.Ledger, in.Ledger
	}
	if p, ok := in.Store.(budget.Parker); ok { // background responses wait in the shared store
		popts.Parking = p
	}
	in.Processor = processor.New(cfg.Snapshot, popts)
	in.startSweeper()
	in.startTokenizer()

	if in.grpcLis, err = net.Listen("tcp", opts.GRPCAddr); err != nil {
		return nil, fmt.Errorf("grpc listener: %w", err)
	}
	in.stack.push(in.stopGRPC)
	if in.adminLis, err = net.Listen("tcp", opts.AdminAddr); err != nil {
		return nil, fmt.Errorf("admin listener: %w", err)
	}
	in.grpc = grpc.NewServer(append(grpcServerOptions(opts.GRPCMaxMessageBytes, log), grpc.ForceServerCodecV2(processor.Codec()))...)
	extprocv3.RegisterExternalProcessorServer(in.grpc, in.Processor)
	in.health = health.NewServer()
	healthpb.RegisterHealthServer(in.grpc, in.health)
	in.health.SetServingStatus("", healthpb.HealthCheckResponse_SERVING)
	in.health.SetServingStatus(extprocv3.ExternalProcessor_ServiceDesc.ServiceName, healthpb.HealthCheckResponse_SERVING)
	// NOT_SERVING before the drain: Envoy's health checks stop sending new streams.
	in.stack.push(func() error { in.health.Shutdown(); return nil })
	in.startBudgetGauges()
	in.budgetsAPI = in.newBudgetsAPI() // its sampler stops before the gauges' refresh
	in.admin = in.newAdminServer()

	go func() { in.serveErrs <- in.grpc.Serve(in.grpcLis) }()
	go func() {
		if err := in.admin.Serve(in.adminLis); !errors.Is(err, http.ErrServerClosed) {
			in.serveErrs <- err
		}
	}()
	in.startReload()
	log.Info("spendguard serving", zap.String("version", Version), zap.String("grpc_addr", in.GRPCAddr()),
		zap.String("admin_addr", in.AdminAddr()), zap.String("config", configName(opts.ConfigPath)),
		zap.Int("grpc_max_message_bytes", opts.GRPCMaxMessageBytes))
	return in, nil
}

// Shutdown unwinds what Start opened, the last opened first: hot reload
// stops (no configuration is installed after it), then the background
// samplers; health turns NOT_SERVING; the gRPC server stops accepting
// streams and lets in-flight ones finish within the shutdown timeout
// (then cancels them, which settles their reservations); the exporters
// flush within their timeout; the engine gives up its settle retries;
// the learned output estimates are saved to the store; the budget store
// is closed (the memory store writes its snapshot);
// the admin server stops last. A second call does nothing.
func (in *Instance) Shutdown() error {
	err := in.stack.unwind()
	_ = in.Log.Sync()
	return err
}

func configName(path string) string {
	if path == "" {
		return "(embedded default)"
	}
	return path
}

func newLogger(level, format string, out io.Writer) (*zap.Logger, error) {
	if level == "" {
		level = "info"
	}
	lvl, err := zapcore.ParseLevel(level)
	if err != nil {
		return nil, err
	}
	encCfg := zap.NewProductionEncoderConfig()
	encCfg.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	switch format {
	case "console":
		encCfg.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(encCfg)
	case "", "json":
		enc = zapcore.NewJSONEncoder(encCfg)
	default:
		return nil, fmt.Errorf("log format %q is neither json nor console", format)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(out)), lvl)), nil
}
