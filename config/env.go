package config

import (
	"fmt"
	"reflect"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/strictyaml"
)

// Environment variables
//
// ${NAME} in any scalar value (never in a key) is replaced by the value of
// the environment variable NAME (letters, digits and _, not starting with
// a digit); $${ is a literal ${ and any other $ is kept as written. The
// substitution happens on the parsed document, value by value, so a
// variable can never add keys or change the structure of the file, and
// line numbers stay those of the file.
//
// A substituted unquoted value is read as if its text had been written in
// the file (so `db: ${REDIS_DB}` can fill a number), except that a
// non-empty value is never null: a password "null" stays the string
// "null". Quote it ("${VAR}") to always get a string.
//
// A variable that is not set at all (set but empty is fine) is an error,
// unless the value is inside an unused section: a part of a section that
// the section's own settings switch off, as declared by its type's
// UnusedReporter (store.redis while store.backend is memory). A variable
// in an unused section that is not set reads as empty.

// UnusedReporter is implemented by a section type (a field of File) whose
// settings leave parts of it unused. Unused returns those parts as keys
// relative to the section ("redis", or a dotted path such as
// "otlp.headers"). It is called on the decoded section.
type UnusedReporter interface {
	Unused() []string
}

// unsetVar is a ${NAME} whose variable is not set.
type unsetVar struct {
	path string
	line int
	name string
}

// expander substitutes ${NAME} in every scalar value of a document.
type expander struct {
	lookup func(string) (string, bool)
	unset  []unsetVar
	ps     *problems
}

func (e *expander) walk(n *yaml.Node, path string) {
	switch n.Kind {
	case yaml.DocumentNode:
		for _, c := range n.Content {
			e.walk(c, path)
		}
	case yaml.SequenceNode:
		for i, c := range n.Content {
			e.walk(c, indexPath(path, i))
		}
	case yaml.MappingNode:
		for i := 0; i+1 < len(n.Content); i += 2 {
			e.walk(n.Content[i+1], keyPath(path, n.Content[i].Value))
		}
	case yaml.ScalarNode:
		e.scalar(n, path)
	}
	// An alias shares its anchor's node, which is substituted where it is
	// defined.
}

func (e *expander) scalar(n *yaml.Node, path string) {
	if !strings.Contains(n.Value, "$") {
		return
	}
	var sb strings.Builder
	s := n.Value
	for {
		i := strings.IndexByte(s, '$')
		if i < 0 {
			sb.WriteString(s)
			break
		}
		sb.WriteString(s[:i])
		s = s[i:]
		switch {
		case strings.HasPrefix(s, "$${"):
			sb.WriteString("${")
			s = s[3:]
		case strings.HasPrefix(s, "${"):
			end := strings.IndexByte(s, '}')
			if end < 0 || !isVarName(s[2:end]) {
				e.ps.add(n.Line, "%s: malformed ${...}: write ${NAME} with NAME of letters, digits and _ (or $${ for a literal ${)", path)
				return
			}
			name := s[2:end]
			if v, ok := e.lookup(name); ok {
				sb.WriteString(v)
			} else {
				e.unset = append(e.unset, unsetVar{path: path, line: n.Line, name: name})
			}
			s = s[end+1:]
		default:
			sb.WriteByte('$')
			s = s[1:]
		}
	}
	n.Value = sb.String()
	const fixed = yaml.TaggedStyle | yaml.SingleQuotedStyle | yaml.DoubleQuotedStyle | yaml.LiteralStyle | yaml.FoldedStyle
	if n.Style&fixed == 0 {
		n.Tag = (&yaml.Node{Kind: yaml.ScalarNode, Value: n.Value}).ShortTag()
		if n.Tag == "!!null" && n.Value != "" {
			n.Tag = "!!str"
		}
	}
}

func isVarName(s string) bool {
	if s == "" || s[0] >= '0' && s[0] <= '9' {
		return false
	}
	for _, c := range []byte(s) {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// reportUnset adds a problem for every unset variable outside the unused
// parts of f.
func (e *expander) reportUnset(f *File) {
	if len(e.unset) == 0 {
		return
	}
	unused := unusedPaths(f)
	for _, u := range e.unset {
		if !insideAny(u.path, unused) {
			e.ps.add(u.line, "%s: environment variable %s is not set", u.path, u.name)
		}
	}
}

// unusedPaths asks every section of f that implements UnusedReporter.
func unusedPaths(f *File) []string {
	var out []string
	v := reflect.ValueOf(f).Elem()
	for _, name := range strictyaml.Names(v.Type()) {
		field, _ := strictyaml.Field(v.Type(), name)
		if r, ok := v.FieldByIndex(field.Index).Addr().Interface().(UnusedReporter); ok {
			for _, k := range r.Unused() {
				out = append(out, keyPath(name, k))
			}
		}
	}
	return out
}

// insideAny reports whether path is one of prefixes or below one.
func insideAny(path string, prefixes []string) bool {
	for _, p := range prefixes {
		if path == p || strings.HasPrefix(path, p+".") || strings.HasPrefix(path, p+"[") {
			return true
		}
	}
	return false
}

func keyPath(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

func indexPath(path string, i int) string { return fmt.Sprintf("%s[%d]", path, i) }
