// Package strictyaml is the one strict-YAML toolkit every configuration
// section uses: it checks the keys of a node tree against the Go type it
// decodes into, records the line of every key, and words its problems the
// same way everywhere (one error type, one name per node kind, a
// suggestion from internal/suggest for every misspelt key).
//
// It exists because yaml.v3 checks keys (KnownFields) only when it decodes
// text: a document decoded from nodes, and the inside of every custom
// UnmarshalYAML, accept any key. Check does that check on the nodes.
package strictyaml

import (
	"fmt"

	"gopkg.in/yaml.v3"
)

// Error is one problem of a configuration section. Its text is
// "line N: where: msg", without the parts that are empty; packages that
// parse problems back (config) rely on that shape.
type Error struct {
	// Line is the 1-based line of the offending key or value, 0 when
	// unknown.
	Line int
	// Where says what the problem concerns: a dotted key path
	// ("store.redis.address") or a label (`budget "a"`); "" for none.
	Where string
	Msg   string
}

func (e *Error) Error() string {
	s := e.Msg
	if e.Where != "" {
		s = e.Where + ": " + s
	}
	if e.Line > 0 {
		s = fmt.Sprintf("line %d: %s", e.Line, s)
	}
	return s
}

// KindName is the word every error message uses for a node kind: "scalar",
// "sequence", "mapping", "alias" or "document".
func KindName(k yaml.Kind) string {
	switch k {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "sequence"
	case yaml.AliasNode:
		return "alias"
	case yaml.DocumentNode:
		return "document"
	default:
		return "scalar"
	}
}
