package envoysim

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
)

// replyFilter decides whether a local reply mapper applies. Envoy evaluates
// a mapper's AccessLogFilter with the reply's status code and the REQUEST
// headers as the filter chain holds them when the reply is made (an empty
// map when the reply comes before any request header was decoded).
type replyFilter func(code int, req headerList) bool

// compileFilter turns the part of AccessLogFilter envoysim reproduces into
// a replyFilter: status_code_filter (EQ, GE, LE on its default value),
// and_filter, or_filter and header_filter. Everything else is refused.
func compileFilter(f *accesslogv3.AccessLogFilter) (replyFilter, error) {
	switch spec := f.GetFilterSpecifier().(type) {
	case *accesslogv3.AccessLogFilter_StatusCodeFilter:
		return compileStatusFilter(spec.StatusCodeFilter)
	case *accesslogv3.AccessLogFilter_AndFilter:
		subs, err := compileFilters("and_filter", spec.AndFilter.GetFilters())
		if err != nil {
			return nil, err
		}
		return func(code int, req headerList) bool {
			for _, s := range subs {
				if !s(code, req) {
					return false
				}
			}
			return true
		}, nil
	case *accesslogv3.AccessLogFilter_OrFilter:
		subs, err := compileFilters("or_filter", spec.OrFilter.GetFilters())
		if err != nil {
			return nil, err
		}
		return func(code int, req headerList) bool {
			for _, s := range subs {
				if s(code, req) {
					return true
				}
			}
			return false
		}, nil
	case *accesslogv3.AccessLogFilter_HeaderFilter:
		m, err := compileHeaderMatcher(spec.HeaderFilter.GetHeader())
		if err != nil {
			return nil, fmt.Errorf("header_filter: %w", err)
		}
		return func(_ int, req headerList) bool { return m(req) }, nil
	case nil:
		return nil, errors.New("a filter must be set (Envoy refuses an empty one)")
	}
	return nil, errors.New("filters other than status_code_filter, and_filter, or_filter and header_filter are not supported by envoysim")
}

func compileFilters(name string, fs []*accesslogv3.AccessLogFilter) ([]replyFilter, error) {
	if len(fs) < 2 {
		return nil, fmt.Errorf("%s needs at least 2 filters (Envoy refuses fewer)", name)
	}
	var errs []error
	out := make([]replyFilter, 0, len(fs))
	for i, f := range fs {
		c, err := compileFilter(f)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s.filters[%d]: %w", name, i, err))
			continue
		}
		out = append(out, c)
	}
	return out, errors.Join(errs...)
}

func compileStatusFilter(sc *accesslogv3.StatusCodeFilter) (replyFilter, error) {
	want := int(sc.GetComparison().GetValue().GetDefaultValue())
	switch sc.GetComparison().GetOp() {
	case accesslogv3.ComparisonFilter_EQ:
		return func(code int, _ headerList) bool { return code == want }, nil
	case accesslogv3.ComparisonFilter_GE:
		return func(code int, _ headerList) bool { return code >= want }, nil
	case accesslogv3.ComparisonFilter_LE:
		return func(code int, _ headerList) bool { return code <= want }, nil
	}
	return nil, fmt.Errorf("comparison op %s is not supported by envoysim", sc.GetComparison().GetOp())
}

// compileHeaderMatcher reproduces Envoy's HeaderMatcher for the string
// matchers (string_match and the deprecated exact_match, prefix_match,
// suffix_match, contains_match, safe_regex_match), as Envoy evaluates
// them: the header's values joined with ","; a missing header never
// matches, whatever invert_match says, unless
// treat_missing_header_as_empty makes it ""; otherwise invert_match
// negates the match. Regular expressions must match the whole value (RE2
// FullMatch). present_match and range_match are refused.
func compileHeaderMatcher(hm *routev3.HeaderMatcher) (func(headerList) bool, error) {
	if hm == nil {
		return nil, errors.New("header is required")
	}
	name := strings.ToLower(hm.GetName())
	if name == "" {
		return nil, errors.New("header.name is required")
	}
	var match func(string) bool
	var err error
	switch spec := hm.GetHeaderMatchSpecifier().(type) {
	case *routev3.HeaderMatcher_StringMatch:
		match, err = compileStringMatcher(spec.StringMatch)
	case *routev3.HeaderMatcher_ExactMatch:
		match = func(v string) bool { return v == spec.ExactMatch }
	case *routev3.HeaderMatcher_PrefixMatch:
		match = func(v string) bool { return strings.HasPrefix(v, spec.PrefixMatch) }
	case *routev3.HeaderMatcher_SuffixMatch:
		match = func(v string) bool { return strings.HasSuffix(v, spec.SuffixMatch) }
	case *routev3.HeaderMatcher_ContainsMatch:
		match = func(v string) bool { return strings.Contains(v, spec.ContainsMatch) }
	case *routev3.HeaderMatcher_SafeRegexMatch:
		match, err = compileFullMatch(spec.SafeRegexMatch)
	default:
		return nil, errors.New("header matchers other than string_match, exact_match, prefix_match, suffix_match, contains_match and safe_regex_match are not supported by envoysim")
	}
	if err != nil {
		return nil, fmt.Errorf("header %q: %w", name, err)
	}
	invert, missingEmpty := hm.GetInvertMatch(), hm.GetTreatMissingHeaderAsEmpty()
	return func(req headerList) bool {
		v, ok := req.joined(name)
		if !ok && !missingEmpty {
			return false
		}
		return match(v) != invert
	}, nil
}

// compileStringMatcher reproduces Envoy's StringMatcher: ignore_case
// (ASCII letters only, as absl's) applies to exact, prefix, suffix and
// contains, and has no effect on safe_regex, as Envoy documents.
func compileStringMatcher(sm *matcherv3.StringMatcher) (func(string) bool, error) {
	fold := sm.GetIgnoreCase()
	eq := func(a, b string) bool { return a == b || fold && asciiLower(a) == asciiLower(b) }
	switch p := sm.GetMatchPattern().(type) {
	case *matcherv3.StringMatcher_Exact:
		return func(v string) bool { return eq(v, p.Exact) }, nil
	case *matcherv3.StringMatcher_Prefix:
		return func(v string) bool { return len(v) >= len(p.Prefix) && eq(v[:len(p.Prefix)], p.Prefix) }, nil
	case *matcherv3.StringMatcher_Suffix:
		return func(v string) bool { return len(v) >= len(p.Suffix) && eq(v[len(v)-len(p.Suffix):], p.Suffix) }, nil
	case *matcherv3.StringMatcher_Contains:
		if fold {
			want := asciiLower(p.Contains)
			return func(v string) bool { return strings.Contains(asciiLower(v), want) }, nil
		}
		return func(v string) bool { return strings.Contains(v, p.Contains) }, nil
	case *matcherv3.StringMatcher_SafeRegex:
		return compileFullMatch(p.SafeRegex)
	}
	return nil, errors.New("string_match: only exact, prefix, suffix, contains and safe_regex are supported by envoysim")
}

// compileFullMatch compiles an RE2 regex that must match the whole value,
// as Envoy's safe_regex does. Go's regexp is RE2's syntax.
func compileFullMatch(rm *matcherv3.RegexMatcher) (func(string) bool, error) {
	re, err := regexp.Compile(`^(?:` + rm.GetRegex() + `)$`)
	if err != nil {
		return nil, fmt.Errorf("safe_regex %q: %w", rm.GetRegex(), err)
	}
	return re.MatchString, nil
}

// asciiLower lowers ASCII letters only, as Envoy's case-insensitive
// matchers compare.
func asciiLower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// joined is every value of the header key joined with ",", as Envoy's
// header matchers read a header sent more than once; ok is false when the
// header is absent.
func (h headerList) joined(key string) (string, bool) {
	var vals []string
	for _, e := range h {
		if e.key == key {
			vals = append(vals, e.value)
		}
	}
	return strings.Join(vals, ","), len(vals) > 0
}
