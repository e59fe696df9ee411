package postgres

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/spendguard/spendguard/exporters/sink"
)

// Config is the `exporters.postgres` section: the spend ledger.
type Config struct {
	// DSN is the PostgreSQL connection string (URL or key=value), a
	// secret: never logged. Required.
	DSN string `yaml:"dsn"`
	// MaxConns bounds the ledger's connection pool (default 4); the
	// reconciliation leader holds one more connection of its own.
	MaxConns int `yaml:"max_conns"`
	// StartTimeout bounds connecting, migrating and rebuilding the
	// memory store's counters at start (default 30s): past it the start
	// fails.
	StartTimeout time.Duration `yaml:"start_timeout"`
	// Reconcile, when present, compares vLLM's own token counters with
	// the ledger's.
	Reconcile *ReconcileConfig `yaml:"reconcile"`
	// Spool is the local disk spool rows wait in until PostgreSQL has
	// them.
	Spool SpoolConfig `yaml:"spool"`
	// ReadyRequiresLedger makes /readyz report not ready while
	// PostgreSQL cannot be written or the spool refuses requests
	// (default false: a ledger outage costs no availability).
	ReadyRequiresLedger bool `yaml:"ready_requires_ledger"`

	// Instance names this process in the rows it records (the ledger's
	// instance column): the id its budget leases are held under, so that
	// a dead process's forfeits can be reconciled with its rows. Set by
	// the program, not the file.
	Instance string `yaml:"-"`
	// BatchSize is how many rows one write to PostgreSQL carries at most
	// (exporters.batch_size; set by the exporters section, not here).
	BatchSize int `yaml:"-"`
}

// ReconcileConfig is `exporters.postgres.reconcile`.
type ReconcileConfig struct {
	// VLLMMetricsURLs are the /metrics URLs of every vLLM replica behind
	// this spendguard's Envoy (their counters are added up per model).
	// Required, at least one.
	VLLMMetricsURLs []string `yaml:"vllm_metrics_urls"`
	// Interval is how often the counters are scraped (default 30s).
	Interval time.Duration `yaml:"interval"`
	// SettleDelay is how old a scrape must be before the window ending at
	// it is compared with the ledger, so that the reports of requests
	// that ended in it have been written (default 60s).
	SettleDelay time.Duration `yaml:"settle_delay"`
	// Timeout bounds one scrape of all URLs (default 5s).
	Timeout time.Duration `yaml:"timeout"`
}

// Defaults of Config and ReconcileConfig.
const (
	DefaultMaxConns     = 4
	DefaultStartTimeout = 30 * time.Second
	DefaultInterval     = 30 * time.Second
	DefaultSettleDelay  = 60 * time.Second
	DefaultScrapeTimout = 5 * time.Second
	DefaultBatchSize    = 512
)

// Validate returns every problem of c. The DSN is never quoted.
func (c Config) Validate() []sink.FieldError {
	var errs []sink.FieldError
	bad := func(field, format string, args ...any) {
		errs = append(errs, sink.FieldError{Field: field, Msg: fmt.Sprintf(format, args...)})
	}
	if c.DSN == "" {
		bad("dsn", "is required: a PostgreSQL connection string, e.g. postgres://user@host:5432/db")
	} else if _, err := pgxpool.ParseConfig(c.DSN); err != nil {
		bad("dsn", "is not a PostgreSQL connection string (%s)", dsnProblem(err))
	}
	if c.MaxConns < 0 || c.MaxConns > 1000 {
		bad("max_conns", "must be between 1 and 1000 (got %d)", c.MaxConns)
	}
	if c.StartTimeout < 0 {
		bad("start_timeout", "must not be negative (got %s)", c.StartTimeout)
	}
	c.Spool.validate(bad)
	if r := c.Reconcile; r != nil {
		if len(r.VLLMMetricsURLs) == 0 {
			bad("reconcile.vllm_metrics_urls", "needs at least one vLLM /metrics URL")
		}
		for i, u := range r.VLLMMetricsURLs {
			if p, err := url.Parse(u); err != nil || (p.Scheme != "http" && p.Scheme != "https") || p.Host == "" {
				bad("reconcile.vllm_metrics_urls", "[%d] %q is not an http or https URL", i, u)
			}
		}
		for field, d := range map[string]time.Duration{"interval": r.Interval, "settle_delay": r.SettleDelay, "timeout": r.Timeout} {
			if d < 0 {
				bad("reconcile."+field, "must not be negative (got %s)", d)
			}
		}
	}
	return errs
}

// dsnProblem says what is wrong with a DSN without quoting any of it
// (pgx's own message repeats the string, and may not find every password).
func dsnProblem(err error) string {
	var ue *url.Error
	if errors.As(err, &ue) {
		return ue.Err.Error()
	}
	return "check its syntax"
}

func (c Config) withDefaults() Config {
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.StartTimeout == 0 {
		c.StartTimeout = DefaultStartTimeout
	}
	if c.BatchSize <= 0 {
		c.BatchSize = DefaultBatchSize
	}
	c.Spool = c.Spool.withDefaults(c.DSN)
	if r := c.Reconcile; r != nil {
		rc := *r
		if rc.Interval == 0 {
			rc.Interval = DefaultInterval
		}
		if rc.SettleDelay == 0 {
			rc.SettleDelay = DefaultSettleDelay
		}
		if rc.Timeout == 0 {
			rc.Timeout = DefaultScrapeTimout
		}
		c.Reconcile = &rc
	}
	return c
}
