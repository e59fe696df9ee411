package exporters

import (
	"errors"
	"fmt"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/exporters/helicone"
	"github.com/spendguard/spendguard/exporters/jsonlog"
	"github.com/spendguard/spendguard/exporters/otlp"
	"github.com/spendguard/spendguard/exporters/postgres"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/webhook"
)

// Config is the configuration file's `exporters:` section. An exporter is
// on when its subsection is present. ${VAR} references are expanded by the
// configuration loader before this section is decoded.
type Config struct {
	// QueueSize is each exporter's queue length (default 10000): when it
	// is full, reports are dropped and counted, never blocking a request.
	QueueSize int `yaml:"queue_size"`
	// BatchSize is how many reports one OTLP or log delivery carries at
	// most (default 512). Helicone and webhooks send one per call.
	BatchSize int `yaml:"batch_size"`
	// RetryFor is how long a failed delivery is retried, from its first
	// attempt (default 2m): a retry whose wait would end later is not
	// started, and the batch is dropped and counted. Retries wait
	// RetryBackoff, doubling up to RetryBackoffMax, with full jitter.
	RetryFor time.Duration `yaml:"retry_for"`
	// MaxRetries, when set, also bounds the retries of one delivery
	// (whichever of it and RetryFor comes first); 0 disables retries.
	// Unset (nil), only RetryFor bounds them.
	MaxRetries      *int          `yaml:"max_retries"`
	RetryBackoff    time.Duration `yaml:"retry_backoff"`     // default 500ms
	RetryBackoffMax time.Duration `yaml:"retry_backoff_max"` // default 30s
	// Timeout bounds one delivery attempt (default 10s).
	Timeout time.Duration `yaml:"timeout"`

	OTLP     *otlp.Config     `yaml:"otlp"`
	Helicone *helicone.Config `yaml:"helicone"`
	Webhook  *webhook.Config  `yaml:"webhook"`
	Log      *jsonlog.Config  `yaml:"log"`
	// Postgres is the spend ledger (docs/ledger.md).
	Postgres *postgres.Config `yaml:"postgres"`

	// ServiceVersion is spendguard's version, exported as the OTLP
	// resource's service.version. Set by the program, not the file.
	ServiceVersion string `yaml:"-"`
	// AlertClaims, when set (a shared budget store), makes the webhook
	// send each calendar or total period's alert from one replica of the
	// fleet: the one that claims it under AlertOwner (this process's
	// name). Set by the program, not the file.
	AlertClaims webhook.Claimer `yaml:"-"`
	AlertOwner  string          `yaml:"-"`

	lines    map[string]int // dotted key below exporters -> line
	problems []error        // unknown keys, found while decoding
	line     int            // line of the section
}

// Defaults of Config.
const (
	DefaultQueueSize       = 10000
	DefaultBatchSize       = 512
	DefaultRetryFor        = 2 * time.Minute
	DefaultRetryBackoff    = 500 * time.Millisecond
	DefaultRetryBackoffMax = 30 * time.Second
	DefaultTimeout         = 10 * time.Second
)

// UnmarshalYAML decodes the section and remembers every key's line. It
// collects unknown keys instead of failing (yaml.v3 drops KnownFields
// inside custom unmarshalers); Validate reports them with the rest.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	type plain Config
	if err := n.Decode((*plain)(c)); err != nil {
		return err
	}
	c.line = n.Line
	c.lines, c.problems = checkKeys(n, reflect.TypeFor[plain]())
	return nil
}

// Decode decodes and validates an exporters section held as a yaml.Node
// (as the configuration loader keeps it). A zero node is an empty section:
// no exporters.
func Decode(n *yaml.Node) (Config, error) {
	var c Config
	if n == nil || n.Kind == 0 {
		return c, nil
	}
	if err := n.Decode(&c); err != nil {
		return Config{}, err
	}
	return c, c.Validate()
}

// Validate returns every problem of the section at once (errors.Join of
// *ConfigError), with lines when decoded from YAML.
func (c *Config) Validate() error {
	errs := append([]error(nil), c.problems...)
	bad := func(key, format string, args ...any) {
		errs = append(errs, &ConfigError{Line: c.lineOf(key), Where: "exporters." + key, Msg: fmt.Sprintf(format, args...)})
	}
	if c.QueueSize < 0 || c.QueueSize > 10_000_000 {
		bad("queue_size", "must be between 1 and 10000000 (got %d)", c.QueueSize)
	}
	if c.BatchSize < 0 || c.BatchSize > 100_000 {
		bad("batch_size", "must be between 1 and 100000 (got %d)", c.BatchSize)
	}
	if c.MaxRetries != nil && (*c.MaxRetries < 0 || *c.MaxRetries > 100) {
		bad("max_retries", "must be between 0 and 100 (got %d)", *c.MaxRetries)
	}
	for key, d := range map[string]time.Duration{"retry_for": c.RetryFor, "retry_backoff": c.RetryBackoff, "retry_backoff_max": c.RetryBackoffMax, "timeout": c.Timeout} {
		if d < 0 {
			bad(key, "must not be negative (got %s)", d)
		}
	}
	if c.RetryBackoff > 0 && c.RetryBackoffMax > 0 && c.RetryBackoff > c.RetryBackoffMax {
		bad("retry_backoff", "%s is longer than retry_backoff_max %s", c.RetryBackoff, c.RetryBackoffMax)
	}
	section := func(name string, problems []sink.FieldError) {
		for _, p := range problems {
			key := name + "." + p.Field
			errs = append(errs, &ConfigError{Line: c.lineOf(key, name), Where: "exporters." + key, Msg: p.Msg})
		}
	}
	if c.OTLP != nil {
		section("otlp", c.OTLP.Validate())
	}
	if c.Helicone != nil {
		section("helicone", c.Helicone.Validate())
	}
	if c.Webhook != nil {
		section("webhook", c.Webhook.Validate())
	}
	if c.Log != nil {
		section("log", c.Log.Validate())
	}
	if c.Postgres != nil {
		section("postgres", c.Postgres.Validate())
	}
	return errors.Join(errs...)
}

// lineOf returns the line of the first of keys that was in the file, else
// the section's line.
func (c *Config) lineOf(keys ...string) int {
	for _, k := range keys {
		if l, ok := c.lines[k]; ok {
			return l
		}
	}
	return c.line
}

// withDefaults returns c with every unset tunable at its default.
func (c Config) withDefaults() Config {
	if c.QueueSize == 0 {
		c.QueueSize = DefaultQueueSize
	}
	if c.BatchSize == 0 {
		c.BatchSize = DefaultBatchSize
	}
	if c.RetryFor == 0 {
		c.RetryFor = DefaultRetryFor
	}
	if c.RetryBackoff == 0 {
		c.RetryBackoff = DefaultRetryBackoff
	}
	if c.RetryBackoffMax == 0 {
		c.RetryBackoffMax = max(DefaultRetryBackoffMax, c.RetryBackoff)
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultTimeout
	}
	return c
}
