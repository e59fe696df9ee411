package processor

import (
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// FULL_DUPLEX_STREAMED response bodies (docs/design.md, "Ending a streamed
// response"). In that mode Envoy forwards nothing of a response chunk by
// itself: every chunk must be answered by a body_mutation.streamed_response
// whose bytes Envoy injects as they are, and whose end_of_stream ends the
// client's response. mode_override is ignored in that mode, so free paths
// and lookups get their response body too and must answer it. The rest of
// the processor keeps answering chunks as in STREAMED mode (unchanged,
// replaced, or cleared); duplexAnswer, called by serve for every answer,
// turns those answers into streamed responses in this one place.

// observeProtocol records, from the protocol_config of a stream's first
// message, whether the response body is FULL_DUPLEX_STREAMED.
func (st *stream) observeProtocol(req *extprocv3.ProcessingRequest) {
	if pc := req.GetProtocolConfig(); pc != nil {
		st.duplex = pc.GetResponseBodyMode() == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
	}
}

// duplexAnswer returns the answer Envoy expects in FULL_DUPLEX_STREAMED mode
// for resp, the stream's answer to req: a response_body answer becomes a
// streamed_response carrying the bytes STREAMED mode would have forwarded
// (the chunk itself, its replacement, or nothing for a cleared chunk) with
// the chunk's end_of_stream. Every other answer, and one that already is
// a streamed_response (endResponse), is returned as it is. It allocates
// nothing: the answer is the stream's reusable one (wire.streamed).
func (st *stream) duplexAnswer(req *extprocv3.ProcessingRequest, resp *extprocv3.ProcessingResponse) *extprocv3.ProcessingResponse {
	body := req.GetResponseBody()
	a, ok := resp.GetResponse().(*extprocv3.ProcessingResponse_ResponseBody)
	if body == nil || !ok {
		return resp
	}
	out := body.GetBody()
	switch m := a.ResponseBody.GetResponse().GetBodyMutation().GetMutation().(type) {
	case *extprocv3.BodyMutation_StreamedResponse:
		return resp
	case *extprocv3.BodyMutation_Body:
		out = m.Body
	case *extprocv3.BodyMutation_ClearBody:
		if m.ClearBody {
			out = nil
		}
	}
	return st.wire.streamed(out, body.GetEndOfStream())
}

// endResponse returns the answer that ends a FULL_DUPLEX_STREAMED response
// now: tail is the last bytes the client gets, then a clean end of the
// response; Envoy then closes the stream and resets the upstream request,
// so later upstream data never reaches the client. The answer is the
// stream's reusable one: send it before asking for another.
func (st *stream) endResponse(tail []byte) *extprocv3.ProcessingResponse {
	return st.wire.streamed(tail, true)
}
