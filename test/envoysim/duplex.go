package envoysim

import (
	"net/http"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// duplexResponse is the response phase in FULL_DUPLEX_STREAMED mode, as
// Envoy runs it (see doc.go for the source of each rule):
//   - response_headers goes out first; every data callback is sent at once
//     as a response_body message, without waiting for any answer (not even
//     the headers answer), and never reaches the client by itself;
//   - the headers are held until the response_headers answer, whose header
//     mutation applies (content-length stays stripped); if the whole body
//     had been sent by then, they stay held until the body ends;
//   - what reaches the client is exactly the bytes of the
//     body_mutation.streamed_response answers, in order, in any number;
//     an answer with end_of_stream ends the client's response cleanly, and
//     the upstream request is then cancelled if it was still running;
//   - upstream trailers are sent as response_trailers after a last body
//     message without end_of_stream; their answer ends the response with
//     the (mutated) trailers;
//   - there is no message timeout, and failure_mode_allow is ignored once
//     response data has been seen.
func (x *exchange) duplexResponse(h headerList, hasBody bool) {
	d := duplex{x: x, h: h, noBody: !hasBody}
	if x.md.respHeaders {
		if err := x.send(false, headersMsg(false, h, !hasBody)); err != nil {
			if x.fail(err) {
				d.h.del("content-length")
				d.passRest(hasBody)
			}
			return
		}
	} else {
		d.headersDone = true
	}
	d.h.del("content-length")
	if !hasBody {
		d.sentEnd = true
		if d.headersDone {
			x.writeHeaders(d.h)
			return
		}
	}
	if d.headersDone {
		x.writeHeaders(d.h)
		if err := x.write(nil); err != nil {
			x.clientGone()
			return
		}
	}
	x.finishBody(d.run())
}

// duplex is the state of one FULL_DUPLEX_STREAMED response.
type duplex struct {
	x           *exchange
	h           headerList
	noBody      bool // a headers-only response
	headersDone bool // the headers answer has been applied (or none was due)
	sentEnd     bool // the end of the body (or the trailers) went to the processor
	trailers    headerList
	held        [][]byte // injected data while the headers are still held
	ended       bool     // the client's response has ended
}

// run exchanges body messages until the client's response ends. Its
// errors are those of streamBody (finishBody settles them).
func (d *duplex) run() error {
	x := d.x
	for !d.ended {
		var reads <-chan chunk
		if !d.sentEnd {
			reads = x.respSrc.ch
		}
		select {
		case c := <-reads:
			if err := d.forward(c); err != nil {
				return err
			}
		case ans, ok := <-x.answers():
			if !ok {
				return d.failed(x.msg.st.endFailure())
			}
			x.p.stats.received.Add(1)
			if err := d.apply(ans); err != nil {
				return err
			}
		case <-x.ctx.Done():
			return errClientGone
		}
	}
	x.done = true
	x.msg.st.finish()
	if !d.sentEnd {
		// The router resets the upstream request of a stream that ended
		// before its upstream did.
		x.p.stats.endedEarly.Add(1)
		x.respSrc.close()
		if x.upCancel != nil {
			x.upCancel()
		}
	}
	return nil
}

// forward sends one data callback to the processor. The data is drained:
// only the processor's answers reach the client.
func (d *duplex) forward(c chunk) error {
	x := d.x
	// Any data callback turns fail-open off for the rest of the request.
	x.failClosed = true
	if c.err != nil {
		if len(c.data) > 0 {
			_ = x.send(false, bodyMsg(false, c.data, false))
		}
		return &sourceError{c.err}
	}
	d.sentEnd = c.eof
	if c.eof && len(c.trailers) > 0 && x.md.respTrailers {
		d.trailers = c.trailers
		if err := x.send(false, bodyMsg(false, c.data, false)); err != nil {
			return d.failed(err)
		}
		if err := x.send(false, trailersMsg(c.trailers)); err != nil {
			return d.failed(err)
		}
		return nil
	}
	if err := x.send(false, bodyMsg(false, c.data, c.eof)); err != nil {
		return d.failed(err)
	}
	return nil
}

// apply acts on one answer.
func (d *duplex) apply(ans *extprocv3.ProcessingResponse) error {
	x := d.x
	switch a := ans.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		x.immediate(a.ImmediateResponse)
		return errHandled
	case *extprocv3.ProcessingResponse_ResponseHeaders:
		if d.headersDone {
			return d.failed(spurious(ans))
		}
		return d.headersAnswer(a.ResponseHeaders.GetResponse())
	case *extprocv3.ProcessingResponse_ResponseBody:
		sr := a.ResponseBody.GetResponse().GetBodyMutation().GetStreamedResponse()
		if !d.headersDone || sr == nil {
			// A body answer while the headers answer is awaited, or one
			// without streamed_response, is spurious in this mode.
			return d.failed(spurious(ans))
		}
		return d.inject(sr.GetBody(), sr.GetEndOfStream())
	case *extprocv3.ProcessingResponse_ResponseTrailers:
		if d.trailers == nil {
			return d.failed(spurious(ans))
		}
		if err := x.mutate(&d.trailers, a.ResponseTrailers.GetHeaderMutation(), mutationRules{}); err != nil {
			x.fail(err)
			return errHandled
		}
		if err := d.inject(nil, false); err != nil {
			return err
		}
		for _, t := range d.trailers {
			x.w.Header().Add(http.TrailerPrefix+t.key, t.value)
		}
		d.ended = true
		return nil
	default:
		return d.failed(spurious(ans))
	}
}

// headersAnswer applies the response_headers answer. The headers go to the
// client now unless the whole body was already sent to the processor.
func (d *duplex) headersAnswer(cr *extprocv3.CommonResponse) error {
	x := d.x
	replacing := cr.GetStatus() == extprocv3.CommonResponse_CONTINUE_AND_REPLACE
	if err := x.mutate(&d.h, cr.GetHeaderMutation(), mutationRules{replacing: replacing, skipContentLength: true}); err != nil {
		x.fail(err)
		return errHandled
	}
	d.headersDone = true
	if replacing {
		// The body is replaced and no more body messages are exchanged;
		// envoysim also ends the stream here (see doc.go).
		x.md.respBody = extprocfilterv3.ProcessingMode_NONE
		x.done = true
		x.msg.st.finish()
		x.respSrc.close()
		x.writeHeaders(d.h)
		if body := applyBodyMutation(cr.GetBodyMutation(), nil); len(body) > 0 {
			if err := x.write(body); err != nil {
				return &sinkError{err}
			}
		}
		d.ended = true
		return nil
	}
	if d.noBody {
		x.writeHeaders(d.h)
		d.ended = true
		return nil
	}
	if d.sentEnd {
		return nil // held until the end of the body (Envoy's complete-body path)
	}
	x.writeHeaders(d.h)
	if err := x.write(nil); err != nil {
		return &sinkError{err}
	}
	return nil
}

// inject delivers the bytes of a streamed_response; end ends the client's
// response. While the headers are held the bytes are held with them.
func (d *duplex) inject(data []byte, end bool) error {
	x := d.x
	if !x.wroteHeader {
		if len(data) > 0 {
			d.held = append(d.held, data)
		}
		if !end && d.trailers == nil {
			return nil
		}
		x.writeHeaders(d.h)
		for _, b := range d.held {
			if err := x.write(b); err != nil {
				return &sinkError{err}
			}
		}
		d.held = nil
	} else if len(data) > 0 {
		if err := x.write(data); err != nil {
			return &sinkError{err}
		}
	}
	if end {
		d.ended = true
	}
	return nil
}

// failed ends processing after err. When the request may go on (the
// processor closed the stream with OK, or fail-open before any response
// data), the held headers go out and the data not yet sent to the
// processor passes unmodified; data the processor had and did not answer
// is lost, as in Envoy.
func (d *duplex) failed(err error) error {
	x := d.x
	if !x.fail(err) {
		if x.aborted {
			return errClientGone
		}
		return errHandled
	}
	if !x.wroteHeader {
		x.writeHeaders(d.h)
		for _, b := range d.held {
			if err := x.write(b); err != nil {
				return &sinkError{err}
			}
		}
	}
	d.ended = true
	if d.sentEnd {
		return nil
	}
	return x.copyRest(x.respSrc, x.write)
}

// passRest forwards a response unprocessed after the stream could not be
// used before any response data (fail-open).
func (d *duplex) passRest(hasBody bool) {
	x := d.x
	x.writeHeaders(d.h)
	if hasBody {
		x.finishBody(x.copyRest(x.respSrc, x.write))
	}
}
