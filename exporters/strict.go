package exporters

import (
	"fmt"
	"reflect"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// yaml.v3 decodes the inside of a custom UnmarshalYAML without the
// caller's KnownFields setting, so the exporters section checks its own
// keys: walkKeys compares every mapping key with the yaml tags of the
// struct it decodes into, records the line of each known key and reports
// the unknown ones.

var (
	nodeType     = reflect.TypeFor[yaml.Node]()
	durationType = reflect.TypeFor[time.Duration]()
)

// walkKeys checks the keys of n against struct type t (dereferencing
// pointers), recursing into nested structs. Paths are dotted below the
// exporters section ("otlp.endpoint").
func walkKeys(n *yaml.Node, t reflect.Type, prefix string, lines map[string]int, errs *[]error) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind != yaml.MappingNode || t.Kind() != reflect.Struct || t == nodeType {
		return
	}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		path := prefix + k.Value
		f, ok := fieldForKey(t, k.Value)
		if !ok {
			*errs = append(*errs, &ConfigError{Line: k.Line, Key: path,
				Msg: fmt.Sprintf("unknown key (known: %s)", strings.Join(knownKeys(t), ", "))})
			continue
		}
		lines[path] = k.Line
		ft := f.Type
		for ft.Kind() == reflect.Pointer {
			ft = ft.Elem()
		}
		if ft.Kind() == reflect.Struct && ft != durationType {
			walkKeys(v, ft, path+".", lines, errs)
		}
	}
}

func fieldForKey(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if f.IsExported() && tagName(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

func knownKeys(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() {
			if name := tagName(f); name != "" && name != "-" {
				out = append(out, name)
			}
		}
	}
	return out
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return name
}
