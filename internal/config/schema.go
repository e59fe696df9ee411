package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/spendguard/spendguard/internal/suggest"

	"gopkg.in/yaml.v3"
)

// Strict keys
//
// yaml.v3 only checks keys (KnownFields) when it decodes text, and the
// document is decoded from nodes after ${VAR} substitution, so checkKeys
// does the same check on the node tree against the Go types: every key of
// a mapping decoded into a struct must be a yaml tag of that struct (or of
// an inline struct in it). It stops at types with their own UnmarshalYAML
// and at yaml.Node fields: those check their own keys (budget, identity)
// or belong to a section whose owner validates it.

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	nodeType        = reflect.TypeFor[yaml.Node]()
)

// keyChecker walks a node tree alongside a Go type.
type keyChecker struct {
	ps *problems
	// visited stops alias cycles and repeated walks of a shared anchor.
	visited map[visit]bool
}

type visit struct {
	n *yaml.Node
	t reflect.Type
}

func (c *keyChecker) check(n *yaml.Node, t reflect.Type, path string) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || t == nodeType || reflect.PointerTo(t).Implements(unmarshalerType) {
		return
	}
	if n.Kind == yaml.AliasNode {
		n = n.Alias
		if n == nil {
			return
		}
	}
	if c.visited[visit{n, t}] {
		return
	}
	c.visited[visit{n, t}] = true
	switch t.Kind() {
	case reflect.Struct:
		if n.Kind != yaml.MappingNode {
			return // the decoder reports the type mismatch
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				c.merge(v, t, path)
				continue
			}
			f, ok := fieldFor(t, k.Value)
			if !ok {
				c.ps.add(k.Line, "%s: unknown key%s (allowed: %s)", keyPath(path, k.Value), suggest.Key(k.Value, yamlNames(t)),
					strings.Join(yamlNames(t), ", "))
				continue
			}
			c.check(v, f.Type, keyPath(path, k.Value))
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			c.check(n.Content[i+1], t.Elem(), keyPath(path, n.Content[i].Value))
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			c.check(item, t.Elem(), indexPath(path, i))
		}
	}
}

// merge checks the mapping(s) of a "<<" merge key against the same type.
func (c *keyChecker) merge(v *yaml.Node, t reflect.Type, path string) {
	if v.Kind == yaml.SequenceNode {
		for _, item := range v.Content {
			c.check(item, t, path)
		}
		return
	}
	c.check(v, t, path)
}

// fieldFor finds the struct field a key decodes into, looking inside
// ",inline" structs.
func fieldFor(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if isInline(f) {
			if g, ok := fieldFor(f.Type, key); ok {
				return g, true
			}
			continue
		}
		if yamlName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// yamlNames lists the keys a struct type accepts, in declaration order.
func yamlNames(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		switch {
		case !f.IsExported():
		case isInline(f):
			out = append(out, yamlNames(f.Type)...)
		case yamlName(f) != "":
			out = append(out, yamlName(f))
		}
	}
	return out
}

func isInline(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return f.Type.Kind() == reflect.Struct && strings.Contains(","+opts+",", ",inline,")
}

// yamlName is the key of a field: its yaml tag name, or its lower-cased
// name as yaml.v3 does; "" for a field yaml skips.
func yamlName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch {
	case !f.IsExported() || name == "-":
		return ""
	case name == "":
		return strings.ToLower(f.Name)
	}
	return name
}

func keyPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }

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
