package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"
	"google.golang.org/protobuf/types/known/durationpb"

	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Ledger is the spend ledger in PostgreSQL: the exporter that writes it,
// and the queries that read it (reports, recovery, reconciliation).
type Ledger struct {
	pool *pgxpool.Pool
	cfg  Config
	log  *zap.Logger
	rec  *reconciler // nil without reconcile
	w    *writing    // the spool and its shipper (OpenSpooled), else nil
}

var (
	_ sink.Exporter = (*Ledger)(nil)
	_ sink.Closer   = (*Ledger)(nil)
)

// DriftObserver receives every reconciliation window (metrics.Metrics).
type DriftObserver interface {
	ObserveDrift(model string, upstreamPrompt, upstreamGeneration, recordedPrompt, recordedGeneration int64)
}

// Open connects to the ledger of cfg (validated), applies the embedded
// migrations and, with cfg.Reconcile, starts reconciling in the
// background (obs may be nil). Connecting and migrating must finish
// within cfg.StartTimeout.
func Open(cfg Config, obs DriftObserver, log *zap.Logger) (*Ledger, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", errs[0].Field, errs[0].Msg)
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	ctx, cancel := context.WithTimeout(context.Background(), cfg.StartTimeout)
	defer cancel()
	l, err := connect(ctx, cfg)
	if err != nil {
		return nil, err
	}
	l.log = log
	applied, err := Migrate(ctx, l.pool)
	if err != nil {
		l.pool.Close()
		return nil, err
	}
	log.Info("spend ledger ready", zap.Ints("migrations_applied", applied))
	if cfg.Reconcile != nil {
		l.rec = startReconciler(l, *cfg.Reconcile, obs, log)
	}
	return l, nil
}

// Connect opens an existing ledger for reading (spendguard report): no
// migrations, no reconciliation.
func Connect(ctx context.Context, dsn string) (*Ledger, error) {
	cfg := Config{DSN: dsn, MaxConns: 2}
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("--dsn %s", errs[0].Msg)
	}
	l, err := connect(ctx, cfg.withDefaults())
	if err != nil {
		return nil, err
	}
	l.log = zap.NewNop()
	return l, nil
}

func connect(ctx context.Context, cfg Config) (*Ledger, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("ledger dsn: %s", dsnProblem(err))
	}
	pc.MaxConns = int32(cfg.MaxConns)
	pool, err := pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger: cannot reach PostgreSQL at %s: %w", where(pc), err)
	}
	return &Ledger{pool: pool, cfg: cfg}, nil
}

// where names a server without credentials.
func where(pc *pgxpool.Config) string {
	return fmt.Sprintf("%s:%d/%s", pc.ConnConfig.Host, pc.ConnConfig.Port, pc.ConnConfig.Database)
}

// StartTimeout is exporters.postgres.start_timeout (with its default).
func (l *Ledger) StartTimeout() time.Duration { return l.cfg.StartTimeout }

// Pool is the ledger's connection pool (tests, ad-hoc queries).
func (l *Ledger) Pool() *pgxpool.Pool { return l.pool }

// Close stops reconciling, ships what the spool holds (OpenSpooled)
// until ctx is done or PostgreSQL fails — what is left stays in the spool
// for the next start — and closes the connections.
func (l *Ledger) Close(ctx context.Context) error {
	if l.rec != nil {
		l.rec.stop()
	}
	var err error
	if l.w != nil {
		err = l.closeWriting(ctx)
	}
	l.pool.Close()
	return err
}

// ledgerColumns are the columns a report fills, in copy order.
var ledgerColumns = []string{
	"request_id", "start_time", "end_time", "endpoint", "scope",
	"requested_model", "served_model", "response_model",
	"prompt_tokens", "cached_prompt_tokens", "completion_tokens", "reasoning_tokens",
	"cost_nano_usd", "input_cost_nano_usd", "output_cost_nano_usd",
	"estimated", "decision", "reject_reason", "budget",
	"upstream_status", "stream", "aborted",
	"duration_seconds", "upstream_ttfb_seconds", "processor_seconds",
	"usage_source", "cut", "instance",
}

var insertFromStage = "INSERT INTO spendguard_ledger (" + strings.Join(ledgerColumns, ", ") + ") SELECT " +
	strings.Join(ledgerColumns, ", ") + " FROM spendguard_ledger_stage ON CONFLICT DO NOTHING"

// Export writes one row per report: COPY into a temporary staging table,
// then INSERT ... ON CONFLICT DO NOTHING into the ledger, in one
// transaction. A batch retried after a failure whose commit had in fact
// happened (or a report offered twice) adds no row: the key is the
// request id with its start and end times. Errors in the data (class 22,
// 23, 42) are permanent; others (connection, timeouts) are retried by the
// fan-out.
func (l *Ledger) Export(ctx context.Context, batch []*sink.Event) error {
	rows := make([]row, len(batch))
	for i, ev := range batch {
		rows[i] = row{rep: ev.Report, instance: l.cfg.Instance}
	}
	return classify(l.write(ctx, rows))
}

// row is a report and the instance that served it.
type row struct {
	rep      *spendguardv1.CostReport
	instance string
}

// write writes one row per report in one transaction (see Export).
func (l *Ledger) write(ctx context.Context, batch []row) error {
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return err
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	// One staging table per connection, emptied at each commit: creating
	// and dropping one per batch would write the catalog every time.
	if _, err := tx.Exec(ctx, "CREATE TEMP TABLE IF NOT EXISTS spendguard_ledger_stage (LIKE spendguard_ledger INCLUDING DEFAULTS) ON COMMIT DELETE ROWS"); err != nil {
		return err
	}
	src := pgx.CopyFromSlice(len(batch), func(i int) ([]any, error) { return rowOf(batch[i].rep, batch[i].instance), nil })
	if _, err := tx.CopyFrom(ctx, pgx.Identifier{"spendguard_ledger_stage"}, ledgerColumns, src); err != nil {
		return err
	}
	if _, err := tx.Exec(ctx, insertFromStage); err != nil {
		return err
	}
	return tx.Commit(ctx)
}

// classify marks errors that a retry cannot fix as permanent.
func classify(err error) error {
	if err == nil {
		return nil
	}
	var pg *pgconn.PgError
	if errors.As(err, &pg) && len(pg.Code) == 5 {
		switch pg.Code[:2] {
		case "22", "23", "42":
			return sink.Permanent(fmt.Errorf("ledger: %w", err))
		}
	}
	return fmt.Errorf("ledger: %w", err)
}

// rowOf is a report's ledger row, in ledgerColumns order. Text is made
// valid for PostgreSQL (no NUL, valid UTF-8): one odd model name must not
// make a whole batch fail.
func rowOf(r *spendguardv1.CostReport, instance string) []any {
	scope := make(map[string]string, len(r.GetScope()))
	for k, v := range r.GetScope() {
		scope[clean(k)] = clean(v)
	}
	var ttfb *float64
	if d := r.GetUpstreamTimeToFirstByte(); d != nil {
		s := seconds(d)
		ttfb = &s
	}
	return []any{
		clean(r.GetRequestId()), r.GetStartTime().AsTime(), r.GetEndTime().AsTime(), clean(r.GetEndpoint()), scope,
		clean(r.GetRequestedModel()), clean(r.GetServedModel()), clean(r.GetResponseModel()),
		r.GetPromptTokens(), r.GetCachedPromptTokens(), r.GetCompletionTokens(), r.GetReasoningTokens(),
		r.GetCostNanoUsd(), r.GetInputCostNanoUsd(), r.GetOutputCostNanoUsd(),
		r.GetEstimated(), sink.DecisionName(r.GetDecision()), clean(r.GetRejectReason()), clean(r.GetBudget()),
		r.GetUpstreamStatus(), r.GetStream(), r.GetAborted(),
		seconds(r.GetDuration()), ttfb, seconds(r.GetProcessorTime()),
		sink.UsageSourceName(r.GetUsageSource()), r.GetCut(), nullable(clean(instance)),
	}
}

func seconds(d *durationpb.Duration) float64 {
	if d == nil {
		return 0
	}
	return d.AsDuration().Seconds()
}

// nullable is s, or NULL when empty.
func nullable(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}

func clean(s string) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	return strings.ReplaceAll(s, "\x00", "\uFFFD")
}
