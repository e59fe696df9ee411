package strictyaml

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/suggest"
)

// Unknown is a mapping key that no field of the struct it decodes into
// names.
type Unknown struct {
	Line int    // line of the key
	Path string // dotted path of the key from where Check started: "redis.adress"
	Key  string // the key as written
	// Allowed are the keys the struct accepts, in declaration order.
	Allowed []string
}

// Hint is what every unknown-key message ends with: a suggestion when the
// key is a likely misspelling of an allowed one, then the allowed keys:
// `; did you mean "backend"? (allowed: backend, memory)`.
func (u Unknown) Hint() string {
	return suggest.Key(u.Key, u.Allowed) + " (allowed: " + strings.Join(u.Allowed, ", ") + ")"
}

// Keys is what Check found.
type Keys struct {
	// Unknown are the unknown keys, in document order.
	Unknown []Unknown
	// Lines maps the dotted path of every key that was not unknown (struct
	// fields and map keys alike) to its line.
	Lines map[string]int
}

// Line returns the line of the key at path, or else of its nearest parent
// key, 0 when neither is known.
func (k Keys) Line(path string) int {
	for p := path; p != ""; p = parent(p) {
		if l, ok := k.Lines[p]; ok {
			return l
		}
	}
	return 0
}

func parent(p string) string {
	if i := strings.LastIndexAny(p, ".["); i >= 0 {
		return p[:i]
	}
	return ""
}

var (
	unmarshalerType = reflect.TypeFor[yaml.Unmarshaler]()
	nodeType        = reflect.TypeFor[yaml.Node]()
)

// Check walks n alongside the Go type t (pointers dereferenced): every key
// of a mapping decoded into a struct must be a yaml key of that struct (or
// of an ",inline" struct in it), as yaml.v3 names them. It follows
// aliases, checks the mappings of a "<<" merge key against the same
// struct, and goes into map values and sequence items. It does not go
// into yaml.Node fields nor into types with their own UnmarshalYAML
// (below the root): those check their own keys. Paths start with path
// ("" for none) and are dotted, with [i] for sequence items. Type
// mismatches are left to the decoder.
func Check(n *yaml.Node, t reflect.Type, path string) Keys {
	c := checker{keys: Keys{Lines: map[string]int{}}, visited: map[visit]bool{}}
	c.walk(n, t, path, true)
	return c.keys
}

type checker struct {
	keys Keys
	// visited stops alias cycles and repeated walks of a shared anchor.
	visited map[visit]bool
}

type visit struct {
	n *yaml.Node
	t reflect.Type
}

func (c *checker) walk(n *yaml.Node, t reflect.Type, path string, root bool) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n == nil || t == nodeType || (!root && reflect.PointerTo(t).Implements(unmarshalerType)) {
		return
	}
	if n.Kind == yaml.AliasNode {
		if n = n.Alias; n == nil {
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
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			if k.Value == "<<" && k.ShortTag() == "!!merge" {
				c.merge(v, t, path)
				continue
			}
			f, ok := Field(t, k.Value)
			if !ok {
				c.keys.Unknown = append(c.keys.Unknown, Unknown{Line: k.Line, Path: join(path, k.Value), Key: k.Value, Allowed: Names(t)})
				continue
			}
			c.keys.Lines[join(path, k.Value)] = k.Line
			c.walk(v, f.Type, join(path, k.Value), false)
		}
	case reflect.Map:
		if n.Kind != yaml.MappingNode {
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k := n.Content[i]
			c.keys.Lines[join(path, k.Value)] = k.Line
			c.walk(n.Content[i+1], t.Elem(), join(path, k.Value), false)
		}
	case reflect.Slice, reflect.Array:
		if n.Kind != yaml.SequenceNode {
			return
		}
		for i, item := range n.Content {
			c.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i), false)
		}
	}
}

// merge checks the mapping(s) of a "<<" merge key against the same type.
func (c *checker) merge(v *yaml.Node, t reflect.Type, path string) {
	if v.Kind == yaml.SequenceNode {
		for _, item := range v.Content {
			c.walk(item, t, path, true)
		}
		return
	}
	c.walk(v, t, path, true)
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// Field finds the struct field (of struct type t) that key decodes into,
// looking inside ",inline" structs.
func Field(t reflect.Type, key string) (reflect.StructField, bool) {
	for i := range t.NumField() {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		if isInline(f) {
			if g, ok := Field(f.Type, key); ok {
				return g, true
			}
			continue
		}
		if name(f) == key {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// Names lists the keys struct type t accepts, in declaration order.
func Names(t reflect.Type) []string {
	var out []string
	for i := range t.NumField() {
		f := t.Field(i)
		switch {
		case !f.IsExported():
		case isInline(f):
			out = append(out, Names(f.Type)...)
		case name(f) != "":
			out = append(out, name(f))
		}
	}
	return out
}

func isInline(f reflect.StructField) bool {
	_, opts, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	return f.Type.Kind() == reflect.Struct && strings.Contains(","+opts+",", ",inline,")
}

// name is the key of a field: its yaml tag name, or its lower-cased name
// as yaml.v3 does; "" for a field yaml skips.
func name(f reflect.StructField) string {
	n, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
	switch {
	case !f.IsExported() || n == "-":
		return ""
	case n == "":
		return strings.ToLower(f.Name)
	}
	return n
}

// Decode checks the keys of n against v's type like Check, then decodes n
// into v. Unknown keys come back as a *yaml.TypeError worded like
// yaml.v3's own KnownFields error ("line 3: field token not found") with
// Hint after it, so that a caller's decoder goes on and reports every
// problem of the file at once. v must be a pointer.
func Decode(n *yaml.Node, v any) error {
	keys := Check(n, reflect.TypeOf(v), "")
	if len(keys.Unknown) > 0 {
		msgs := make([]string, len(keys.Unknown))
		for i, u := range keys.Unknown {
			msgs[i] = fmt.Sprintf("line %d: field %s not found%s", u.Line, u.Path, u.Hint())
		}
		return &yaml.TypeError{Errors: msgs}
	}
	return n.Decode(v)
}
