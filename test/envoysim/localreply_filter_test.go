package envoysim

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

func statusEQ(code uint32) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
		StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
			Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: "k"},
		}},
	}}
}

func headerF(hm *routev3.HeaderMatcher) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_HeaderFilter{
		HeaderFilter: &accesslogv3.HeaderFilter{Header: hm},
	}}
}

func andF(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_AndFilter{AndFilter: &accesslogv3.AndFilter{Filters: fs}}}
}

func orF(fs ...*accesslogv3.AccessLogFilter) *accesslogv3.AccessLogFilter {
	return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_OrFilter{OrFilter: &accesslogv3.OrFilter{Filters: fs}}}
}

func strMatch(name string, sm *matcherv3.StringMatcher) *routev3.HeaderMatcher {
	return &routev3.HeaderMatcher{Name: name, HeaderMatchSpecifier: &routev3.HeaderMatcher_StringMatch{StringMatch: sm}}
}

func prefixSM(p string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Prefix{Prefix: p}}
}

func regexSM(re string) *matcherv3.StringMatcher {
	return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_SafeRegex{SafeRegex: &matcherv3.RegexMatcher{Regex: re}}}
}

func TestHeaderMatcher(t *testing.T) {
	path := func(p string) headerList { return headerList{{":path", p}, {":method", "POST"}} }
	exact := func(v string, fold bool) *matcherv3.StringMatcher {
		return &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Exact{Exact: v}, IgnoreCase: fold}
	}
	inverted := strMatch(":path", prefixSM("/v1/messages"))
	inverted.InvertMatch = true
	missingEmpty := strMatch("x-k", exact("", false))
	missingEmpty.TreatMissingHeaderAsEmpty = true
	missingInverted := strMatch("x-k", exact("a", false))
	missingInverted.InvertMatch = true
	tests := []struct {
		name string
		hm   *routev3.HeaderMatcher
		req  headerList
		want bool
	}{
		{"prefix matches with a query string", strMatch(":path", prefixSM("/v1/messages")), path("/v1/messages?beta=true"), true},
		{"prefix does not match another path", strMatch(":path", prefixSM("/v1/messages")), path("/v1/chat/completions"), false},
		{"regex is a full match", strMatch(":path", regexSM("/v1/messages([/?].*)?")), path("/v1/messages?beta=true"), true},
		{"regex is anchored at the end", strMatch(":path", regexSM("/v1/messages")), path("/v1/messages?beta=true"), false},
		{"regex is anchored at the start", strMatch(":path", regexSM("v1/messages")), path("/v1/messages"), false},
		{"regex alternation stays anchored", strMatch(":path", regexSM("/a|/b")), path("/b/c"), false},
		{"exact", strMatch(":path", exact("/v1/messages", false)), path("/v1/messages"), true},
		{"exact is case-sensitive", strMatch(":path", exact("/V1/messages", false)), path("/v1/messages"), false},
		{"ignore_case", strMatch(":path", exact("/V1/Messages", true)), path("/v1/messages"), true},
		{"suffix", strMatch(":path", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Suffix{Suffix: "tokens"}}), path("/v1/messages/count_tokens"), true},
		{"contains ignore_case", strMatch(":path", &matcherv3.StringMatcher{MatchPattern: &matcherv3.StringMatcher_Contains{Contains: "MESS"}, IgnoreCase: true}), path("/v1/messages"), true},
		{"names are case-insensitive", strMatch("X-Tenant", exact("acme", false)), headerList{{"x-tenant", "acme"}}, true},
		{"values sent twice are joined with a comma", strMatch("x-k", exact("a,b", false)), headerList{{"x-k", "a"}, {"x-k", "b"}}, true},
		{"invert_match negates", inverted, path("/v1/chat/completions"), true},
		{"invert_match negates a match", inverted, path("/v1/messages"), false},
		{"a missing header never matches", strMatch("x-k", exact("", false)), path("/"), false},
		{"even inverted", missingInverted, path("/"), false},
		{"unless treated as empty", missingEmpty, path("/"), true},
		{"no request headers at all", strMatch(":path", prefixSM("/")), nil, false},
		{"deprecated prefix_match", &routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_PrefixMatch{PrefixMatch: "/v1/m"}}, path("/v1/messages"), true},
		{"deprecated safe_regex_match", &routev3.HeaderMatcher{Name: ":path", HeaderMatchSpecifier: &routev3.HeaderMatcher_SafeRegexMatch{SafeRegexMatch: &matcherv3.RegexMatcher{Regex: "/v1/.*"}}}, path("/v1/messages"), true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			f, err := compileFilter(headerF(tc.hm))
			require.NoError(t, err)
			assert.Equal(t, tc.want, f(200, tc.req))
			assert.Equal(t, tc.want, f(413, tc.req), "a header filter ignores the status")
		})
	}
}

func TestAndOrFilters(t *testing.T) {
	msgs := headerF(strMatch(":path", prefixSM("/v1/messages")))
	and, err := compileFilter(andF(statusEQ(413), msgs))
	require.NoError(t, err)
	or, err := compileFilter(orF(statusEQ(503), msgs))
	require.NoError(t, err)
	nested, err := compileFilter(orF(statusEQ(500), andF(statusEQ(413), msgs)))
	require.NoError(t, err)
	m, c := headerList{{":path", "/v1/messages"}}, headerList{{":path", "/v1/chat/completions"}}
	tests := []struct {
		name      string
		code      int
		req       headerList
		and, or   bool
		nestedWin bool
	}{
		{"both", 413, m, true, true, true},
		{"status only", 413, c, false, false, false},
		{"path only", 503, m, false, true, false},
		{"neither", 400, c, false, false, false},
		{"the other status", 500, c, false, false, true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			assert.Equal(t, tc.and, and(tc.code, tc.req), "and")
			assert.Equal(t, tc.or, or(tc.code, tc.req), "or")
			assert.Equal(t, tc.nestedWin, nested(tc.code, tc.req), "nested")
		})
	}
}

func TestFiltersEnvoysimRefuses(t *testing.T) {
	present := &routev3.HeaderMatcher{Name: "x", HeaderMatchSpecifier: &routev3.HeaderMatcher_PresentMatch{PresentMatch: true}}
	tests := map[string]*accesslogv3.AccessLogFilter{
		"present_match":         headerF(present),
		"no specifier":          headerF(&routev3.HeaderMatcher{Name: "x"}),
		"no header":             headerF(nil),
		"bad regex":             headerF(strMatch(":path", regexSM("("))),
		"an unsupported member": andF(statusEQ(413), &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{}}),
		"one filter in an or":   orF(statusEQ(413)),
		"no filter at all":      {},
	}
	for name, f := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig("127.0.0.1:1", "http://127.0.0.1:2")
			c.LocalReply = &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{{Filter: f}}}
			_, err := New(c)
			assert.ErrorContains(t, err, "local_reply_config.mappers[0]")
		})
	}
}

// anthropicShape decodes an Anthropic error body.
func anthropicShape(t *testing.T, body string) (string, map[string]any) {
	t.Helper()
	var e struct {
		Type  string         `json:"type"`
		Error map[string]any `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	return e.Type, e.Error
}

// TestOverLimitMessagesGetAnthropicShape runs envoy.yaml's mappers: the
// 413 for /v1/messages (whatever its query string) is Anthropic's, for any
// other path OpenAI's, and the processor sees the rewritten reply.
func TestOverLimitMessagesGetAnthropicShape(t *testing.T) {
	for _, path := range []string{"/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens"} {
		t.Run(path, func(t *testing.T) {
			h := shippedHarness(t, answerAll(echo), 1024)
			resp, body := h.do(t, http.MethodPost, path, strings.Repeat("x", 1025))
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
			typ, e := anthropicShape(t, body)
			assert.Equal(t, "error", typ)
			assert.Equal(t, "request_too_large", e["type"])
			assert.Contains(t, e["message"], "8388608 bytes")
			assert.NotContains(t, e, "code", "Anthropic's error has no code")
			assert.Empty(t, h.up.requests())
			s := h.proc.only(t)
			assert.Equal(t, body, string(s.messages()[2].GetResponseBody().GetBody()))
		})
	}
	for _, path := range []string{"/v1/messagesx", "/v1/chat/completions?x=/v1/messages"} {
		t.Run(path, func(t *testing.T) {
			h := shippedHarness(t, answerAll(echo), 1024)
			resp, body := h.do(t, http.MethodPost, path, strings.Repeat("x", 1025))
			assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
			assert.Contains(t, body, `"code":"request_too_large"`)
			assert.NotContains(t, body, `"type":"error"`)
		})
	}
}

// TestMapperReadsMutatedRequestHeaders: Envoy evaluates header filters
// against the request headers as the filter chain left them, so a :path
// the processor rewrote decides the shape of a later local reply.
func TestMapperReadsMutatedRequestHeaders(t *testing.T) {
	cfg := &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{{
		Filter:     andF(statusEQ(402), headerF(strMatch(":path", prefixSM("/v1/messages")))),
		Body:       &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "anthropic"}},
		StatusCode: wrapperspb.UInt32(403),
	}}}
	for _, tc := range []struct {
		name, path, rewrite string
		wantCode            int
		wantBody            string
	}{
		{"as sent", "/v1/messages", "", http.StatusForbidden, "anthropic"},
		{"rewritten away", "/v1/messages", "/v1/chat/completions", http.StatusPaymentRequired, "refused"},
		{"rewritten to", "/v1/chat/completions", "/v1/messages", http.StatusForbidden, "anthropic"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
				switch kindOf(m) {
				case "request_headers":
					if tc.rewrite != "" {
						return answer(m, headerMut(setRaw(":path", tc.rewrite)))
					}
				case "request_body":
					return immediate(402, "refused")
				}
				return cont(m)
			}), nil, func(c *Config) { c.LocalReply = cfg })
			resp, body := h.do(t, http.MethodPost, tc.path, `{"model":"m"}`)
			assert.Equal(t, tc.wantCode, resp.StatusCode)
			assert.Equal(t, tc.wantBody, body)
		})
	}
}

// FuzzHeaderMatcher checks the matchers on arbitrary request paths
// against independent definitions: the shipped /v1/messages regex, a
// case-insensitive prefix and invert_match, and that nothing panics.
func FuzzHeaderMatcher(f *testing.F) {
	for _, s := range []string{"/v1/messages", "/v1/messages?beta=true", "/v1/messages/count_tokens", "/v1/messagesx", "/V1/MESSAGES", "", "/v1/messages\n", "/v1/messages?\x00"} {
		f.Add(s, "/V1/m")
	}
	shipped, err := compileFilter(headerF(strMatch(":path", regexSM("/v1/messages([/?].*)?"))))
	require.NoError(f, err)
	f.Fuzz(func(t *testing.T, path, prefix string) {
		req := headerList{{":path", path}}
		want := path == "/v1/messages" || strings.HasPrefix(path, "/v1/messages/") || strings.HasPrefix(path, "/v1/messages?")
		if want && strings.Contains(path, "\n") {
			want = false // RE2's . does not match a newline
		}
		assert.Equal(t, want, shipped(413, req), "%q", path)

		sm := prefixSM(prefix)
		sm.IgnoreCase = true
		hm := strMatch(":path", sm)
		fold, err := compileFilter(headerF(hm))
		require.NoError(t, err)
		wantFold := strings.HasPrefix(asciiLower(path), asciiLower(prefix))
		assert.Equal(t, wantFold, fold(0, req))
		hm.InvertMatch = true
		inv, err := compileFilter(headerF(hm))
		require.NoError(t, err)
		assert.Equal(t, !wantFold, inv(0, req), "inverted")
		assert.False(t, inv(0, headerList{{"x-other", path}}), "a missing header never matches")
	})
}
