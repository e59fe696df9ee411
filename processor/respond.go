package processor

import (
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// The answers other than errors (errors.go) and the response headers'
// (wire.go). The ones below never change, so every stream shares them:
// gRPC marshals an answer before Send returns, and nothing modifies them
// (Codec sends each as bytes encoded once).
var (
	// answerFreePath lets a request that costs nothing through and tells
	// Envoy to send neither body nor the response headers: the stream ends
	// here.
	answerFreePath = &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}},
		ModeOverride: &extprocfilterv3.ProcessingMode{
			RequestBodyMode:    extprocfilterv3.ProcessingMode_NONE,
			ResponseHeaderMode: extprocfilterv3.ProcessingMode_SKIP,
			ResponseBodyMode:   extprocfilterv3.ProcessingMode_NONE,
		},
	}
	answerRequestHeaders   = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	answerRequestBody      = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	answerResponseHeaders  = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	answerResponseBody     = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	answerRequestTrailers  = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	answerResponseTrailers = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	// answerClearChunk answers a response chunk whose bytes are all held
	// back or dropped.
	answerClearChunk = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
		ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
			BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}},
		}},
	}}
)

// bodyReplace answers the BUFFERED request body with a new body. Envoy
// still holds the request headers, so content-length set in the same answer
// applies; without it Envoy would answer 500 for the length mismatch. The
// answer and its content-length take one allocation.
func bodyReplace(body []byte) *extprocv3.ProcessingResponse {
	a := &struct {
		resp   extprocv3.ProcessingResponse
		oneof  extprocv3.ProcessingResponse_RequestBody
		br     extprocv3.BodyResponse
		common extprocv3.CommonResponse
		hm     extprocv3.HeaderMutation
		opt    extprocv3.BodyMutation
		body   extprocv3.BodyMutation_Body
		cl     corev3.HeaderValueOption
		clv    corev3.HeaderValue
		set    [1]*corev3.HeaderValueOption
		digits [20]byte
	}{}
	a.clv = corev3.HeaderValue{Key: "content-length", RawValue: strconv.AppendInt(a.digits[:0], int64(len(body)), 10)}
	a.cl = corev3.HeaderValueOption{Header: &a.clv, AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	a.set[0] = &a.cl
	a.hm.SetHeaders = a.set[:]
	a.body.Body = body
	a.opt.Mutation = &a.body
	a.common.HeaderMutation, a.common.BodyMutation = &a.hm, &a.opt
	a.br.Response = &a.common
	a.oneof.RequestBody = &a.br
	a.resp.Response = &a.oneof
	return &a.resp
}
