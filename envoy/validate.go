package envoy

import (
	"errors"
	"fmt"
	"slices"
	"strings"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/descriptorpb"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"
)

// Classes of problems reported by ValidateBootstrapYAML and ValidateBootstrap.
// Every reported problem wraps exactly one of them, so callers can test with
// errors.Is on the joined error.
var (
	// ErrSyntax: the file is not YAML, or does not match the Envoy v3 API
	// (unknown field, wrong type, duplicate key, typed_config of a type no
	// package in extensions.go registers).
	ErrSyntax = errors.New("not a valid Envoy bootstrap")
	// ErrConstraint: a protoc-gen-validate rule of the Envoy API is broken
	// (required field missing, value out of range, ...).
	ErrConstraint = errors.New("constraint violated")
	// ErrDeprecated: a deprecated field or enum value is set; Envoy warns or,
	// for some, refuses to start.
	ErrDeprecated = errors.New("deprecated")
	// ErrCluster: a cluster is referenced but not defined, or defined twice.
	ErrCluster = errors.New("clusters")
	// ErrFilterChain: an HTTP filter chain Envoy would refuse (router not
	// last).
	ErrFilterChain = errors.New("http filter chain")
	// ErrExtProc: an ext_proc filter config Envoy would refuse or misapply
	// (e.g. FULL_DUPLEX_STREAMED without trailer mode SEND).
	ErrExtProc = errors.New("ext_proc config")
	// ErrSpendguard: valid for Envoy, but not the ext_proc setup spendguard
	// depends on (see the spec, "Envoy processing mode").
	ErrSpendguard = errors.New("spendguard ext_proc requirement")
)

// ValidateBootstrapYAML checks that data is an Envoy bootstrap that the pinned
// Envoy version (see envoy.yaml) would load and that meters requests through
// spendguard. It returns nil, or every problem found joined with errors.Join;
// each problem names the path of the offending field and wraps one of the
// Err* classes above.
func ValidateBootstrapYAML(data []byte) error {
	b, err := ParseBootstrapYAML(data)
	if err != nil {
		return err
	}
	return ValidateBootstrap(b)
}

// ParseBootstrapYAML converts a YAML (or JSON) bootstrap into its proto form.
// Unknown fields, duplicate keys and unregistered typed_config types are
// errors wrapping ErrSyntax. It performs no other validation.
func ParseBootstrapYAML(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSONStrict(data)
	if err != nil {
		return nil, fmt.Errorf("%w: yaml: %w", ErrSyntax, err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		hint := ""
		if strings.Contains(err.Error(), "unable to resolve") {
			hint = " (blank-import the extension's package in envoy/extensions.go)"
		}
		return nil, fmt.Errorf("%w: %w%s", ErrSyntax, err, hint)
	}
	return &b, nil
}

// ValidateBootstrap runs the protoc-gen-validate rules on b and on every
// message packed in an Any inside it (recursively), then the Envoy load-time
// rules and spendguard's ext_proc requirements (see rules.go). It returns nil
// or all problems joined with errors.Join.
func ValidateBootstrap(b *bootstrapv3.Bootstrap) error {
	w := &walker{}
	w.validate("", b)
	w.walk("", b.ProtoReflect())
	c := newChecker(b)
	for _, n := range w.nodes {
		c.visit(n.path, n.msg)
	}
	return errors.Join(append(w.errs, c.finish()...)...)
}

// node is one message reached by the walk, with its path from the bootstrap.
type node struct {
	path string
	msg  proto.Message
}

// walker visits every message of a tree in field declaration order, unpacking
// Any values, and collects constraint and deprecation problems on the way.
type walker struct {
	nodes []node
	errs  []error
}

// allValidator is implemented by every message generated with
// protoc-gen-validate, which the whole Envoy API is.
type allValidator interface {
	ValidateAll() error
}

// validate runs the message's own validation rules. They cover nested
// messages too, except those packed in Any fields: the walk reaches those.
func (w *walker) validate(path string, m proto.Message) {
	v, ok := m.(allValidator)
	if !ok {
		return
	}
	if err := v.ValidateAll(); err != nil {
		w.errs = append(w.errs, fmt.Errorf("%s: %w: %w", displayPath(path), ErrConstraint, err))
	}
}

func (w *walker) walk(path string, m protoreflect.Message) {
	if a, ok := m.Interface().(*anypb.Any); ok {
		inner, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{})
		if err != nil {
			w.errs = append(w.errs, fmt.Errorf("%s: %w: unpack %s: %w", displayPath(path), ErrSyntax, a.GetTypeUrl(), err))
			return
		}
		path += "<" + string(inner.ProtoReflect().Descriptor().Name()) + ">"
		w.validate(path, inner)
		w.walk(path, inner.ProtoReflect())
		return
	}
	w.nodes = append(w.nodes, node{path: path, msg: m.Interface()})
	fields := m.Descriptor().Fields()
	for i := range fields.Len() {
		fd := fields.Get(i)
		if !m.Has(fd) {
			continue
		}
		fpath := joinPath(path, string(fd.Name()))
		v := m.Get(fd)
		w.deprecation(fpath, fd, v)
		switch {
		case fd.IsList() && fd.Message() != nil:
			list := v.List()
			for j := range list.Len() {
				w.walk(fmt.Sprintf("%s[%d]", fpath, j), list.Get(j).Message())
			}
		case fd.IsMap() && fd.MapValue().Message() != nil:
			mp := v.Map()
			keys := make([]protoreflect.MapKey, 0, mp.Len())
			mp.Range(func(k protoreflect.MapKey, _ protoreflect.Value) bool {
				keys = append(keys, k)
				return true
			})
			slices.SortFunc(keys, func(a, b protoreflect.MapKey) int {
				return strings.Compare(a.String(), b.String())
			})
			for _, k := range keys {
				w.walk(fmt.Sprintf("%s[%s]", fpath, k.String()), mp.Get(k).Message())
			}
		case fd.Message() != nil && !fd.IsList() && !fd.IsMap():
			w.walk(fpath, v.Message())
		}
	}
}

// deprecation reports a set field, or enum value, marked deprecated in the
// Envoy API.
func (w *walker) deprecation(path string, fd protoreflect.FieldDescriptor, v protoreflect.Value) {
	if opts, ok := fd.Options().(*descriptorpb.FieldOptions); ok && opts.GetDeprecated() {
		w.errs = append(w.errs, fmt.Errorf("%s: %w: field %s", path, ErrDeprecated, fd.FullName()))
	}
	if fd.Kind() != protoreflect.EnumKind || fd.IsMap() {
		return
	}
	var nums []protoreflect.EnumNumber
	if fd.IsList() {
		for i := range v.List().Len() {
			nums = append(nums, v.List().Get(i).Enum())
		}
	} else {
		nums = append(nums, v.Enum())
	}
	for _, n := range nums {
		ev := fd.Enum().Values().ByNumber(n)
		if ev == nil {
			continue
		}
		if opts, ok := ev.Options().(*descriptorpb.EnumValueOptions); ok && opts.GetDeprecated() {
			w.errs = append(w.errs, fmt.Errorf("%s: %w: enum value %s", path, ErrDeprecated, ev.FullName()))
		}
	}
}

func joinPath(path, field string) string {
	if path == "" {
		return field
	}
	return path + "." + field
}

func displayPath(path string) string {
	if path == "" {
		return "bootstrap"
	}
	return path
}
