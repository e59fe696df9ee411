package processor

import (
	"fmt"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// freePath lets a request that costs nothing through and tells Envoy to send
// neither body nor the response headers: the stream ends here.
func freePath() *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}},
		ModeOverride: &extprocfilterv3.ProcessingMode{
			RequestBodyMode:    extprocfilterv3.ProcessingMode_NONE,
			ResponseHeaderMode: extprocfilterv3.ProcessingMode_SKIP,
			ResponseBodyMode:   extprocfilterv3.ProcessingMode_NONE,
		},
	}
}

func headersContinue(set []*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{
		RequestHeaders: &extprocv3.HeadersResponse{Response: common(set)},
	}}
}

func responseHeadersContinue(set []*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{
		ResponseHeaders: &extprocv3.HeadersResponse{Response: common(set)},
	}}
}

// bodyContinue answers a request body (request=true) or response body chunk
// without changing it.
func bodyContinue(request bool) *extprocv3.ProcessingResponse {
	if request {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	}
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
}

// bodyReplace answers the BUFFERED request body with a new body. Envoy
// still holds the request headers, so content-length set in the same answer
// applies; without it Envoy would answer 500 for the length mismatch.
func bodyReplace(body []byte) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{
		Response: &extprocv3.CommonResponse{
			HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: []*corev3.HeaderValueOption{header("content-length", contentLength(len(body)))}},
			BodyMutation:   &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: body}},
		},
	}}}
}

func common(set []*corev3.HeaderValueOption) *extprocv3.CommonResponse {
	if len(set) == 0 {
		return nil
	}
	return &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: set}}
}

func unauthorized(missing []string) *apiError {
	return &apiError{
		status: 401, errType: typeUnauthorized, code: typeUnauthorized,
		message: fmt.Sprintf("spendguard cannot attribute this request: no value for %s", strings.Join(missing, ", ")),
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
