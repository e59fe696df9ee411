package processor

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"
	"google.golang.org/protobuf/reflect/protoreflect"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/processor/identity"
)

// The answers below never change, so every stream shares them: gRPC
// marshals an answer before Send returns, and nothing modifies them.
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

// headersAnswer is an answer to the response headers that sets a few
// headers, in one block: the answer, its header options and their values
// (spendguard sets at most three). Blocks are pooled: the stream returns
// its block once Send has marshalled the answer (putHeadersAnswer).
type headersAnswer struct {
	resp   extprocv3.ProcessingResponse
	oneof  extprocv3.ProcessingResponse_ResponseHeaders
	hr     extprocv3.HeadersResponse
	common extprocv3.CommonResponse
	mut    extprocv3.HeaderMutation
	opts   [3]corev3.HeaderValueOption
	vals   [3]corev3.HeaderValue
	ptrs   [3]*corev3.HeaderValueOption
	buf    [96]byte // the values, while they fit
	used   int
}

var headersAnswers = sync.Pool{New: func() any { return new(headersAnswer) }}

// ProtoReflect makes the block a proto.Message, its answer: any codec can
// send it, and Codec recognises it and encodes it directly.
func (a *headersAnswer) ProtoReflect() protoreflect.Message { return a.resp.ProtoReflect() }

// newHeadersAnswer returns an empty answer from the pool.
func newHeadersAnswer() *headersAnswer {
	a := headersAnswers.Get().(*headersAnswer)
	a.mut.SetHeaders = a.ptrs[:0]
	a.common.HeaderMutation = &a.mut
	a.hr.Response = &a.common
	a.oneof.ResponseHeaders = &a.hr
	a.resp.Response = &a.oneof
	return a
}

// putHeadersAnswer returns a to the pool, cleared (protobuf messages keep
// internal state, such as their cached size, that must not carry over).
func putHeadersAnswer(a *headersAnswer) {
	*a = headersAnswer{}
	headersAnswers.Put(a)
}

// set adds an overwriting header; value appends the value to its
// argument.
func (a *headersAnswer) set(key string, value func([]byte) []byte) {
	v := value(a.buf[a.used:a.used:len(a.buf)])
	scrubHeaderValue(v)
	if cap(v) == len(a.buf)-a.used { // it fit in buf
		a.used += len(v)
	}
	i := len(a.mut.SetHeaders)
	if i == len(a.opts) {
		a.mut.SetHeaders = append(a.mut.SetHeaders, header(key, string(v)))
		return
	}
	a.vals[i] = corev3.HeaderValue{Key: key, RawValue: v}
	a.opts[i] = corev3.HeaderValueOption{Header: &a.vals[i], AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	a.mut.SetHeaders = append(a.mut.SetHeaders, &a.opts[i])
}

func (a *headersAnswer) setString(key, value string) {
	a.set(key, func(b []byte) []byte { return append(b, value...) })
}

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

func unauthorized(missing []string) *apiError {
	return &apiError{
		status: 401, errType: typeUnauthorized, code: typeUnauthorized,
		message: fmt.Sprintf("spendguard cannot attribute this request: no value for %s", strings.Join(missing, ", ")),
	}
}

// identityRefused answers a request whose identity resolution failed: 401
// for an invalid credential, 400 for a conflicting dimension header or a
// value with control characters. The message names the header or source,
// never a token or the value.
func identityRefused(err error) *apiError {
	switch {
	case errors.Is(err, identity.ErrCredential):
		return &apiError{status: 401, errType: typeUnauthorized, code: codeInvalidAPIKey, message: "spendguard cannot attribute this request: " + err.Error()}
	case errors.Is(err, identity.ErrConflict):
		return invalidRequest(codeConflictingHeader, err.Error())
	default:
		return invalidRequest(codeInvalidValue, err.Error())
	}
}

// rejected is the 402 for a budget that cannot take the request.
func (st *stream) rejected(rej *budget.Rejection) *apiError {
	e := &apiError{
		status: 402, errType: typeBudgetExceeded, code: typeBudgetExceeded,
		message: rej.Message(),
		headers: [][2]string{{hdrBudget, rej.Budget}, {hdrScope, rej.Scope}},
	}
	if secs, ok := rej.RetryAfter(st.srv.opts.Now()); ok {
		e.headers = append(e.headers, [2]string{"retry-after", itoa(secs)})
	}
	st.log.Debug("request rejected", zap.String("request_id", st.requestID), zap.String("budget", rej.Budget), zap.String("scope", rej.Scope))
	return e
}

// tooCostly is the 402 for a request whose worst case passes
// limits.max_request_usd.
func (st *stream) tooCostly(cost money.Nano) *apiError {
	return &apiError{
		status: 402, errType: typeBudgetExceeded, code: codeRequestTooCostly,
		message: fmt.Sprintf("request worst-case cost %s USD exceeds limits.max_request_usd %s USD (prompt up to %d tokens, output up to %d tokens); lower max_tokens",
			cost.Fixed(2), st.snap.MaxRequest.Fixed(2), st.worstCase.Prompt, st.worstCase.Completion),
		headers: [][2]string{{hdrBudget, "limits.max_request_usd"}},
	}
}

// storeFailed is the answer when the budget store cannot be reached and
// store.on_error is fail_closed: the request is refused rather than served
// unmetered (see failopen.go for fail_open).
func (st *stream) storeFailed(err error) *apiError {
	st.log.Error("budget store failed", zap.String("request_id", st.requestID), zap.Error(err))
	return unavailable("spendguard cannot reach its budget store; try again shortly")
}
