package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/strictyaml"
	"github.com/spendguard/spendguard/internal/suggest"
)

// Config is the `identity:` section of the configuration file.
type Config struct {
	// Dimensions maps a dimension name to its ordered sources.
	Dimensions map[string]Sources `yaml:"dimensions"`
	// APIKeys maps SHA-256 digests of bearer tokens to dimension values.
	APIKeys []APIKey `yaml:"api_keys"`
}

// APIKey is one row of the api_keys table.
type APIKey struct {
	SHA256 string            `yaml:"sha256"`
	Values map[string]string `yaml:"values"`
	Line   int               `yaml:"-"`
}

// UnmarshalYAML records the line of the entry for error messages.
func (k *APIKey) UnmarshalYAML(n *yaml.Node) error {
	type plain APIKey
	var p plain
	if err := strictyaml.Decode(n, &p); err != nil {
		return err
	}
	*k = APIKey(p)
	k.Line = n.Line
	return nil
}

// Source is one entry of a dimension's source list, e.g. `- header: x-team-id`.
type Source struct {
	Kind string
	Arg  string
	Line int
	// WithoutCredential lets a client-controlled source (header,
	// body_field) placed after an authenticated one (api_key, jwt_claim)
	// be read when the request carries no credential at all. Written
	// `without_credential: true` beside the source.
	WithoutCredential bool
	// optLine is the line of without_credential, 0 when absent.
	optLine int
	// hdr is the index of a header source's name in Resolver.headers.
	hdr int
}

// KeyWithoutCredential is the per-source key that opts a client-controlled
// source in to being read when no credential is sent.
const KeyWithoutCredential = "without_credential"

// Sources is an ordered source list.
type Sources []Source

// UnmarshalYAML reads a list of maps, each with one "kind: argument" pair
// and optionally without_credential.
func (s *Sources) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.SequenceNode {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf("line %d: a dimension is a list of sources such as \"- header: x-tenant-id\"", n.Line)}}
	}
	var errs []string
	for _, item := range n.Content {
		src, problems := decodeSource(item)
		errs = append(errs, problems...)
		if len(problems) == 0 {
			*s = append(*s, src)
		}
	}
	if len(errs) > 0 {
		// A TypeError lets yaml.v3 go on decoding the rest of the file, so
		// every problem is reported at once.
		return &yaml.TypeError{Errors: errs}
	}
	return nil
}

// decodeSource reads one source: a mapping with one "kind: argument" pair
// and, optionally, a without_credential boolean.
func decodeSource(item *yaml.Node) (Source, []string) {
	const shape = "each source is one \"kind: argument\" pair, optionally with without_credential: true"
	if item.Kind != yaml.MappingNode || len(item.Content) < 2 || len(item.Content) > 4 {
		return Source{}, []string{fmt.Sprintf("line %d: %s", item.Line, shape)}
	}
	var src Source
	var errs []string
	kinds := 0
	for i := 0; i+1 < len(item.Content); i += 2 {
		k, v := item.Content[i], item.Content[i+1]
		if k.Value == KeyWithoutCredential {
			if err := v.Decode(&src.WithoutCredential); err != nil || v.Kind != yaml.ScalarNode {
				errs = append(errs, fmt.Sprintf("line %d: without_credential must be true or false", v.Line))
			}
			src.optLine = k.Line
			continue
		}
		kinds++
		if v.Kind != yaml.ScalarNode {
			errs = append(errs, fmt.Sprintf("line %d: the argument of %s must be a string", v.Line, k.Value))
			continue
		}
		src.Kind, src.Arg, src.Line = k.Value, v.Value, k.Line
	}
	if kinds != 1 {
		errs = append(errs, fmt.Sprintf("line %d: %s", item.Line, shape))
	}
	return src, errs
}

var dimName = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

// Compile validates the section and reports every problem at once.
func (c Config) Compile() (*Resolver, error) {
	var errs []error
	bad := func(format string, args ...any) { errs = append(errs, fmt.Errorf(format, args...)) }
	r := &Resolver{apiKeys: map[[sha256.Size]byte]map[string]string{}}
	headerIndex := map[string]int{}
	names := make([]string, 0, len(c.Dimensions))
	for name := range c.Dimensions {
		names = append(names, name)
	}
	sort.Strings(names)
	for _, name := range names {
		srcs := c.Dimensions[name]
		where := "identity.dimensions." + name
		if !dimName.MatchString(name) {
			bad("%s: dimension names are lower-case letters, digits and _", where)
		}
		if name == ModelDimension {
			bad("%s: model is a built-in dimension (the requested model) and cannot be configured", where)
		}
		if len(srcs) == 0 {
			bad("%s: no sources", where)
		}
		for i, s := range srcs {
			at := fmt.Sprintf("%s[%d]: line %d", where, i, s.Line)
			switch s.Kind {
			case KindAPIKey, KindJWTClaim, KindBodyField:
				if s.Arg == "" {
					bad("%s: %s needs a name", at, s.Kind)
				}
				if s.Kind != KindBodyField {
					r.authenticated = true
				}
			case KindHeader:
				if s.Arg == "" || strings.ContainsAny(s.Arg, " :\t,") || !ValidValue(s.Arg) {
					bad("%s: header needs a header name", at)
				}
				h := strings.ToLower(s.Arg)
				idx, ok := headerIndex[h]
				if !ok {
					idx = len(r.headers)
					headerIndex[h] = idx
					r.headers = append(r.headers, h)
				}
				srcs[i].Arg, srcs[i].hdr = h, idx
			case KindDefault:
				if s.Arg == "" {
					bad("%s: default must not be empty", at)
				}
				if !ValidValue(s.Arg) {
					bad("%s: default must not contain control characters", at)
				}
				if i != len(srcs)-1 {
					bad("%s: default must be the last source (the ones after it are never reached)", at)
				}
			default:
				bad("%s: unknown source %q%s (want api_key, jwt_claim, header, body_field or default)", at, s.Kind,
					suggest.Key(s.Kind, []string{KindAPIKey, KindJWTClaim, KindHeader, KindBodyField, KindDefault}))
			}
			if s.optLine != 0 && s.Kind != KindHeader && s.Kind != KindBodyField {
				bad("%s: line %d: without_credential applies only to header and body_field sources (the ones a client controls)", where, s.optLine)
			}
		}
		r.dims = append(r.dims, dimension{name: name, sources: srcs})
	}
	for i, k := range c.APIKeys {
		at := fmt.Sprintf("identity.api_keys[%d]: line %d", i, k.Line)
		raw, err := hex.DecodeString(strings.ToLower(k.SHA256))
		if err != nil || len(raw) != sha256.Size {
			bad("%s: sha256 must be 64 hex digits (the SHA-256 of the token, never the token)", at)
			continue
		}
		var sum [sha256.Size]byte
		copy(sum[:], raw)
		if _, dup := r.apiKeys[sum]; dup {
			bad("%s: duplicate sha256", at)
		}
		for _, dim := range slices.Sorted(maps.Keys(k.Values)) {
			if _, ok := c.Dimensions[dim]; !ok {
				bad("%s: value for unknown dimension %q", at, dim)
			}
			if !ValidValue(k.Values[dim]) {
				bad("%s: the value for %q must not contain control characters", at, dim)
			}
		}
		r.apiKeys[sum] = k.Values
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return r, nil
}

// ClientChoice lists the client-controlled sources (header, body_field)
// that come after an authenticated one (api_key, jwt_claim): optedIn are
// read also when a request carries no credential (without_credential:
// true), so clients without a key choose the value; skipped are read only
// when a valid credential lacks the dimension.
func (s Sources) ClientChoice() (optedIn, skipped []Source) {
	authSeen := false
	for _, src := range s {
		switch src.Kind {
		case KindAPIKey, KindJWTClaim:
			authSeen = true
		case KindHeader, KindBodyField:
			if !authSeen {
				continue
			}
			if src.WithoutCredential {
				optedIn = append(optedIn, src)
			} else {
				skipped = append(skipped, src)
			}
		}
	}
	return optedIn, skipped
}
