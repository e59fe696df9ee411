package envoysim

import (
	"errors"
	"net/http"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// responsePhase runs the upstream's response (or Envoy's own 413/503 local
// reply) through the processor and writes it to the client. The response
// body is forwarded as it is answered, flushed after every piece.
func (x *exchange) responsePhase(resp *http.Response, local bool, start time.Time) {
	x.resp = resp
	h := responseHeaders(resp)
	if !local {
		h.add("x-envoy-upstream-service-time", serviceTime(start))
	}
	hasBody := responseHasBody(x.upMethod, resp)
	if hasBody {
		x.respSrc = startBodyTrailers(resp.Body, x.p.cfg.ResponseChunker, func() http.Header { return resp.Trailer })
	}
	if !x.done && x.md.respBody == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED {
		x.duplexResponse(h, hasBody)
		return
	}
	replacement, replaced, ok := x.responseHeadersPhase(&h, hasBody)
	if !ok {
		return
	}
	switch {
	case replaced:
		x.respSrc.close()
		x.writeHeaders(h)
		if len(replacement) > 0 {
			x.finishBody(x.write(replacement))
		}
	case !hasBody:
		x.writeHeaders(h)
	case x.done || x.md.respBody == extprocfilterv3.ProcessingMode_NONE:
		x.writeHeaders(h)
		x.finishBody(x.copyRest(x.respSrc, x.write))
	case x.md.respBody == extprocfilterv3.ProcessingMode_BUFFERED:
		x.bufferedResponse(h)
	case x.md.respBody == extprocfilterv3.ProcessingMode_STREAMED:
		x.writeHeaders(h)
		if err := x.write(nil); err != nil {
			x.clientGone()
			return
		}
		x.finishBody(x.streamBody(false, x.respSrc, x.write))
	default:
		x.partialResponse(h)
	}
}

// responseHasBody reports whether a response to method carries a body.
func responseHasBody(method string, resp *http.Response) bool {
	if method == http.MethodHead || resp.StatusCode < 200 ||
		resp.StatusCode == http.StatusNoContent || resp.StatusCode == http.StatusNotModified {
		return false
	}
	return resp.ContentLength != 0
}

// responseHeadersPhase is requestHeadersPhase for the response; nothing is
// sent once processing is complete.
func (x *exchange) responseHeadersPhase(h *headerList, hasBody bool) (body []byte, replaced, ok bool) {
	if x.done {
		return nil, false, true
	}
	if !x.md.respHeaders {
		if shouldRemoveContentLength(x.md.respBody, false) {
			h.del("content-length")
		}
		return nil, false, true
	}
	stripCL := shouldRemoveContentLength(x.md.respBody, true)
	if err := x.send(false, headersMsg(false, *h, !hasBody)); err != nil {
		return nil, false, x.fail(err)
	}
	if stripCL {
		h.del("content-length")
	}
	return x.responseHeadersAnswer(h)
}

// responseHeadersAnswer waits for and applies the answer to response_headers,
// including its :status mutation. A standalone mode_override (no response
// set) is applied and the wait goes on. It returns the replacement body of a
// CONTINUE_AND_REPLACE with a body mutation, and ok false when the exchange
// has been answered.
func (x *exchange) responseHeadersAnswer(h *headerList) (body []byte, replaced, ok bool) {
	deadline := time.Now().Add(x.p.cfg.MessageTimeout)
	for {
		ans, err := x.await(deadline)
		if err != nil {
			return nil, false, x.fail(err)
		}
		switch a := ans.GetResponse().(type) {
		case *extprocv3.ProcessingResponse_ImmediateResponse:
			x.immediate(a.ImmediateResponse)
			return nil, false, false
		case *extprocv3.ProcessingResponse_ResponseHeaders:
			if ans.GetModeOverride() != nil && x.p.cfg.overrides {
				x.p.applyOverride(&x.md, ans.GetModeOverride())
			}
			cr := a.ResponseHeaders.GetResponse()
			replacing := cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE
			rules := mutationRules{replacing: replacing, skipContentLength: shouldRemoveContentLength(x.md.respBody, x.md.respHeaders)}
			if err := x.mutate(h, cr.GetHeaderMutation(), rules); err != nil {
				x.fail(err)
				return nil, false, false
			}
			if replacing {
				x.md.respBody = extprocfilterv3.ProcessingMode_NONE
				if bm := cr.GetBodyMutation(); bm != nil {
					h.del("content-length")
					return applyBodyMutation(bm, nil), true, true
				}
			}
			return nil, false, true
		case nil:
			if ans.GetModeOverride() != nil && x.p.cfg.overrides {
				x.p.applyOverride(&x.md, ans.GetModeOverride())
				continue
			}
			return nil, false, x.fail(spurious(ans))
		default:
			return nil, false, x.fail(spurious(ans))
		}
	}
}

// bufferedResponse holds the response headers until the whole body has been
// answered; a body over BufferLimit gets Envoy's 500 (sent directly, the
// processor sees nothing more).
func (x *exchange) bufferedResponse(h headerList) {
	body, eof, err := x.collect(x.respSrc, x.p.cfg.BufferLimit)
	if err != nil {
		x.finishBody(err)
		return
	}
	if !eof || len(body) > x.p.cfg.BufferLimit {
		x.respSrc.close()
		x.done = true
		x.msg.st.finish()
		x.localReply(http.StatusInternalServerError, []byte("Internal Server Error"), nil)
		return
	}
	ans, err := x.call(false, bodyMsg(false, body, true))
	if err != nil {
		if !x.fail(err) {
			return
		}
	} else {
		switch a := ans.GetResponse().(type) {
		case *extprocv3.ProcessingResponse_ImmediateResponse:
			x.immediate(a.ImmediateResponse)
			return
		case *extprocv3.ProcessingResponse_ResponseBody:
			if body, err = x.bufferedAnswer(&h, body, a.ResponseBody.GetResponse()); err != nil {
				x.fail(err)
				return
			}
		default:
			if !x.fail(spurious(ans)) {
				return
			}
		}
	}
	x.writeHeaders(h)
	if len(body) > 0 {
		x.finishBody(x.write(body))
	}
}

// partialResponse holds the headers until the first BufferLimit bytes (or
// the whole body) have been answered; the rest passes unprocessed.
func (x *exchange) partialResponse(h headerList) {
	head, eof, ok := x.partialBody(false, x.respSrc)
	if !ok {
		return
	}
	x.writeHeaders(h)
	if len(head) > 0 {
		if err := x.write(head); err != nil {
			x.clientGone()
			return
		}
	}
	if !eof {
		x.finishBody(x.copyRest(x.respSrc, x.write))
	}
}

// finishBody settles how a response body ended: an upstream read failure
// resets the client connection (truncated body), a client write failure or
// cancellation is a client abort.
func (x *exchange) finishBody(err error) {
	var src *sourceError
	switch {
	case err == nil, errors.Is(err, errHandled):
	case errors.As(err, &src):
		x.p.cfg.Logf("envoysim: upstream body: %v", src.err)
		x.p.stats.upstreamFail.Add(1)
		x.reset = true
	default:
		x.clientGone()
	}
}
