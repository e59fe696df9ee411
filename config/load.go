package config

import (
	"bytes"
	"errors"
	"io"
	"maps"
	"os"
	"reflect"
	"slices"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/internal/strictyaml"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor"
)

// Loader reads configuration files. The zero value reads ${VAR}s from the
// process environment.
type Loader struct {
	// LookupEnv returns the value of an environment variable and whether
	// it is set; nil means os.LookupEnv.
	LookupEnv func(name string) (string, bool)
}

// Load reads and compiles the file at path (symlinks followed).
func (l Loader) Load(path string) (*Compiled, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	return l.Parse(data)
}

// Parse compiles a configuration. It returns every problem at once as
// Problems, sorted by line: YAML syntax, unknown keys, unset variables,
// values of the wrong type, each section's validation, and the checks
// across sections. It never returns a partial configuration.
func (l Loader) Parse(data []byte) (*Compiled, error) {
	ps := &problems{}
	root := parseDocument(data, ps)
	if root == nil {
		return nil, ps.err()
	}
	lookup := l.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}
	env := &expander{lookup: lookup, ps: ps}
	env.walk(root, "")
	checkKeys(root, ps)
	f := &File{}
	failed := decodeSections(root, f, ps)
	env.reportUnset(f)
	snap := compile(f, root, failed, ps)
	if err := ps.err(); err != nil {
		return nil, err
	}
	return &Compiled{File: f, Snapshot: snap}, nil
}

// parseDocument returns the top-level mapping of data, or nil after
// recording why there is none.
func parseDocument(data []byte, ps *problems) *yaml.Node {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			ps.add(0, "the configuration is empty")
		} else {
			ps.addErr(err, "", 0)
		}
		return nil
	}
	var next yaml.Node
	if err := dec.Decode(&next); !errors.Is(err, io.EOF) {
		ps.add(next.Line, "only one YAML document is allowed (remove the ---)")
	}
	if doc.Kind != yaml.DocumentNode || len(doc.Content) != 1 {
		ps.add(0, "the configuration is empty")
		return nil
	}
	root := doc.Content[0]
	switch {
	case root.Kind == yaml.MappingNode:
		return root
	case root.ShortTag() == "!!null":
		ps.add(0, "the configuration is empty")
	default:
		ps.add(root.Line, "the configuration must be a mapping of sections (version:, identity:, pricing:, budgets:, ...)")
	}
	return nil
}

// decodeSections decodes each top-level section into its field of f, on
// its own, and returns the sections that did not decode.
func decodeSections(root *yaml.Node, f *File, ps *problems) map[string]bool {
	failed := map[string]bool{}
	v := reflect.ValueOf(f).Elem()
	first := map[string]int{}
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, val := root.Content[i], root.Content[i+1]
		if line, dup := first[k.Value]; dup {
			ps.add(k.Line, "%s: defined twice (first at line %d)", k.Value, line)
			failed[k.Value] = true
			continue
		}
		first[k.Value] = k.Line
		if k.Value == "<<" {
			ps.add(k.Line, "merge keys (<<) are not supported at the top level")
			continue
		}
		field, ok := strictyaml.Field(v.Type(), k.Value)
		if !ok {
			continue // reported by checkKeys
		}
		if err := val.Decode(v.FieldByName(field.Name).Addr().Interface()); err != nil {
			ps.addErr(err, k.Value, k.Line)
			failed[k.Value] = true
		}
	}
	return failed
}

// compile has each section that decoded compiled by its package, then
// checks what spans sections. A section that did not decode is not
// compiled: its partial value would only add misleading problems.
func compile(f *File, root *yaml.Node, failed map[string]bool, ps *problems) *processor.Snapshot {
	line := func(section string) int { return keyLine(root, section) }
	switch {
	case failed["version"]:
	case line("version") == 0:
		ps.add(0, "version: missing (the file starts with version: 1)")
	case f.Version != 1:
		ps.add(lineOf(root, "version"), "version: must be 1, not %d", f.Version)
	}
	var (
		ident    *identity.Resolver
		table    *pricing.Table
		policies *budget.Policies
		err      error
	)
	if !failed["identity"] {
		ident, err = f.Identity.Compile()
		ps.addErr(err, "identity", line("identity"))
	}
	if !failed["pricing"] {
		table, err = f.Pricing.Compile()
		ps.addErr(err, "pricing", line("pricing"))
	}
	if !failed["budgets"] || !failed["limits"] {
		budgets, limits := f.Budgets, f.Limits
		if failed["budgets"] {
			budgets = nil
		}
		if failed["limits"] {
			limits = budget.Limits{}
		}
		policies, err = budget.Compile(budgets, limits)
		ps.addErr(err, "", line("budgets"))
	}
	if !failed["store"] {
		ps.addErr(f.Store.Validate(), "store", line("store"))
	}
	if !failed["exporters"] {
		ps.addErr(f.Exporters.Validate(), "exporters", line("exporters"))
	}
	// Dimensions are checked by the names under identity.dimensions, so
	// that these checks run even when a dimension's sources have mistakes.
	dims, ok := dimensionNames(root)
	if ok && !failed["budgets"] {
		for _, b := range f.Budgets {
			for _, k := range slices.Sorted(maps.Keys(b.Match)) {
				if !dims[k] {
					ps.add(b.Line, "budget %q: matches on %q, which is not a dimension in identity.dimensions (nor the built-in model)", b.Name, k)
				}
			}
		}
	}
	if !failed["metrics"] {
		if !ok {
			dims = nil
		}
		checkMetrics(f, root, dims, !failed["admin"], ps)
	}
	if !failed["admin"] {
		checkAdmin(f, root, ps)
	}
	if ident == nil || table == nil || policies == nil {
		return nil
	}
	maxRequest, _ := policies.MaxRequest()
	return &processor.Snapshot{Identity: ident, Pricing: table, Budgets: policies, MaxRequest: maxRequest,
		FailOpen: f.Store.FailOpen()}
}

// itemLine is the line of the i-th item of a sequence node (0 if absent).
func itemLine(seq *yaml.Node, i int) int {
	if seq == nil || seq.Kind != yaml.SequenceNode || i >= len(seq.Content) {
		return 0
	}
	return seq.Content[i].Line
}

// dimensionNames returns the names under identity.dimensions and the
// built-in model. It is false when that is not a mapping (already
// reported): every name would then look unknown.
func dimensionNames(root *yaml.Node) (map[string]bool, bool) {
	names := map[string]bool{identity.ModelDimension: true}
	n := valueOf(valueOf(root, "identity"), "dimensions")
	if n == nil {
		return names, true
	}
	if n.Kind != yaml.MappingNode {
		return nil, false
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		names[n.Content[i].Value] = true
	}
	return names, true
}
