package processor_test

import (
	"errors"
	"io"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// exactCost is what the fixtures' usage costs at testConfig's prices: 12
// prompt and 100 completion tokens.
const exactCost = money.Nano(12*600 + 100*800)

// play sends msgs on a new stream, one at a time, each waiting for its
// answer, then closes the stream and waits for the server to end it (its
// money is settled by then). It returns the answers and how the stream
// ended: nil, or the server's gRPC error. It stops sending at a local
// reply or an error, as Envoy does.
func (h *harness) play(msgs ...*extprocv3.ProcessingRequest) ([]*extprocv3.ProcessingResponse, error) {
	h.t.Helper()
	s, cancel := h.open()
	defer cancel()
	var answers []*extprocv3.ProcessingResponse
	for _, m := range msgs {
		if err := s.Send(m); err != nil {
			break // the server ended the stream: Recv has its status
		}
		resp, err := s.Recv()
		if err != nil {
			return answers, endOf(err)
		}
		answers = append(answers, resp)
		if resp.GetImmediateResponse() != nil {
			break
		}
	}
	require.NoError(h.t, s.CloseSend())
	for {
		if _, err := s.Recv(); err != nil {
			return answers, endOf(err)
		}
	}
}

func endOf(err error) error {
	if errors.Is(err, io.EOF) {
		return nil
	}
	return err
}

func withStatusless(ct string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs("content-type", ct)}}}
}

func respHeadersCT(status, ct string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", status, "content-type", ct)}}}
}

func withModes(req *extprocv3.ProcessingRequest, reqBody, respBody extprocfilterv3.ProcessingMode_BodySendMode) *extprocv3.ProcessingRequest {
	req.ProtocolConfig = &extprocv3.ProtocolConfiguration{RequestBodyMode: reqBody, ResponseBodyMode: respBody}
	return req
}

func reqTrailers() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestTrailers{
		RequestTrailers: &extprocv3.HttpTrailers{Trailers: &corev3.HeaderMap{}}}}
}

func respTrailers() *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
		ResponseTrailers: &extprocv3.HttpTrailers{Trailers: &corev3.HeaderMap{}}}}
}

// chunks splits body into pieces of n bytes, the last one with
// end_of_stream when eos.
func chunks(body []byte, n int, eos bool) []*extprocv3.ProcessingRequest {
	var out []*extprocv3.ProcessingRequest
	for i := 0; i < len(body); i += n {
		end := min(i+n, len(body))
		out = append(out, respBody(body[i:end], eos && end == len(body)))
	}
	return out
}

func seq(parts ...any) []*extprocv3.ProcessingRequest {
	var out []*extprocv3.ProcessingRequest
	for _, p := range parts {
		switch p := p.(type) {
		case *extprocv3.ProcessingRequest:
			out = append(out, p)
		case []*extprocv3.ProcessingRequest:
			out = append(out, p...)
		}
	}
	return out
}

// TestMessageOrder runs each case of issue 16 (and their siblings) through
// the real gRPC server: how the stream ends, what the tenant is charged,
// and that no reservation is left behind. Before the state machine, the
// SKIP-mode and out-of-order cases crashed the process, the duplicates
// reserved twice or turned the stream free, and the odd statuses charged
// nothing.
func TestMessageOrder(t *testing.T) {
	json := fixture(t, "vllm-chat.json")
	sse := fixture(t, "openai-chat-stream-usage.sse")
	start := func() []*extprocv3.ProcessingRequest {
		return seq(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), reqBody(chatBody))
	}
	const invalid, ok = codes.InvalidArgument, codes.OK
	for _, tc := range []struct {
		name    string
		msgs    []*extprocv3.ProcessingRequest
		end     codes.Code
		charged money.Nano // -1: more than 0, estimated
		local   int        // status of a local reply, 0 for none
	}{
		{"SKIP response headers: JSON body metered", seq(start(), chunks(json, 100, true)), ok, exactCost, 0},
		{"SKIP response headers: SSE body sniffed and metered", seq(start(), chunks(sse, 33, true)), ok, exactCost, 0},
		{"SKIP response headers: body split before its first byte", seq(start(), respBody([]byte("  \n"), false), chunks(json, 5, true)), ok, exactCost, 0},
		{"response headers before the request body", seq(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), respHeaders("200"), reqBody(chatBody), chunks(json, 100, true)), invalid, 0, 0},
		{"response body before the request body: Envoy's own reply passes", seq(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), respBody(json, true)), ok, 0, 0},
		{"Envoy's 413 for a body over its buffer passes, charged nothing", seq(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), respHeaders("413"), respBody([]byte(`{"error":{}}`), true)), ok, 0, 0},
		{"response before request headers", seq(respHeaders("200"), respBody(json, true)), invalid, 0, 0},
		{"a second request body", seq(start(), reqBody(chatBody), respHeaders("200"), chunks(json, 100, true)), invalid, 0, 0},
		{"a second request headers naming a free path", seq(start(), reqHeaders("/v1/models"), respHeaders("200"), chunks(json, 100, true)), invalid, 0, 0},
		{"a second request headers after the response began", seq(start(), respHeaders("200"), respBody(json, false), reqHeaders("/health")), invalid, exactCost, 0},
		{"no :status", seq(start(), withStatusless("application/json"), chunks(json, 100, true)), ok, exactCost, 0},
		{"garbage :status", seq(start(), respHeaders("abc"), chunks(json, 100, true)), ok, exactCost, 0},
		{"a :status of four digits", seq(start(), respHeaders("4000"), chunks(json, 100, true)), ok, exactCost, 0},
		{"a 1xx :status", seq(start(), respHeaders("101"), chunks(json, 100, true)), ok, exactCost, 0},
		{"200 then 500: what was served is charged", seq(start(), respHeaders("200"), respBody(json, false), respHeaders("500")), invalid, exactCost, 0},
		{"200 then 500 before any body: estimated", seq(start(), respHeaders("200"), respHeaders("500")), invalid, -1, 0},
		{"404 releases", seq(start(), respHeaders("404"), respBody([]byte(`{"error":{}}`), true)), ok, 0, 0},
		{"response body after its end", seq(start(), respHeaders("200"), chunks(json, 100, true), respBody([]byte("x"), true)), invalid, exactCost, 0},
		{"response trailers end the response", seq(start(), respHeaders("200"), chunks(json, 100, false), respTrailers()), ok, exactCost, 0},
		{"SSE response trailers end the response", seq(start(), respHeadersCT("200", "text/event-stream"), chunks(sse, 100, false), respTrailers()), ok, exactCost, 0},
		{"a second response trailers", seq(start(), respHeaders("200"), chunks(json, 100, false), respTrailers(), respTrailers()), invalid, exactCost, 0},
		{"request trailers after the body pass", seq(start(), reqTrailers(), respHeaders("200"), chunks(json, 100, true)), ok, exactCost, 0},
		{"request trailers without a body", seq(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), reqTrailers()), ok, 0, 400},
		{"request body without request headers (request_header_mode SKIP)", seq(reqBody(chatBody), respHeaders("200")), ok, 0, 500},
		{"request_body_mode NONE", seq(withModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), extprocfilterv3.ProcessingMode_NONE, extprocfilterv3.ProcessingMode_STREAMED), respHeaders("200")), ok, 0, 500},
		{"request_body_mode STREAMED", seq(withModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), extprocfilterv3.ProcessingMode_STREAMED, extprocfilterv3.ProcessingMode_STREAMED)), ok, 0, 500},
		{"response_body_mode NONE", seq(withModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), extprocfilterv3.ProcessingMode_BUFFERED, extprocfilterv3.ProcessingMode_NONE)), ok, 0, 500},
		{"spendguard's modes", seq(withModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), extprocfilterv3.ProcessingMode_BUFFERED, extprocfilterv3.ProcessingMode_STREAMED), reqBody(chatBody), respHeaders("200"), chunks(json, 100, true)), ok, exactCost, 0},
		{"a BUFFERED response body", seq(withModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), extprocfilterv3.ProcessingMode_BUFFERED, extprocfilterv3.ProcessingMode_BUFFERED), reqBody(chatBody), respHeaders("200"), respBody(json, true)), ok, exactCost, 0},
		{"a message with no request", seq(start(), &extprocv3.ProcessingRequest{}), invalid, 0, 0},
		{"headers-only response", seq(start(), &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
			ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", "200"), EndOfStream: true}}}), ok, -1, 0},
		{"free path: bodies and duplicates of later phases pass", seq(reqHeaders("/v1/models"), reqBody("x"), respHeaders("200"), respHeaders("200"), respBody(json, true), respBody(json, true), respTrailers()), ok, 0, 0},
		{"free path: a second request headers naming a cost path", seq(reqHeaders("/v1/models"), reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), reqBody(chatBody)), invalid, 0, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testConfig)
			answers, err := h.play(tc.msgs...)
			assert.Equal(t, tc.end, status.Code(err), "%v", err)
			c := h.spend("acme")
			assert.Zero(t, c.Reserved, "no reservation outlives its stream")
			switch {
			case tc.charged < 0:
				assert.Positive(t, c.Committed)
				rep := <-h.reports
				assert.True(t, rep.GetEstimated())
			default:
				assert.Equal(t, tc.charged, c.Committed)
			}
			var local int
			if n := len(answers); n > 0 {
				local = int(answers[n-1].GetImmediateResponse().GetStatus().GetCode())
			}
			assert.Equal(t, tc.local, local)
			assert.Zero(t, h.srv.Panics())
		})
	}
}

// TestSecondRequestBodyReservesOnce: the duplicate body is refused before
// it reaches the budgets, so the stream holds exactly the first
// reservation until it ends.
func TestSecondRequestBodyReservesOnce(t *testing.T) {
	h := newHarness(t, testConfig)
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	once := h.spend("acme").Reserved
	require.Positive(t, once)
	require.NoError(t, s.Send(reqBody(chatBody)))
	_, err := s.Recv()
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
	assert.Contains(t, status.Convert(err).Message(), "a second request_body")
	assert.Equal(t, budget.Counter{}, h.spend("acme"), "released when the stream ended; nothing was served")
}

// TestUnsupportedModeNamesTheSetting: the local reply says which Envoy
// setting to change, in OpenAI's error shape.
func TestUnsupportedModeNamesTheSetting(t *testing.T) {
	h := newHarness(t, testConfig)
	answers, err := h.play(withModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), extprocfilterv3.ProcessingMode_NONE, extprocfilterv3.ProcessingMode_STREAMED))
	require.NoError(t, err)
	require.Len(t, answers, 1)
	ir := answers[0].GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, 500, ir.GetStatus().GetCode())
	assert.JSONEq(t, `{"error":{"message":"spendguard cannot meter this request under the ext_proc filter's processing_mode: request_body_mode is NONE; spendguard needs BUFFERED to price a request from its whole body","type":"server_error","param":null,"code":"unsupported_processing_mode"}}`, string(ir.GetBody()))

	answers, err = h.play(withModes(reqHeaders("/v1/models"), extprocfilterv3.ProcessingMode_NONE, extprocfilterv3.ProcessingMode_NONE))
	require.NoError(t, err)
	require.Len(t, answers, 1)
	assert.NotNil(t, answers[0].GetRequestHeaders(), "free paths do not care about body modes")
}
