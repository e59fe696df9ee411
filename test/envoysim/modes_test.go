package envoysim

import (
	"net/http"
	"testing"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestRequestHeadersSkipped: with request headers SKIP the body is the first
// message (protocol_config and attributes ride on it), and BUFFERED without
// headers strips content-length, so a resized body goes out chunked.
func TestRequestHeadersSkipped(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetRequestBody() != nil {
			return answer(m, &extprocv3.CommonResponse{BodyMutation: bodyMut("longer body")})
		}
		return cont(m)
	}), nil, func(c *Config) {
		c.RouteName = "r"
		c.ProcessingMode = StreamedMode()
		c.ProcessingMode.RequestHeaderMode = extprocfilterv3.ProcessingMode_SKIP
	})
	resp, _ := h.do(t, http.MethodPost, "/v1/completions", "short")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s := h.proc.only(t)
	require.Equal(t, []string{"request_body", "response_headers", "response_body"}, s.kinds())
	first := s.messages()[0]
	assert.NotNil(t, first.GetProtocolConfig())
	assert.Contains(t, first.GetAttributes(), "envoy.filters.http.ext_proc")
	reqs := h.up.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "longer body", reqs[0].Body)
	assert.True(t, reqs[0].Chunked)
}

func TestResponseHeadersSkippedByOverride(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		r := cont(m)
		if m.GetRequestHeaders() != nil {
			r.ModeOverride = &extprocfilterv3.ProcessingMode{
				ResponseHeaderMode: extprocfilterv3.ProcessingMode_SKIP,
				RequestBodyMode:    extprocfilterv3.ProcessingMode_BUFFERED,
				ResponseBodyMode:   extprocfilterv3.ProcessingMode_STREAMED,
			}
		}
		return r
	}), nil, nil)
	resp, body := h.do(t, http.MethodPost, "/v1/completions", "{}")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"ok":true}`, body)
	assert.Equal(t, []string{"request_headers", "request_body", "response_body"}, h.proc.only(t).kinds())
}

// TestStandaloneModeOverride: on the response path a ProcessingResponse with
// only mode_override changes the mode; the headers answer still follows.
func TestStandaloneModeOverride(t *testing.T) {
	h := newHarness(t, func(s *procStream) error {
		return answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
			if m.GetResponseHeaders() != nil {
				_ = s.send(&extprocv3.ProcessingResponse{ModeOverride: &extprocfilterv3.ProcessingMode{
					ResponseBodyMode: extprocfilterv3.ProcessingMode_NONE,
				}})
			}
			return cont(m)
		})(s)
	}, nil, nil)
	resp, body := h.do(t, http.MethodGet, "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"ok":true}`, body)
	assert.Equal(t, []string{"request_headers", "response_headers"}, h.proc.only(t).kinds())
}

func TestImmediateResponseMidStreamResetsTheClient(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseBody() != nil {
			return immediate(402, "too late")
		}
		return cont(m)
	}), nil, nil)
	resp, _, err := h.readAll(t, http.MethodGet, "/", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode, "headers were already out")
	assert.Error(t, err)
	assert.Equal(t, int64(1), h.proxy.Stats().ResetResponses)
}

func TestHeadRequestHasNoResponseBody(t *testing.T) {
	h := newHarness(t, answerAll(cont), nil, nil)
	resp, body := h.do(t, http.MethodHead, "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Empty(t, body)
	s := h.proc.only(t)
	assert.Equal(t, []string{"request_headers", "response_headers"}, s.kinds())
	assert.True(t, s.messages()[1].GetResponseHeaders().GetEndOfStream())
}

func TestHopByHopHeadersNeverReachTheProcessor(t *testing.T) {
	h := newHarness(t, answerAll(cont), nil, nil)
	h.do(t, http.MethodGet, "/", "", "Connection", "X-Secret-Hop", "X-Secret-Hop", "1", "Keep-Alive", "timeout=5")
	hm := h.proc.only(t).messages()[0].GetRequestHeaders().GetHeaders()
	for _, k := range []string{"connection", "x-secret-hop", "keep-alive", "transfer-encoding"} {
		_, ok := headerOf(hm, k)
		assert.False(t, ok, k)
	}
}
