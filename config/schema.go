package config

import (
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/strictyaml"
)

// checkKeys reports every key of the file that the schema does not know,
// with a suggestion and the keys allowed there. yaml.v3 only checks keys
// when it decodes text, and the document is decoded from nodes after
// ${VAR} substitution, so strictyaml.Check does it on the node tree. It
// stops at types with their own UnmarshalYAML and at yaml.Node fields:
// those check their own keys (budget, store, exporters, identity) or
// belong to a section whose owner validates it.
func checkKeys(root *yaml.Node, ps *problems) {
	for _, u := range strictyaml.Check(root, reflect.TypeFor[File](), "").Unknown {
		ps.add(u.Line, "%s: unknown key%s", u.Path, u.Hint())
	}
}

// lineOf returns the line of the value reached from root through the
// mapping keys, 0 when absent.
func lineOf(root *yaml.Node, keys ...string) int {
	n := root
	for _, k := range keys {
		n = valueOf(n, k)
		if n == nil {
			return 0
		}
	}
	return n.Line
}

// valueOf returns the value of key in mapping n, nil when absent.
func valueOf(n *yaml.Node, key string) *yaml.Node {
	if n == nil || n.Kind != yaml.MappingNode {
		return nil
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i+1]
		}
	}
	return nil
}

// keyLine returns the line of key in mapping n, 0 when absent.
func keyLine(n *yaml.Node, key string) int {
	if n == nil || n.Kind != yaml.MappingNode {
		return 0
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		if n.Content[i].Value == key {
			return n.Content[i].Line
		}
	}
	return 0
}
