package envoysim

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"strconv"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// errHandled means the exchange has already been answered locally (or marked
// for reset); the caller must stop.
var errHandled = errors.New("exchange answered locally")

// sourceError is a failed read of a body being forwarded.
type sourceError struct{ err error }

func (e *sourceError) Error() string { return "body read: " + e.err.Error() }

// sinkError is a failed write of processed body data to its destination.
type sinkError struct{ err error }

func (e *sinkError) Error() string { return "body write: " + e.err.Error() }

// exchange is one HTTP request going through the simulated filter chain. It
// is used by the request's goroutine only.
type exchange struct {
	p   *Proxy
	w   http.ResponseWriter
	rc  *http.ResponseController
	r   *http.Request
	ctx context.Context
	md  modes
	msg messenger

	done        bool // processing complete: no more messages to the processor
	wroteHeader bool // response headers have gone to the client
	reset       bool // the client connection must be aborted
	aborted     bool // client went away (counted once)
	// failClosed turns FailureModeAllow off: Envoy ignores it once body
	// data of a FULL_DUPLEX_STREAMED direction has been seen.
	failClosed bool

	reqSrc, respSrc *bodySource
	upMethod        string // method sent upstream (decides whether a response has a body)
	upCancel        context.CancelFunc
	resp            *http.Response
	// reqHeaders are the request headers as the filter chain holds them
	// (mutations applied), which local_reply_config's header filters
	// read; nil until they are built.
	reqHeaders *headerList
}

func newExchange(p *Proxy, w http.ResponseWriter, r *http.Request) *exchange {
	md := p.cfg.mode
	return &exchange{
		p: p, w: w, rc: http.NewResponseController(w), r: r, ctx: r.Context(), md: md,
		msg: messenger{p: p, protocol: protocolConfig(md)},
	}
}

// run drives the request phase, the upstream call and the response phase.
func (x *exchange) run() {
	call := x.requestPhase()
	if call == nil {
		return
	}
	resp, local := x.awaitUpstream(call)
	if resp == nil {
		return
	}
	x.responsePhase(resp, local, call.start)
}

// cleanup ends everything the exchange started: the ext_proc stream is
// half-closed then reset, body readers stop, the upstream request is
// cancelled if still running.
func (x *exchange) cleanup() {
	if x.ctx.Err() != nil && !x.aborted && !x.completed() {
		x.clientGone()
	}
	x.msg.st.finish()
	x.reqSrc.close()
	x.respSrc.close()
	if x.resp != nil {
		_ = x.resp.Body.Close()
	}
	if x.upCancel != nil {
		x.upCancel()
	}
}

// completed reports whether the response was fully written.
func (x *exchange) completed() bool { return x.wroteHeader && !x.reset && !x.aborted }

// clientGone records that the client went away.
func (x *exchange) clientGone() {
	if !x.aborted {
		x.aborted = true
		x.done = true
		x.p.stats.clientAborts.Add(1)
	}
}

// send sends one message, opening the stream if needed.
func (x *exchange) send(request bool, req *extprocv3.ProcessingRequest) error {
	return x.msg.send(req, request)
}

// answers is the open stream's answer channel (nil, never ready, before the
// stream exists).
func (x *exchange) answers() <-chan *extprocv3.ProcessingResponse {
	if x.msg.st == nil {
		return nil
	}
	return x.msg.st.answers
}

// await waits for the next answer until deadline.
func (x *exchange) await(deadline time.Time) (*extprocv3.ProcessingResponse, error) {
	t := time.NewTimer(time.Until(deadline))
	defer t.Stop()
	select {
	case ans, ok := <-x.answers():
		if !ok {
			return nil, x.msg.st.endFailure()
		}
		x.p.stats.received.Add(1)
		return ans, nil
	case <-t.C:
		return nil, &failure{kind: failTimeout, detail: "per-message timeout exceeded"}
	case <-x.ctx.Done():
		return nil, errClientGone
	}
}

// call sends one message and waits for its answer.
func (x *exchange) call(request bool, req *extprocv3.ProcessingRequest) (*extprocv3.ProcessingResponse, error) {
	if err := x.send(request, req); err != nil {
		return nil, err
	}
	return x.await(time.Now().Add(x.p.cfg.MessageTimeout))
}

// spurious is the failure for an answer of the wrong kind.
func spurious(ans *extprocv3.ProcessingResponse) error {
	return &failure{kind: failSpurious, detail: "spurious message " + answerName(ans)}
}

// answerName names the oneof set in ans, as in the proto.
func answerName(ans *extprocv3.ProcessingResponse) string {
	oneof := ans.ProtoReflect().Descriptor().Oneofs().ByName("response")
	if f := ans.ProtoReflect().WhichOneof(oneof); f != nil {
		return string(f.Name())
	}
	return "with no response set"
}

// fail ends processing after err. It reports whether the request may go on
// unmodified (the processor closed the stream with OK, or FailureModeAllow);
// otherwise the client has been answered: StatusOnError for gRPC errors and
// spurious answers, 504 for timeouts, 500 for malformed mutations — or, when
// the response headers are already out, the response is marked for reset.
func (x *exchange) fail(err error) bool {
	if errors.Is(err, errClientGone) {
		x.clientGone()
		return false
	}
	var f *failure
	if !errors.As(err, &f) {
		f = &failure{kind: failGRPC, detail: err.Error()}
	}
	x.p.cfg.Logf("envoysim: %v", f)
	x.done = true
	x.msg.st.finish()
	code := x.p.cfg.StatusOnError
	switch f.kind {
	case failClosedOK:
		x.p.stats.closedByProc.Add(1)
		return true
	case failMutation:
		x.localReply(http.StatusInternalServerError, nil, nil)
		return false
	case failSpurious:
		x.p.stats.spurious.Add(1)
	case failTimeout:
		x.p.stats.timeouts.Add(1)
		code = http.StatusGatewayTimeout
	case failGRPC:
		x.p.stats.grpcErrors.Add(1)
	}
	if x.p.cfg.FailureModeAllow && !x.failClosed {
		x.p.stats.failOpen.Add(1)
		return true
	}
	x.localReply(code, nil, nil)
	return false
}

// immediate acts on an ImmediateResponse: processing ends, the stream is
// closed and the client gets the local reply.
func (x *exchange) immediate(ir *extprocv3.ImmediateResponse) {
	x.p.stats.immediate.Add(1)
	x.done = true
	x.msg.st.finish()
	code := int(ir.GetStatus().GetCode())
	if code < 200 || code > 999 {
		code = http.StatusOK // Envoy's default for a missing or invalid status
	}
	x.localReply(code, ir.GetBody(), ir.GetHeaders())
}

// localReply answers the client without the upstream, as Envoy's
// sendLocalReply: local_reply_config first (Config.LocalReply), then the
// mutation's headers (x-envoy-*, host, :authority and pseudo-headers
// ignored), content-length forced to a non-empty body's length and
// content-type defaulting to text/plain, or set by the body format that
// rewrote the body. If the response headers are already out, the response
// is marked for reset instead.
func (x *exchange) localReply(code int, body []byte, hm *extprocv3.HeaderMutation) {
	if x.wroteHeader {
		x.reset = true
		return
	}
	x.p.stats.local.Add(1)
	code, body, contentType := x.p.cfg.localReply.rewrite(x.requestHeaders(), code, body)
	h := headerList{{":status", strconv.Itoa(code)}}
	if hm != nil {
		ignored, _ := h.applyMutation(hm, mutationRules{localReply: true})
		x.p.stats.rejected.Add(int64(ignored))
	}
	if len(body) > 0 {
		h.set("content-length", strconv.Itoa(len(body)))
		if _, ok := h.get("content-type"); !ok || contentType != "" {
			h.set("content-type", cmp.Or(contentType, "text/plain"))
		}
	}
	x.writeHeaders(h)
	if len(body) > 0 {
		_ = x.write(body)
	}
}

// mutate applies a header mutation, counting ignored entries; a malformed
// mutation is a failMutation failure.
func (x *exchange) mutate(h *headerList, hm *extprocv3.HeaderMutation, rules mutationRules) error {
	if hm == nil {
		return nil
	}
	ignored, err := h.applyMutation(hm, rules)
	x.p.stats.rejected.Add(int64(ignored))
	if err != nil {
		return &failure{kind: failMutation, detail: err.Error()}
	}
	return nil
}

// writeHeaders sends the response headers to the client. Like Envoy's
// default server_header_transformation, it overwrites server with "envoy".
func (x *exchange) writeHeaders(h headerList) {
	status, _ := h.get(":status")
	code, err := strconv.Atoi(status)
	if err != nil || code < 100 || code > 999 {
		code = http.StatusBadGateway
	}
	dst := x.w.Header()
	h.copyTo(dst)
	dst.Set("Server", "envoy")
	x.w.WriteHeader(code)
	x.wroteHeader = true
}

// write sends body data to the client and flushes it.
func (x *exchange) write(data []byte) error {
	if _, err := x.w.Write(data); err != nil {
		return err
	}
	if err := x.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		return err
	}
	return nil
}

// applyBodyMutation returns data after m, as Envoy's applyBodyMutations:
// body replaces, clear_body empties, anything else leaves data unchanged.
func applyBodyMutation(m *extprocv3.BodyMutation, data []byte) []byte {
	switch v := m.GetMutation().(type) {
	case *extprocv3.BodyMutation_Body:
		return v.Body
	case *extprocv3.BodyMutation_ClearBody:
		if v.ClearBody {
			return nil
		}
	}
	return data
}

// bufferedAnswer applies a BUFFERED body answer while the headers are still
// held: the header mutation first, then the body mutation, which Envoy
// rejects (500) if content-length is present and differs from the length of
// the mutation's body.
func (x *exchange) bufferedAnswer(h *headerList, data []byte, cr *extprocv3.CommonResponse) ([]byte, error) {
	rules := mutationRules{replacing: cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE}
	if err := x.mutate(h, cr.GetHeaderMutation(), rules); err != nil {
		return nil, err
	}
	bm := cr.GetBodyMutation()
	if bm == nil {
		return data, nil
	}
	if v, ok := h.get("content-length"); ok {
		if n, err := strconv.ParseUint(v, 10, 64); err == nil && n != uint64(len(bm.GetBody())) {
			return nil, &failure{kind: failMutation, detail: "mismatch between content length and the length of the mutated body"}
		}
	}
	return applyBodyMutation(bm, data), nil
}

// collect reads src until its end or until more than limit bytes arrived;
// eof reports whether the end was reached (the data may still exceed limit
// when the end came with the data that crossed it).
func (x *exchange) collect(src *bodySource, limit int) (data []byte, eof bool, err error) {
	for {
		select {
		case c := <-src.ch:
			if c.err != nil {
				return data, false, &sourceError{c.err}
			}
			data = append(data, c.data...)
			if c.eof {
				return data, true, nil
			}
			if len(data) > limit {
				return data, false, nil
			}
		case <-x.ctx.Done():
			return data, false, errClientGone
		}
	}
}

// copyRest forwards the rest of src to out unprocessed.
func (x *exchange) copyRest(src *bodySource, out func([]byte) error) error {
	for {
		select {
		case c := <-src.ch:
			if c.err != nil {
				return &sourceError{c.err}
			}
			if len(c.data) > 0 {
				if err := out(c.data); err != nil {
					return &sinkError{err}
				}
			}
			if c.eof {
				return nil
			}
		case <-x.ctx.Done():
			return errClientGone
		}
	}
}

// requestHeaders is the request's header map as the filter chain holds it
// now, or nil before it is built.
func (x *exchange) requestHeaders() headerList {
	if x.reqHeaders == nil {
		return nil
	}
	return *x.reqHeaders
}

// contentLength is the length a header map announces, or -1.
func contentLength(h headerList) int64 {
	if v, ok := h.get("content-length"); ok {
		if n, err := strconv.ParseInt(v, 10, 64); err == nil && n >= 0 {
			return n
		}
	}
	return -1
}

// localResponse is a local reply Envoy itself generates (413, 503) that,
// unlike the ext_proc filter's own replies, traverses the filter chain: the
// processor sees its headers and body like an upstream response, after
// local_reply_config has rewritten them.
func (p *Proxy) localResponse(code int, req headerList) *http.Response {
	text := map[int]string{
		http.StatusRequestEntityTooLarge: "Payload Too Large",
		http.StatusServiceUnavailable:    "upstream connect error or disconnect/reset before headers. reset reason: connection failure",
	}[code]
	code, body, contentType := p.cfg.localReply.rewrite(req, code, []byte(text))
	text = string(body)
	return &http.Response{
		StatusCode:    code,
		Header:        http.Header{"Content-Type": {cmp.Or(contentType, "text/plain")}, "Content-Length": {strconv.Itoa(len(text))}},
		ContentLength: int64(len(text)),
		Body:          io.NopCloser(&eofReader{b: []byte(text)}),
	}
}

// eofReader returns io.EOF together with its last bytes, so a local reply's
// body is one data callback with end of stream, as Envoy encodes it.
type eofReader struct{ b []byte }

func (r *eofReader) Read(p []byte) (int, error) {
	n := copy(p, r.b)
	r.b = r.b[n:]
	if len(r.b) == 0 {
		return n, io.EOF
	}
	return n, nil
}
