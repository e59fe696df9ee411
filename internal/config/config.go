// Package config composes spendguard's configuration file from the sections
// the other packages own: identity (processor/identity), pricing (pricing),
// budgets and limits (budget), and the store, admin and metrics settings.
// Parsing is strict: an unknown key is an error with its line. Every section
// is validated and all problems are reported together; nothing is half
// loaded. The result is an immutable Compiled value, swapped as a whole.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"os"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor"
	"github.com/spendguard/spendguard/processor/identity"
)

// File is the schema of the configuration file (see
// spec/spendguard.example.yaml and docs/configuration.md).
type File struct {
	Version   int             `yaml:"version"`
	Identity  identity.Config `yaml:"identity"`
	Pricing   pricing.Config  `yaml:"pricing"`
	Budgets   []budget.Config `yaml:"budgets"`
	Limits    budget.Limits   `yaml:"limits"`
	Store     Store           `yaml:"store"`
	Exporters yaml.Node       `yaml:"exporters"`
	Metrics   Metrics         `yaml:"metrics"`
	Admin     Admin           `yaml:"admin"`
}

// Store is the `store:` section.
type Store struct {
	Backend string      `yaml:"backend"`
	Memory  MemoryStore `yaml:"memory"`
	Redis   yaml.Node   `yaml:"redis"`
	OnError string      `yaml:"on_error"`
}

// MemoryStore is `store.memory`.
type MemoryStore struct {
	SnapshotPath string `yaml:"snapshot_path"`
}

// Metrics is the `metrics:` section.
type Metrics struct {
	LabelDimensions []string `yaml:"label_dimensions"`
}

// Admin is the `admin:` section.
type Admin struct {
	Token string `yaml:"token"`
}

// Compiled is a validated configuration, ready to serve.
type Compiled struct {
	File     *File
	Snapshot *processor.Snapshot
}

// Load reads and compiles a configuration file.
func Load(path string) (*Compiled, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return Parse(data)
}

// Parse decodes data strictly and compiles every section, returning all
// problems at once.
func Parse(data []byte) (*Compiled, error) {
	var f File
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&f); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("configuration is empty")
		}
		return nil, err
	}
	var errs []error
	if f.Version != 1 {
		errs = append(errs, fmt.Errorf("version: must be 1 (got %d)", f.Version))
	}
	ident, err := f.Identity.Compile()
	errs = append(errs, err)
	table, err := f.Pricing.Compile()
	errs = append(errs, err)
	policies, err := budget.Compile(f.Budgets, f.Limits)
	errs = append(errs, err)
	switch f.Store.Backend {
	case "", "memory":
	case "redis":
		errs = append(errs, errors.New("store.backend: redis is not available in this build yet; use memory"))
	default:
		errs = append(errs, fmt.Errorf("store.backend: unknown backend %q (want memory or redis)", f.Store.Backend))
	}
	switch f.Store.OnError {
	case "", "fail_closed", "fail_open":
	default:
		errs = append(errs, fmt.Errorf("store.on_error: %q is neither fail_closed nor fail_open", f.Store.OnError))
	}
	if policies != nil {
		for _, b := range policies.Budgets() {
			for _, k := range b.Keys() {
				if !hasDimension(ident, k) {
					errs = append(errs, fmt.Errorf("budgets: line %d: budget %s matches on %q, which is not a dimension in identity.dimensions (nor the built-in model)", b.Line(), b.Name(), k))
				}
			}
		}
	}
	for _, d := range f.Metrics.LabelDimensions {
		if !hasDimension(ident, d) {
			errs = append(errs, fmt.Errorf("metrics.label_dimensions: %q is not a configured dimension", d))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	maxRequest, _ := policies.MaxRequest()
	return &Compiled{File: &f, Snapshot: &processor.Snapshot{
		Identity:   ident,
		Pricing:    table,
		Budgets:    policies,
		MaxRequest: maxRequest,
	}}, nil
}

func hasDimension(r *identity.Resolver, name string) bool {
	if name == identity.ModelDimension {
		return true
	}
	if r == nil {
		return true // identity errors are reported already
	}
	for _, d := range r.Dimensions() {
		if d == name {
			return true
		}
	}
	return false
}
