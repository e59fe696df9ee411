// Package config composes spendguard's configuration file from the sections
// the other packages own: identity (identity), pricing (pricing),
// budgets and limits (budget), the store, exporters, metrics and admin
// settings. Each package decodes and validates its own section; this
// package reads the file, substitutes ${VAR}s from the environment (see
// env.go), checks every key against the schema, has each section compiled,
// checks what spans sections (a budget's match keys must be dimensions),
// and reports every problem at once with its line (Problems). Nothing is
// half loaded: the result is an immutable Compiled value, swapped as a
// whole by a Reloader (watch.go) when the file changes.
//
// The schema, its defaults and the reload semantics are documented for
// operators in docs/configuration.md.
package config

import (
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/metrics"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor"
)

// File is the schema of the configuration file (see
// spec/spendguard.example.yaml and docs/configuration.md). Each field is
// one top-level section, decoded on its own so that a mistake in one
// section does not hide those in another.
type File struct {
	Version   int                `yaml:"version"`
	Identity  identity.Config    `yaml:"identity"`
	Pricing   pricing.Config     `yaml:"pricing"`
	Budgets   []budget.Config    `yaml:"budgets"`
	Limits    budget.Limits      `yaml:"limits"`
	Store     budget.StoreConfig `yaml:"store"`
	Exporters exporters.Config   `yaml:"exporters"`
	Metrics   Metrics            `yaml:"metrics"`
	Admin     Admin              `yaml:"admin"`
}

// Metrics is the `metrics:` section.
type Metrics struct {
	LabelDimensions []string `yaml:"label_dimensions"`
	// RequireToken puts GET /metrics behind the admin tokens (admin.token
	// or admin.read_token, one of which must then be set).
	RequireToken bool         `yaml:"require_token"`
	BudgetGauges BudgetGauges `yaml:"budget_gauges"`
}

// BudgetGauges is `metrics.budget_gauges:`, the bounds of the background
// refresh of the per-scope budget gauges (0 = the default).
type BudgetGauges struct {
	RefreshInterval time.Duration `yaml:"refresh_interval"`
	RefreshTimeout  time.Duration `yaml:"refresh_timeout"`
	MaxScopes       int           `yaml:"max_scopes"`
}

// Options returns the gauges' bounds, defaults filled in.
func (b BudgetGauges) Options() metrics.BudgetGaugeOptions {
	o := metrics.BudgetGaugeOptions{Interval: b.RefreshInterval, Timeout: b.RefreshTimeout, MaxScopes: b.MaxScopes}
	if o.Interval <= 0 {
		o.Interval = metrics.DefaultBudgetGaugeInterval
	}
	if o.Timeout <= 0 {
		o.Timeout = min(metrics.DefaultBudgetGaugeTimeout, o.Interval)
	}
	if o.MaxScopes <= 0 {
		o.MaxScopes = metrics.DefaultBudgetGaugeMaxScopes
	}
	return o
}

// Admin is the `admin:` section: the admin API's bearer tokens (secrets,
// never logged). With neither set the API is open.
type Admin struct {
	// Token may read and change: every method on /v1/*.
	Token string `yaml:"token"`
	// ReadToken may only read: GET, HEAD and OPTIONS on /v1/* (and
	// /metrics with metrics.require_token); other methods are refused
	// 403. Without Token, nothing can be changed through the API.
	ReadToken string `yaml:"read_token"`
}

// Compiled is a validated configuration, ready to serve. Nothing in it
// changes after Parse returns it.
type Compiled struct {
	// File is the decoded file, ${VAR}s substituted: it may hold secrets
	// and must not be logged.
	File     *File
	Snapshot *processor.Snapshot
}

// Load reads and compiles a configuration file, with ${VAR}s from the
// process environment.
func Load(path string) (*Compiled, error) { return Loader{}.Load(path) }

// Parse compiles a configuration, with ${VAR}s from the process
// environment. Its error is Problems: every mistake, each with its line.
func Parse(data []byte) (*Compiled, error) { return Loader{}.Parse(data) }
