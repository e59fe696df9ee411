package exporters

import (
	"reflect"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/strictyaml"
)

// yaml.v3 decodes the inside of a custom UnmarshalYAML without the
// caller's KnownFields setting, so the exporters section checks its own
// keys with strictyaml.

// ConfigError is one problem of the exporters section, with its line
// when the section was decoded from YAML; its Where is the dotted key path
// ("exporters.otlp.endpoint").
type ConfigError = strictyaml.Error

// checkKeys checks the keys of n against struct type t and returns the
// line of every known key (dotted below the exporters section:
// "otlp.endpoint") and a *ConfigError for every unknown one.
func checkKeys(n *yaml.Node, t reflect.Type) (map[string]int, []error) {
	keys := strictyaml.Check(n, t, "")
	var errs []error
	for _, u := range keys.Unknown {
		errs = append(errs, &ConfigError{Line: u.Line, Where: "exporters." + u.Path, Msg: "unknown key" + u.Hint()})
	}
	return keys.Lines, errs
}
