package envoysim

import (
	"net/http"
	"strconv"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const budgetBody = `{"error":{"message":"budget tenant-monthly exhausted","type":"budget_exceeded","param":null,"code":"budget_exceeded"}}`

func TestImmediateResponse(t *testing.T) {
	tests := []struct {
		name         string
		at           string // message kind answered with the ImmediateResponse
		reply        *extprocv3.ProcessingResponse
		wantType     string
		wantUpstream bool
		wantKinds    []string
	}{
		{
			name: "402 at request headers, without reading the body", at: "request_headers",
			reply: immediate(402, budgetBody, setRaw("content-type", "application/json"), setRaw("retry-after", "3600"),
				setRaw("x-envoy-ratelimited", "true"), setRaw("host", "evil"), setRaw(":authority", "evil")),
			wantType: "application/json", wantKinds: []string{"request_headers"},
		},
		{
			name: "403 at request body, content-type defaults to text/plain", at: "request_body",
			reply: immediate(403, "denied"), wantType: "text/plain", wantKinds: []string{"request_headers", "request_body"},
		},
		{
			name: "at response headers, replacing the upstream response", at: "response_headers",
			reply: immediate(429, "slow down"), wantType: "text/plain", wantUpstream: true,
			wantKinds: []string{"request_headers", "request_body", "response_headers"},
		},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
				if kindOf(m) == tc.at {
					return tc.reply
				}
				return cont(m)
			}), nil, nil)
			resp, body := h.do(t, http.MethodPost, "/v1/chat/completions", `{"model":"m"}`)
			ir := tc.reply.GetImmediateResponse()
			assert.Equal(t, int(ir.GetStatus().GetCode()), resp.StatusCode)
			assert.Equal(t, string(ir.GetBody()), body)
			assert.Equal(t, strconv.Itoa(len(ir.GetBody())), resp.Header.Get("Content-Length"))
			assert.Equal(t, tc.wantType, resp.Header.Get("Content-Type"))
			assert.Empty(t, resp.Header.Get("X-Envoy-Ratelimited"), "x-envoy-* ignored")
			if tc.at == "request_headers" {
				assert.Equal(t, "3600", resp.Header.Get("Retry-After"))
			}
			if tc.wantUpstream {
				assert.Len(t, h.up.requests(), 1)
			} else {
				assert.Empty(t, h.up.requests(), "the upstream is never contacted")
			}
			s := h.proc.only(t)
			assert.Equal(t, tc.wantKinds, s.kinds(), "no response_headers for the processor's own local reply")
			assert.Equal(t, append(tc.wantKinds, "eof", "canceled"), s.log())
			st := h.proxy.Stats()
			assert.Equal(t, int64(1), st.ImmediateResponses)
			assert.Equal(t, int64(1), st.LocalReplies)
		})
	}
}

func TestImmediateResponseWithoutBody(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		return immediate(401, "")
	}), nil, nil)
	resp, body := h.do(t, http.MethodGet, "/v1/models", "")
	assert.Equal(t, http.StatusUnauthorized, resp.StatusCode)
	assert.Empty(t, body)
	assert.Empty(t, resp.Header.Get("Content-Type"), "no default content-type without a body")
	assert.Equal(t, "0", resp.Header.Get("Content-Length"))
}

func TestImmediateResponseInvalidStatusBecomes200(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		return immediate(0, "hi")
	}), nil, nil)
	resp, body := h.do(t, http.MethodGet, "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "hi", body)
	assert.Empty(t, h.up.requests())
}
