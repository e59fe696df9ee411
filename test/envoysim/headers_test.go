package envoysim

import (
	"net/http"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestApplyMutationFollowsEnvoyDefaultRules(t *testing.T) {
	base := headerList{
		{":authority", "a.example"}, {":path", "/p"}, {":method", "POST"}, {":scheme", "http"},
		{"x-a", "1"}, {"x-envoy-foo", "e"}, {"content-length", "5"},
	}
	valueOnly := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-b", Value: "ignored"}}
	both := &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-b", Value: "v", RawValue: []byte("r")}}
	tests := []struct {
		name        string
		set         []*corev3.HeaderValueOption
		remove      []string
		rules       mutationRules
		wantIgnored int
		wantErr     bool
		check       func(t *testing.T, h headerList)
	}{
		{name: "host ignored", set: []*corev3.HeaderValueOption{setRaw("host", "evil")}, wantIgnored: 1},
		{name: ":authority ignored", set: []*corev3.HeaderValueOption{setRaw(":authority", "evil")}, wantIgnored: 1},
		{name: ":method ignored", set: []*corev3.HeaderValueOption{setRaw(":method", "GET")}, wantIgnored: 1},
		{name: ":method allowed with CONTINUE_AND_REPLACE", set: []*corev3.HeaderValueOption{setRaw(":method", "GET")}, rules: mutationRules{replacing: true},
			check: func(t *testing.T, h headerList) { v, _ := h.get(":method"); assert.Equal(t, "GET", v) }},
		{name: ":scheme ignored", set: []*corev3.HeaderValueOption{setRaw(":scheme", "https")}, wantIgnored: 1},
		{name: "x-envoy set ignored", set: []*corev3.HeaderValueOption{setRaw("x-envoy-foo", "z")}, wantIgnored: 1},
		{name: "x-envoy remove ignored", remove: []string{"x-envoy-foo"}, wantIgnored: 1},
		{name: "pseudo-header removal ignored", remove: []string{":path", ":authority", "host"}, wantIgnored: 3},
		{name: ":path may change", set: []*corev3.HeaderValueOption{setRaw(":path", "/v2")},
			check: func(t *testing.T, h headerList) { v, _ := h.get(":path"); assert.Equal(t, "/v2", v) }},
		{name: "append to pseudo-header ignored", set: []*corev3.HeaderValueOption{setAppend(":path", "/x")}, wantIgnored: 1},
		{name: "default overwrites", set: []*corev3.HeaderValueOption{setRaw("X-A", "2")},
			check: func(t *testing.T, h headerList) { assert.Equal(t, headerList{{"x-a", "2"}}, pick(h, "x-a")) }},
		{name: "append adds", set: []*corev3.HeaderValueOption{setAppend("x-a", "2")},
			check: func(t *testing.T, h headerList) {
				assert.Equal(t, headerList{{"x-a", "1"}, {"x-a", "2"}}, pick(h, "x-a"))
			}},
		{name: "append_action does not count", set: []*corev3.HeaderValueOption{{
			Header: &corev3.HeaderValue{Key: "x-a", RawValue: []byte("2")}, AppendAction: corev3.HeaderValueOption_APPEND_IF_EXISTS_OR_ADD}},
			check: func(t *testing.T, h headerList) { assert.Equal(t, headerList{{"x-a", "2"}}, pick(h, "x-a")) }},
		{name: "value without raw_value arrives empty", set: []*corev3.HeaderValueOption{valueOnly},
			check: func(t *testing.T, h headerList) { assert.Equal(t, headerList{{"x-b", ""}}, pick(h, "x-b")) }},
		{name: "regular removal", remove: []string{"X-A"},
			check: func(t *testing.T, h headerList) { assert.Empty(t, pick(h, "x-a")) }},
		{name: "content-length skipped in streaming modes", set: []*corev3.HeaderValueOption{setRaw("content-length", "9")}, rules: mutationRules{skipContentLength: true},
			check: func(t *testing.T, h headerList) { v, _ := h.get("content-length"); assert.Equal(t, "5", v) }},
		{name: "both value and raw_value is an error", set: []*corev3.HeaderValueOption{both}, wantErr: true},
		{name: "invalid name is an error", set: []*corev3.HeaderValueOption{setRaw("bad name", "v")}, wantErr: true},
		{name: "invalid value is an error", set: []*corev3.HeaderValueOption{setRaw("x-c", "a\r\nb")}, wantErr: true},
		{name: "local reply ignores pseudo-headers", set: []*corev3.HeaderValueOption{setRaw(":path", "/z")}, rules: mutationRules{localReply: true}, wantIgnored: 1},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := base.clone()
			ignored, err := h.applyMutation(&extprocv3.HeaderMutation{SetHeaders: tc.set, RemoveHeaders: tc.remove}, tc.rules)
			if tc.wantErr {
				require.ErrorIs(t, err, errInvalidMutation)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tc.wantIgnored, ignored)
			if tc.check != nil {
				tc.check(t, h)
			} else {
				assert.Equal(t, base, h, "ignored mutations leave the headers unchanged")
			}
		})
	}
}

func TestStatusMutation(t *testing.T) {
	for _, tc := range []struct {
		value   string
		want    string
		ignored int
	}{{"299", "299", 0}, {"abc", "200", 1}, {"100", "200", 1}} {
		t.Run(tc.value, func(t *testing.T) {
			h := headerList{{":status", "200"}}
			ignored, err := h.applyMutation(&extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{setRaw(":status", tc.value)}}, mutationRules{})
			require.NoError(t, err)
			assert.Equal(t, tc.ignored, ignored)
			v, _ := h.get(":status")
			assert.Equal(t, tc.want, v)
		})
	}
}

func pick(h headerList, key string) headerList {
	var out headerList
	for _, e := range h {
		if e.key == key {
			out = append(out, e)
		}
	}
	return out
}

func TestHeaderMutationsReachUpstreamAndClient(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		switch {
		case m.GetRequestHeaders() != nil:
			cr := headerMut(
				setRaw(":path", "/v2/chat"),
				&corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-only-value", Value: "lost"}},
				setRaw("host", "evil.example"),
				setRaw("x-envoy-retry-on", "5xx"),
				setAppend("x-tenant", "second"),
			)
			cr.HeaderMutation.RemoveHeaders = []string{":method", "x-drop"}
			return answer(m, cr)
		case m.GetResponseHeaders() != nil:
			return answer(m, headerMut(setRaw("x-spendguard-remaining-usd", "12.500000"), setRaw(":status", "299")))
		}
		return cont(m)
	}), nil, nil)
	resp, _ := h.do(t, http.MethodPost, "/v1/chat", "{}", "X-Tenant", "first", "X-Drop", "1")
	assert.Equal(t, 299, resp.StatusCode)
	assert.Equal(t, "12.500000", resp.Header.Get("X-Spendguard-Remaining-Usd"))
	assert.Equal(t, "envoy", resp.Header.Get("Server"))

	reqs := h.up.requests()
	require.Len(t, reqs, 1)
	got := reqs[0]
	assert.Equal(t, "/v2/chat", got.URI)
	assert.Equal(t, http.MethodPost, got.Method)
	assert.Equal(t, h.front.Listener.Addr().String(), got.Host)
	assert.Equal(t, []string{""}, got.Header["X-Only-Value"], "a header set with value only arrives empty")
	assert.Empty(t, got.Header.Get("X-Envoy-Retry-On"))
	assert.Empty(t, got.Header.Get("X-Drop"))
	assert.Equal(t, []string{"first", "second"}, got.Header["X-Tenant"])
	assert.Equal(t, int64(3), h.proxy.Stats().RejectedMutations) // host, x-envoy-*, remove :method
}

func TestMalformedMutationIs500(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return answer(m, headerMut(&corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: "x-b", Value: "v", RawValue: []byte("r")}}))
		}
		return cont(m)
	}), nil, func(c *Config) { c.FailureModeAllow = true })
	resp, _ := h.do(t, http.MethodGet, "/", "")
	assert.Equal(t, http.StatusInternalServerError, resp.StatusCode, "even with failure_mode_allow")
	assert.Empty(t, h.up.requests())
}
