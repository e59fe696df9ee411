package processor

import (
	"context"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// A stream accepts any sequence of messages and decides each one here,
// before the phase handlers run (docs/design.md, "Message order", has the
// table). What Envoy sends in order goes to the handlers; what Envoy never
// sends in order ends the stream with InvalidArgument (a violation), after
// which the money is settled as for any stream end. The rules guarantee:
//
//   - one reservation per stream: the request body is read once;
//   - a stream's class (free or cost path) is fixed by its first message;
//   - the response phase begins only once the request was admitted, so
//     there is always a reservation (or an unmetered one) to settle;
//   - a response that started is never settled as "not answered".

// The answer for a configuration spendguard cannot meter under.
const (
	typeServerError     = "server_error"
	codeUnsupportedMode = "unsupported_processing_mode"
)

// seen records which messages a stream has had, one bit per kind.
type seen uint8

const (
	seenRequestHeaders seen = 1 << iota
	seenRequestBody
	seenRequestTrailers
	seenResponseHeaders
	seenResponseBody // at least one response body chunk
	seenResponseEnd  // the response's end: end_of_stream on its headers or body, or its trailers
	seenResponseTrailers
	seenLocalReply // Envoy's own reply passed through before the request body was read

	seenResponse = seenResponseHeaders | seenResponseBody | seenResponseEnd | seenResponseTrailers
)

// handle answers one message; nil means the stream must end with
// InvalidArgument, st.violation saying why.
func (st *stream) handle(ctx context.Context, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		if st.seen != 0 {
			return st.violate("request_headers after the stream's first message")
		}
		st.seen = seenRequestHeaders
		st.protocol = req.GetProtocolConfig()
		return st.onRequestHeaders(ctx, r.RequestHeaders, req.GetMetadataContext())
	case *extprocv3.ProcessingRequest_RequestBody:
		switch {
		case st.free:
			return answerRequestBody
		case st.seen == 0:
			// request_header_mode: SKIP. Without the path and the headers
			// the request can be neither attributed nor priced.
			return st.refuse(unsupportedMode("request_header_mode must be SEND: spendguard attributes and prices a request from its headers"), nil)
		case st.seen&seenRequestBody != 0:
			return st.violate("a second request_body: the request body is read once (request_body_mode: BUFFERED)")
		case st.seen&seenLocalReply != 0:
			return st.violate("request_body after Envoy's own reply to the request")
		}
		st.seen |= seenRequestBody
		return st.onRequestBody(ctx, r.RequestBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		switch {
		case st.free:
			return answerRequestTrailers
		case st.seen == 0:
			return st.violate("request_trailers before request_headers")
		case st.seen&seenRequestTrailers != 0:
			return st.violate("a second request_trailers")
		case st.seen&seenRequestBody == 0:
			// The request ended without a body message: nothing to price.
			return st.refuse(bodyRequired(st.endpoint), nil)
		}
		st.seen |= seenRequestTrailers
		return answerRequestTrailers
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		if st.lookup != "" {
			return st.onLookupResponseHeaders(ctx, r.ResponseHeaders)
		}
		if st.free {
			return answerResponseHeaders
		}
		if st.envoyLocalReply() {
			return answerResponseHeaders
		}
		if v := st.responseOutOfOrder("response_headers"); v != "" {
			return st.violate(v)
		}
		if st.seen&seenResponseHeaders != 0 {
			return st.violate("a second response_headers")
		}
		if st.seen&seenResponse != 0 {
			return st.violate("response_headers after the response body")
		}
		st.seen |= seenResponseHeaders
		if r.ResponseHeaders.GetEndOfStream() {
			st.seen |= seenResponseEnd
		}
		return st.onResponseHeaders(ctx, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		if st.lookup != "" {
			return st.onLookupResponseBody(ctx, r.ResponseBody)
		}
		if st.free {
			return answerResponseBody
		}
		if st.envoyLocalReply() {
			return answerResponseBody
		}
		if v := st.responseOutOfOrder("response_body"); v != "" {
			return st.violate(v)
		}
		if st.seen&seenResponseEnd != 0 {
			return st.violate("response_body after the response's end_of_stream")
		}
		st.seen |= seenResponseBody
		if r.ResponseBody.GetEndOfStream() {
			st.seen |= seenResponseEnd
		}
		return st.onResponseBody(ctx, r.ResponseBody)
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		if st.lookup != "" {
			st.lookupTrailers(ctx)
			return answerResponseTrailers
		}
		if st.free {
			return answerResponseTrailers
		}
		if st.envoyLocalReply() {
			return answerResponseTrailers
		}
		if v := st.responseOutOfOrder("response_trailers"); v != "" {
			return st.violate(v)
		}
		if st.seen&seenResponseTrailers != 0 {
			return st.violate("a second response_trailers")
		}
		ended := st.seen&seenResponseEnd != 0
		st.seen |= seenResponseTrailers | seenResponseEnd
		if !ended {
			// Trailers follow the last chunk, which then has no
			// end_of_stream: the response is complete now.
			st.onResponseTrailers(ctx)
		}
		return answerResponseTrailers
	}
	return st.violate("a message with no request set")
}

// envoyLocalReply reports whether a response-phase message is Envoy's own
// reply to a request whose body spendguard has not read: a 413 for a body
// over the buffer limit, or another filter's local reply. With the request
// body BUFFERED no upstream can have seen the request, and nothing is
// reserved, so the reply passes untouched and costs nothing.
func (st *stream) envoyLocalReply() bool {
	if st.seen&seenLocalReply != 0 {
		return true
	}
	if st.seen&seenRequestHeaders == 0 || st.seen&seenRequestBody != 0 || st.reservation != nil {
		return false
	}
	st.seen |= seenLocalReply
	return true
}

// responseOutOfOrder says why a response-phase message cannot come now
// ("" when it can): the request was not admitted. With request_body_mode
// BUFFERED Envoy holds the request until the body's answer, so no response
// can exist before it.
func (st *stream) responseOutOfOrder(kind string) string {
	if st.reservation != nil {
		return ""
	}
	if st.seen&seenRequestHeaders == 0 {
		return kind + " before request_headers"
	}
	return kind + " before the request body was answered"
}

// violate records why the stream is refused and returns nil, which makes
// Process end the stream with InvalidArgument.
func (st *stream) violate(why string) *extprocv3.ProcessingResponse {
	st.violation = why
	return nil
}

// responded reports whether the upstream's response has begun (any
// response-phase message).
func (st *stream) responded() bool { return st.seen&seenResponse != 0 }

// unsupportedModes refuses a cost-path request whose body modes, from the
// first message's protocol_config, leave spendguard unable to price it
// (request body not BUFFERED) or to meter its response (response body not
// FULL_DUPLEX_STREAMED, STREAMED or BUFFERED). Without protocol_config
// spendguard's own modes are assumed.
func (st *stream) unsupportedModes() *apiError {
	pc := st.protocol
	if pc == nil {
		return nil
	}
	if m := pc.GetRequestBodyMode(); m != extprocfilterv3.ProcessingMode_BUFFERED {
		return unsupportedMode("request_body_mode is " + m.String() + "; spendguard needs BUFFERED to price a request from its whole body")
	}
	switch m := pc.GetResponseBodyMode(); m {
	case extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED, extprocfilterv3.ProcessingMode_STREAMED, extprocfilterv3.ProcessingMode_BUFFERED:
	default:
		return unsupportedMode("response_body_mode is " + m.String() + "; spendguard needs FULL_DUPLEX_STREAMED (or STREAMED, BUFFERED) to meter the response's usage")
	}
	return nil
}

// unsupportedMode is the local reply for an Envoy configuration spendguard
// cannot enforce budgets under; detail names the setting.
func unsupportedMode(detail string) *apiError {
	return &apiError{
		status: 500, errType: typeServerError, code: codeUnsupportedMode,
		message: "spendguard cannot meter this request under the ext_proc filter's processing_mode: " + detail,
	}
}

// parseStatus reads an HTTP status: three digits from 100 to 599, else 0
// (unknown).
func parseStatus(b []byte) int {
	if len(b) != 3 {
		return 0
	}
	n := 0
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	if n < 100 || n > 599 {
		return 0
	}
	return n
}

// sniffSSE decides, from the first bytes of a response body whose
// content-type is unknown (response_header_mode: SKIP), whether it is an
// SSE stream: leading whitespace is skipped; '{' or '[' means JSON, any
// other byte SSE (an SSE stream starts with a field name, "data:",
// "event:", or a ':' comment). decided is false while the chunk holds only
// whitespace.
func sniffSSE(chunk []byte) (sse, decided bool) {
	for _, c := range chunk {
		switch c {
		case ' ', '\t', '\r', '\n':
			continue
		case '{', '[':
			return false, true
		}
		return true, true
	}
	return false, false
}
