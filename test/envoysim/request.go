package envoysim

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// upstreamCall is a request to the upstream in flight. resp and err are
// valid once done is closed.
type upstreamCall struct {
	done  chan struct{}
	resp  *http.Response
	err   error
	start time.Time
	local *http.Response // set instead of a real call for Envoy's own 413
}

// requestPhase runs the request headers and body through the processor and
// starts the upstream request. It returns nil when the client has been
// answered locally (or went away).
func (x *exchange) requestPhase() *upstreamCall {
	h := requestHeaders(x.r)
	x.reqHeaders = &h
	hasBody := x.r.Body != nil && x.r.Body != http.NoBody && x.r.ContentLength != 0
	replacement, replaced, ok := x.requestHeadersPhase(&h, hasBody)
	if !ok {
		return nil
	}
	switch {
	case replaced:
		return x.startUpstream(h, bytes.NewReader(replacement), -1)
	case !hasBody:
		return x.startUpstream(h, nil, 0)
	}
	// The body is read only from here on, so a request answered at its
	// headers never touches it (Go forbids reading it after ServeHTTP
	// returns). Envoy reads earlier and may coalesce what arrived during the
	// headers wait into the first STREAMED chunk; here the first chunk is
	// the first read. Processors must accept any chunking either way.
	x.reqSrc = startBody(x.r.Body, nil)
	switch {
	case x.done || x.md.reqBody == extprocfilterv3.ProcessingMode_NONE:
		return x.startUpstream(h, &sourceReader{ctx: x.ctx, src: x.reqSrc}, contentLength(h))
	case x.md.reqBody == extprocfilterv3.ProcessingMode_BUFFERED:
		return x.bufferedRequest(h)
	case x.md.reqBody == extprocfilterv3.ProcessingMode_STREAMED:
		return x.streamedRequest(h)
	default:
		return x.partialRequest(h)
	}
}

// requestHeadersPhase sends the request headers (when the mode says SEND),
// strips content-length right after sending when the body mode requires it,
// and applies the answer. It returns the replacement body of a
// CONTINUE_AND_REPLACE with a body mutation, and ok false when the exchange
// has been answered.
func (x *exchange) requestHeadersPhase(h *headerList, hasBody bool) (body []byte, replaced, ok bool) {
	if !x.md.reqHeaders {
		if shouldRemoveContentLength(x.md.reqBody, false) {
			h.del("content-length")
		}
		return nil, false, true
	}
	stripCL := shouldRemoveContentLength(x.md.reqBody, true)
	if err := x.send(true, headersMsg(true, *h, !hasBody)); err != nil {
		return nil, false, x.fail(err)
	}
	if stripCL {
		h.del("content-length")
	}
	ans, err := x.await(time.Now().Add(x.p.cfg.MessageTimeout))
	if err != nil {
		return nil, false, x.fail(err)
	}
	return x.requestHeadersAnswer(h, ans)
}

// requestHeadersAnswer applies the answer to request_headers. It returns the
// replacement body of a CONTINUE_AND_REPLACE with a body mutation, and ok
// false when the exchange has been answered.
func (x *exchange) requestHeadersAnswer(h *headerList, ans *extprocv3.ProcessingResponse) (body []byte, replaced, ok bool) {
	switch a := ans.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		x.immediate(a.ImmediateResponse)
		return nil, false, false
	case *extprocv3.ProcessingResponse_RequestHeaders:
		if ans.GetModeOverride() != nil && x.p.cfg.overrides {
			x.p.applyOverride(&x.md, ans.GetModeOverride())
		}
		cr := a.RequestHeaders.GetResponse()
		replacing := cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE
		rules := mutationRules{replacing: replacing, skipContentLength: shouldRemoveContentLength(x.md.reqBody, x.md.reqHeaders)}
		if err := x.mutate(h, cr.GetHeaderMutation(), rules); err != nil {
			x.fail(err)
			return nil, false, false
		}
		if replacing {
			x.md.reqBody = extprocfilterv3.ProcessingMode_NONE
			if bm := cr.GetBodyMutation(); bm != nil {
				h.del("content-length")
				return applyBodyMutation(bm, nil), true, true
			}
		}
		return nil, false, true
	default:
		return nil, false, x.fail(spurious(ans))
	}
}

// bufferedRequest holds the headers, sends the whole body in one message and
// applies the answer's header and body mutations before the upstream sees
// anything. A body over BufferLimit gets Envoy's 413.
func (x *exchange) bufferedRequest(h headerList) *upstreamCall {
	x.reqHeaders = &h // the body phase may mutate them
	body, eof, err := x.collect(x.reqSrc, x.p.cfg.BufferLimit)
	if err != nil {
		x.clientGone()
		return nil
	}
	if !eof || len(body) > x.p.cfg.BufferLimit {
		x.reqSrc.close()
		x.p.stats.local.Add(1)
		return &upstreamCall{start: time.Now(), local: x.p.localResponse(http.StatusRequestEntityTooLarge, h)}
	}
	ans, err := x.call(true, bodyMsg(true, body, true))
	if err != nil {
		if !x.fail(err) {
			return nil
		}
		return x.startUpstream(h, bytes.NewReader(body), contentLength(h))
	}
	switch a := ans.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		x.immediate(a.ImmediateResponse)
		return nil
	case *extprocv3.ProcessingResponse_RequestBody:
		if body, err = x.bufferedAnswer(&h, body, a.RequestBody.GetResponse()); err != nil {
			x.fail(err)
			return nil
		}
	default:
		if !x.fail(spurious(ans)) {
			return nil
		}
	}
	return x.startUpstream(h, bytes.NewReader(body), contentLength(h))
}

// streamedRequest forwards the headers at once and pipes each body chunk to
// the upstream as its answer arrives.
func (x *exchange) streamedRequest(h headerList) *upstreamCall {
	x.reqHeaders = &h // the body phase may mutate them
	pr, pw := io.Pipe()
	call := x.startUpstream(h, pr, contentLength(h))
	err := x.streamBody(true, x.reqSrc, func(b []byte) error {
		_, err := pw.Write(b)
		return err
	})
	var sink *sinkError
	switch {
	case err == nil:
		_ = pw.Close()
	case errors.As(err, &sink):
		// The upstream stopped reading; its result tells what happened.
		_ = pw.CloseWithError(err)
	case errors.Is(err, errHandled):
		_ = pw.CloseWithError(err)
		return nil
	default: // client went away or its body broke
		_ = pw.CloseWithError(err)
		x.clientGone()
		return nil
	}
	return call
}

// partialRequest holds the headers until the first BufferLimit bytes (or the
// whole body, if shorter) have been answered; the rest passes unprocessed.
func (x *exchange) partialRequest(h headerList) *upstreamCall {
	x.reqHeaders = &h // the body phase may mutate them
	head, eof, ok := x.partialBody(true, x.reqSrc)
	if !ok {
		return nil
	}
	var body io.Reader = bytes.NewReader(head)
	if !eof {
		body = io.MultiReader(body, &sourceReader{ctx: x.ctx, src: x.reqSrc})
	}
	return x.startUpstream(h, body, contentLength(h))
}

// startUpstream sends the (possibly mutated) request to the upstream as
// Envoy's router would: method, path and authority from the pseudo-headers,
// the regular headers as they are, length -1 meaning chunked.
func (x *exchange) startUpstream(h headerList, body io.Reader, length int64) *upstreamCall {
	method, _ := h.get(":method")
	path, _ := h.get(":path")
	authority, _ := h.get(":authority")
	base := x.p.cfg.upstream
	rawPath, rawQuery, hasQuery := strings.Cut(path, "?")
	u := &url.URL{
		Scheme:     base.Scheme,
		Host:       base.Host,
		Opaque:     strings.TrimSuffix(base.EscapedPath(), "/") + rawPath,
		RawQuery:   rawQuery,
		ForceQuery: hasQuery && rawQuery == "",
	}
	ctx, cancel := context.WithCancel(x.ctx)
	x.upCancel = cancel
	call := &upstreamCall{done: make(chan struct{}), start: time.Now()}
	req, err := http.NewRequestWithContext(ctx, method, base.String(), nil)
	if err != nil {
		call.err = err
		close(call.done)
		return call
	}
	req.URL, req.Host = u, authority
	h.copyTo(req.Header, "content-length")
	if _, ok := req.Header["User-Agent"]; !ok {
		req.Header["User-Agent"] = []string{""} // keep Go from adding its own
	}
	if body != nil && length != 0 {
		rc, ok := body.(io.ReadCloser)
		if !ok {
			rc = io.NopCloser(body)
		}
		req.Body, req.ContentLength = rc, length
	}
	x.upMethod = method
	x.p.stats.upstream.Add(1)
	go func() {
		defer close(call.done)
		call.resp, call.err = x.p.transport.RoundTrip(req)
	}()
	return call
}

// awaitUpstream waits for the upstream's response headers. A failure before
// them becomes Envoy's 503 local reply, which traverses the filter chain
// (local is then true). It returns nil when the client went away.
func (x *exchange) awaitUpstream(call *upstreamCall) (resp *http.Response, local bool) {
	if call.local != nil {
		return call.local, true
	}
	select {
	case <-call.done:
	case <-x.ctx.Done():
		x.clientGone()
		return nil, false
	}
	if call.err != nil {
		if x.ctx.Err() != nil {
			x.clientGone()
			return nil, false
		}
		x.p.cfg.Logf("envoysim: upstream: %v", call.err)
		x.p.stats.upstreamFail.Add(1)
		x.p.stats.local.Add(1)
		return x.p.localResponse(http.StatusServiceUnavailable, x.requestHeaders()), true
	}
	return call.resp, false
}

// serviceTime is Envoy's x-envoy-upstream-service-time value for a call.
func serviceTime(start time.Time) string {
	return strconv.FormatInt(time.Since(start).Milliseconds(), 10)
}
