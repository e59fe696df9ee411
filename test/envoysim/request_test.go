package envoysim

import (
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

var uuidV4 = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$`)

func TestRequestHeadersAsEnvoySendsThem(t *testing.T) {
	md := &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{
		"envoy.filters.http.jwt_authn": {Fields: map[string]*structpb.Value{
			"jwt": structpb.NewStructValue(&structpb.Struct{Fields: map[string]*structpb.Value{"sub": structpb.NewStringValue("acme")}}),
		}},
	}}
	h := newHarness(t, answerAll(cont), nil, func(c *Config) {
		c.MetadataContext = md
		c.RouteName = "vllm"
	})
	resp, _ := h.do(t, http.MethodPost, "/v1/chat/completions?x=1", `{"model":"m"}`,
		"Content-Type", "application/json", "X-Tenant", "Acme")
	require.Equal(t, http.StatusOK, resp.StatusCode)

	s := h.proc.only(t)
	msgs := s.messages()
	require.Equal(t, []string{"request_headers", "request_body", "response_headers", "response_body"}, s.kinds())

	first := msgs[0]
	assert.Equal(t, extprocfilterv3.ProcessingMode_BUFFERED, first.GetProtocolConfig().GetRequestBodyMode())
	assert.Equal(t, extprocfilterv3.ProcessingMode_STREAMED, first.GetProtocolConfig().GetResponseBodyMode())
	assert.False(t, first.GetProtocolConfig().GetSendBodyWithoutWaitingForHeaderResponse())
	assert.Equal(t, "vllm", first.GetAttributes()["envoy.filters.http.ext_proc"].GetFields()["xds.route_name"].GetStringValue())
	for i, m := range msgs {
		assert.True(t, proto.Equal(md, m.GetMetadataContext()), "message %d carries metadata_context", i)
		if i > 0 {
			assert.Nil(t, m.GetProtocolConfig(), "protocol_config only on the first message")
			assert.Empty(t, m.GetAttributes(), "attributes only on the first request message")
		}
	}

	rh := first.GetRequestHeaders()
	assert.False(t, rh.GetEndOfStream())
	want := map[string]string{
		":method": "POST", ":path": "/v1/chat/completions?x=1", ":scheme": "http",
		":authority":   strings.TrimPrefix(h.front.URL, "http://"),
		"content-type": "application/json", "x-tenant": "Acme", "content-length": "13",
		"x-forwarded-proto": "http",
	}
	for k, v := range want {
		got, ok := headerOf(rh.GetHeaders(), k)
		assert.True(t, ok, k)
		assert.Equal(t, v, got, k)
	}
	for _, hv := range rh.GetHeaders().GetHeaders() {
		assert.Equal(t, strings.ToLower(hv.GetKey()), hv.GetKey(), "names are lower-cased")
		assert.Empty(t, hv.GetValue(), "values travel in raw_value only")
	}
	id, _ := headerOf(rh.GetHeaders(), "x-request-id")
	assert.Regexp(t, uuidV4, id)

	status, ok := headerOf(msgs[2].GetResponseHeaders().GetHeaders(), ":status")
	assert.True(t, ok)
	assert.Equal(t, "200", status)
	_, ok = headerOf(msgs[2].GetResponseHeaders().GetHeaders(), "x-envoy-upstream-service-time")
	assert.True(t, ok, "the router adds x-envoy-upstream-service-time before the filter sees the response")
	assert.Nil(t, msgs[2].GetProtocolConfig())
}

func TestClientRequestIDIsKept(t *testing.T) {
	h := newHarness(t, answerAll(cont), nil, nil)
	h.do(t, http.MethodGet, "/v1/models", "", "X-Request-Id", "abc")
	got, _ := headerOf(h.proc.only(t).messages()[0].GetRequestHeaders().GetHeaders(), "x-request-id")
	assert.Equal(t, "abc", got)
	assert.Equal(t, "abc", h.up.requests()[0].Header.Get("X-Request-Id"))
}

func TestNoBodyMeansNoBodyMessage(t *testing.T) {
	for _, mode := range []extprocfilterv3.ProcessingMode_BodySendMode{
		extprocfilterv3.ProcessingMode_BUFFERED, extprocfilterv3.ProcessingMode_STREAMED, extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL,
	} {
		t.Run(mode.String(), func(t *testing.T) {
			h := newHarness(t, answerAll(cont), nil, func(c *Config) {
				c.ProcessingMode = StreamedMode()
				c.ProcessingMode.RequestBodyMode = mode
			})
			resp, _ := h.do(t, http.MethodGet, "/v1/models", "")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			s := h.proc.only(t)
			assert.Equal(t, []string{"request_headers", "response_headers", "response_body"}, s.kinds())
			assert.True(t, s.messages()[0].GetRequestHeaders().GetEndOfStream())
		})
	}
}

// TestBufferedHeldHeaders pins the BUFFERED rules: headers are held until the
// body answer, so its header mutation applies; a body mutation must come with
// a matching content-length or Envoy answers 500.
func TestBufferedHeldHeaders(t *testing.T) {
	const newBody = `{"model":"small","stream_options":{"include_usage":true}}`
	tests := []struct {
		name     string
		set      []*corev3.HeaderValueOption
		remove   []string
		wantCode int
		wantCL   int64 // -1: sent chunked
	}{
		{"content-length set in the same answer", []*corev3.HeaderValueOption{setRaw("content-length", strconv.Itoa(len(newBody))), setRaw("x-downgraded", "yes")}, nil, http.StatusOK, int64(len(newBody))},
		{"content-length removed", []*corev3.HeaderValueOption{setRaw("x-downgraded", "yes")}, []string{"content-length"}, http.StatusOK, -1},
		{"content-length left stale", []*corev3.HeaderValueOption{setRaw("x-downgraded", "yes")}, nil, http.StatusInternalServerError, 0},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
				if m.GetRequestBody() != nil {
					cr := headerMut(tc.set...)
					cr.HeaderMutation.RemoveHeaders = tc.remove
					cr.BodyMutation = bodyMut(newBody)
					return answer(m, cr)
				}
				return cont(m)
			}), nil, nil)
			resp, _ := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"big"}`)
			assert.Equal(t, tc.wantCode, resp.StatusCode)
			s := h.proc.only(t)
			if tc.wantCode != http.StatusOK {
				assert.Empty(t, h.up.requests(), "upstream never contacted")
				assert.Equal(t, []string{"request_headers", "request_body"}, s.kinds(), "no response_headers for an ext_proc local reply")
				return
			}
			reqs := h.up.requests()
			require.Len(t, reqs, 1)
			assert.Equal(t, newBody, reqs[0].Body)
			assert.Equal(t, "yes", reqs[0].Header.Get("X-Downgraded"))
			assert.Equal(t, tc.wantCL, reqs[0].ContentLength)
			assert.Equal(t, tc.wantCL < 0, reqs[0].Chunked)
			assert.True(t, s.messages()[1].GetRequestBody().GetEndOfStream())
		})
	}
}

func TestBufferedRequestOverLimitIs413(t *testing.T) {
	h := newHarness(t, answerAll(cont), nil, func(c *Config) { c.BufferLimit = 1024 })
	resp, body := h.do(t, http.MethodPost, "/v1/completions", strings.Repeat("x", 3000))
	assert.Equal(t, http.StatusRequestEntityTooLarge, resp.StatusCode)
	assert.Equal(t, "Payload Too Large", body)
	assert.Empty(t, h.up.requests())
	s := h.proc.only(t)
	// Envoy's own local reply goes through the filter chain: the processor sees it.
	assert.Equal(t, []string{"request_headers", "response_headers", "response_body"}, s.kinds())
	code, _ := headerOf(s.messages()[1].GetResponseHeaders().GetHeaders(), ":status")
	assert.Equal(t, "413", code)
}

func TestModeOverride(t *testing.T) {
	none := &extprocfilterv3.ProcessingMode{
		RequestBodyMode:  extprocfilterv3.ProcessingMode_NONE,
		ResponseBodyMode: extprocfilterv3.ProcessingMode_NONE,
	}
	tests := []struct {
		name      string
		allow     bool
		wantKinds []string
	}{
		{"honoured", true, []string{"request_headers", "response_headers"}},
		{"ignored when not allowed", false, []string{"request_headers", "request_body", "response_headers", "response_body"}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
				r := cont(m)
				if m.GetRequestHeaders() != nil {
					r.ModeOverride = none
				}
				return r
			}), nil, func(c *Config) { c.AllowModeOverride = tc.allow })
			resp, body := h.do(t, http.MethodPost, "/healthz", "ping")
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, `{"ok":true}`, body)
			assert.Equal(t, tc.wantKinds, h.proc.only(t).kinds())
			assert.Equal(t, "ping", h.up.requests()[0].Body)
		})
	}
}

func TestContinueAndReplaceRequest(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return answer(m, &extprocv3.CommonResponse{
				Status:       extprocv3.CommonResponse_CONTINUE_AND_REPLACE,
				BodyMutation: bodyMut("replaced"),
			})
		}
		return cont(m)
	}), nil, nil)
	resp, _ := h.do(t, http.MethodPost, "/v1/completions", "original body")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, []string{"request_headers", "response_headers", "response_body"}, h.proc.only(t).kinds())
	reqs := h.up.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "replaced", reqs[0].Body)
	assert.True(t, reqs[0].Chunked, "content-length stripped")
}

func TestStreamedRequestBody(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if b := m.GetRequestBody(); b != nil {
			return answer(m, &extprocv3.CommonResponse{BodyMutation: bodyMut(strings.ToUpper(string(b.GetBody())))})
		}
		return cont(m)
	}), nil, func(c *Config) {
		c.ProcessingMode = StreamedMode()
		c.ProcessingMode.RequestBodyMode = extprocfilterv3.ProcessingMode_STREAMED
	})
	resp, _ := h.do(t, http.MethodPost, "/v1/completions", strings.Repeat("abc", 20000))
	require.Equal(t, http.StatusOK, resp.StatusCode)
	reqs := h.up.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, strings.Repeat("ABC", 20000), reqs[0].Body)
	assert.True(t, reqs[0].Chunked, "content-length stripped at header time")

	s := h.proc.only(t)
	cl, ok := headerOf(s.messages()[0].GetRequestHeaders().GetHeaders(), "content-length")
	assert.True(t, ok, "the processor still sees content-length")
	assert.Equal(t, "60000", cl)
	var bodies []*extprocv3.HttpBody
	for _, m := range s.messages() {
		if b := m.GetRequestBody(); b != nil {
			bodies = append(bodies, b)
		}
	}
	require.NotEmpty(t, bodies)
	for i, b := range bodies {
		assert.Equal(t, i == len(bodies)-1, b.GetEndOfStream(), "only the last chunk ends the stream")
	}
}

func TestBufferedPartialRequest(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetRequestBody() != nil {
			return answer(m, &extprocv3.CommonResponse{BodyMutation: bodyMut("HEAD:")})
		}
		return cont(m)
	}), nil, func(c *Config) {
		c.BufferLimit = 10
		c.ProcessingMode = StreamedMode()
		c.ProcessingMode.RequestBodyMode = extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL
	})
	body := strings.Repeat("0123456789", 10000) // more than one data callback
	resp, _ := h.do(t, http.MethodPost, "/v1/completions", body)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s := h.proc.only(t)
	var sent *extprocv3.HttpBody
	for _, m := range s.messages() {
		if b := m.GetRequestBody(); b != nil {
			require.Nil(t, sent, "one body message only")
			sent = b
		}
	}
	require.NotNil(t, sent)
	assert.False(t, sent.GetEndOfStream())
	assert.Greater(t, len(sent.GetBody()), 10)
	require.True(t, strings.HasPrefix(body, string(sent.GetBody())))
	rest := body[len(sent.GetBody()):]
	assert.Equal(t, "HEAD:"+rest, h.up.requests()[0].Body)
}
