package envoysim

import (
	"bytes"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	accesslogv3 "github.com/envoyproxy/go-control-plane/envoy/config/accesslog/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
	"google.golang.org/protobuf/types/known/wrapperspb"

	"github.com/spendguard/spendguard/envoy"
)

func TestApplyBootstrapYAML(t *testing.T) {
	c := DefaultConfig("127.0.0.1:1", "http://127.0.0.1:2")
	require.NoError(t, c.ApplyBootstrapYAML(envoy.BootstrapYAML))
	assert.Equal(t, 8<<20, c.BufferLimit)
	assert.Equal(t, 500*time.Millisecond, c.MessageTimeout)
	assert.True(t, c.AllowModeOverride)
	assert.False(t, c.FailureModeAllow)
	assert.Zero(t, c.StatusOnError, "unset: Envoy's 500")
	assert.True(t, proto.Equal(SpendguardMode(), c.ProcessingMode))
	require.NotNil(t, c.LocalReply)
	assert.Len(t, c.LocalReply.GetMappers(), 2)
	_, err := New(c)
	require.NoError(t, err, "envoysim reproduces everything envoy.yaml's local_reply_config uses")

	bad := DefaultConfig("127.0.0.1:1", "http://127.0.0.1:2")
	err = bad.ApplyBootstrapYAML([]byte(strings.Replace(string(envoy.BootstrapYAML), `match: { prefix: "/" }`, "match: { prefix: \"/\" }\n                per_request_buffer_limit_bytes: 1024", 1)))
	assert.ErrorContains(t, err, "does not model")
}

// shippedHarness is a harness with the buffer limit and local_reply_config
// of envoy/envoy.yaml (the limit lowered to keep the test small).
func shippedHarness(t *testing.T, sc script, limit int) *harness {
	return newHarness(t, sc, nil, func(c *Config) {
		timeout := c.MessageTimeout
		require.NoError(t, c.ApplyBootstrapYAML(envoy.BootstrapYAML))
		c.MessageTimeout = timeout
		if limit > 0 {
			c.BufferLimit = limit
		}
	})
}

func TestOverLimitBodyGetsShippedLocalReply(t *testing.T) {
	h := shippedHarness(t, answerAll(echo), 1024)
	resp, body := h.do(t, http.MethodPost, "/v1/chat/completions", strings.Repeat("x", 1025))
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))
	assert.True(t, strings.HasSuffix(body, "}\n"), "Envoy's JSON formatter ends the body with a newline: %q", body)
	var e struct {
		Error map[string]any `json:"error"`
	}
	require.NoError(t, json.Unmarshal([]byte(body), &e), body)
	assert.Equal(t, "invalid_request_error", e.Error["type"])
	assert.Equal(t, "request_too_large", e.Error["code"])
	assert.Contains(t, e.Error["message"], "8388608 bytes")
	assert.Empty(t, h.up.requests())

	// The rewritten reply is what goes through the filter chain.
	s := h.proc.only(t)
	assert.Equal(t, []string{"request_headers", "response_headers", "response_body"}, s.kinds())
	ct, _ := headerOf(s.messages()[1].GetResponseHeaders().GetHeaders(), "content-type")
	assert.Equal(t, "application/json", ct)
	assert.Equal(t, body, string(s.messages()[2].GetResponseBody().GetBody()))
}

func TestBodyAtLimitPasses(t *testing.T) {
	h := shippedHarness(t, answerAll(echo), 1024)
	resp, _ := h.do(t, http.MethodPost, "/v1/chat/completions", strings.Repeat("x", 1024))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, h.up.requests(), 1)
	assert.Len(t, h.up.requests()[0].Body, 1024)
}

// TestOtherLocalRepliesKeepTheirBodies: the shipped mapper matches 413
// only, so the processor's own replies and Envoy's other ones are as
// before.
func TestOtherLocalRepliesKeepTheirBodies(t *testing.T) {
	h := shippedHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		return immediate(402, budgetBody, setRaw("content-type", "application/json"))
	}), 0)
	resp, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`)
	assert.Equal(t, http.StatusPaymentRequired, resp.StatusCode)
	assert.Equal(t, budgetBody, body)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"))

	h = shippedHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		return immediate(413, "too big for the processor")
	}), 0)
	resp, body = h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`)
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Equal(t, "application/json", resp.Header.Get("Content-Type"), "a 413 the processor sends is mapped too, as in Envoy")
	assert.Contains(t, body, "request_too_large")
}

func TestLocalReplyRewrite(t *testing.T) {
	eq := func(code uint32) *accesslogv3.AccessLogFilter {
		return &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{
			StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{
				Op: accesslogv3.ComparisonFilter_EQ, Value: &corev3.RuntimeUInt32{DefaultValue: code, RuntimeKey: "k"},
			}},
		}}
	}
	text := func(f string) *corev3.SubstitutionFormatString {
		return &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_TextFormat{TextFormat: f}}
	}
	cfg := &hcmv3.LocalReplyConfig{
		Mappers: []*hcmv3.ResponseMapper{
			{Filter: eq(503), StatusCode: wrapperspb.UInt32(502), Body: &corev3.DataSource{Specifier: &corev3.DataSource_InlineString{InlineString: "no upstream"}}},
			{Filter: eq(500), BodyFormatOverride: text("[%RESPONSE_CODE%] %LOCAL_REPLY_BODY%")},
		},
		BodyFormat: &corev3.SubstitutionFormatString{
			Format:      &corev3.SubstitutionFormatString_TextFormat{TextFormat: "<%LOCAL_REPLY_BODY%>"},
			ContentType: "text/x-sg",
		},
	}
	r, err := compileLocalReply(cfg)
	require.NoError(t, err)
	tests := []struct {
		name     string
		code     int
		body     string
		wantCode int
		wantBody string
		wantType string
	}{
		{"status and body rewritten, then the config-wide format", 503, "x", 502, "<no upstream>", "text/x-sg"},
		{"the mapper's format wins", 500, "oops", 500, "[500] oops", "text/plain"},
		{"no mapper: only the config-wide format", 404, "nf", 404, "<nf>", "text/x-sg"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body, ct := r.rewrite(nil, tc.code, []byte(tc.body))
			assert.Equal(t, tc.wantCode, code)
			assert.Equal(t, tc.wantBody, string(body))
			assert.Equal(t, tc.wantType, ct)
		})
	}
	var none *localReplyRules
	code, body, ct := none.rewrite(nil, 413, []byte("Payload Too Large"))
	assert.Equal(t, 413, code)
	assert.Equal(t, "Payload Too Large", string(body))
	assert.Empty(t, ct, "no config: the reply keeps its content type")
}

func TestNewRefusesLocalReplyItCannotReproduce(t *testing.T) {
	js, err := structpb.NewStruct(map[string]any{"path": "%REQ(:PATH)%"})
	require.NoError(t, err)
	tests := map[string]*hcmv3.ResponseMapper{
		"not a status filter": {Filter: &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_NotHealthCheckFilter{}}},
		"another operator": {
			Filter:             &accesslogv3.AccessLogFilter{FilterSpecifier: &accesslogv3.AccessLogFilter_StatusCodeFilter{StatusCodeFilter: &accesslogv3.StatusCodeFilter{Comparison: &accesslogv3.ComparisonFilter{}}}},
			BodyFormatOverride: &corev3.SubstitutionFormatString{Format: &corev3.SubstitutionFormatString_JsonFormat{JsonFormat: js}},
		},
	}
	for name, m := range tests {
		t.Run(name, func(t *testing.T) {
			c := DefaultConfig("127.0.0.1:1", "http://127.0.0.1:2")
			c.LocalReply = &hcmv3.LocalReplyConfig{Mappers: []*hcmv3.ResponseMapper{m}}
			_, err := New(c)
			assert.ErrorContains(t, err, "not supported by envoysim")
		})
	}
}

// TestLargeAnswerReachesUpstream: like Envoy's gRPC client, envoysim takes
// answers of any size (gRPC-Go's client would stop at 4 MiB), so a
// processor can rewrite a body near the buffer limit.
func TestLargeAnswerReachesUpstream(t *testing.T) {
	big := bytes.Repeat([]byte("y"), 5<<20)
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if kindOf(m) == "request_body" {
			cr := headerMut(setRaw("content-length", strconv.Itoa(len(big)+1)))
			cr.BodyMutation = bodyMut(string(big) + "!")
			return answer(m, cr)
		}
		return cont(m)
	}), nil, func(c *Config) {
		c.BufferLimit = 8 << 20
		// Sending 5 MiB each way under -race while the whole suite runs
		// on two CPUs took longer than the harness's 2s: this test is
		// about size, not time.
		c.MessageTimeout = 20 * time.Second
	})
	resp, _ := h.do(t, http.MethodPost, "/v1/chat/completions", string(big))
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	require.Len(t, h.up.requests(), 1)
	assert.Len(t, h.up.requests()[0].Body, len(big)+1)
}
