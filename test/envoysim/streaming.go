package envoysim

import (
	"errors"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// pendingChunk is a body chunk sent to the processor and not yet answered.
type pendingChunk struct {
	data     []byte
	eos      bool
	deadline time.Time
}

// bodyAnswer extracts the CommonResponse of a body answer for the given
// direction; immediate is set for an ImmediateResponse; ok is false for any
// other kind (a spurious message).
func bodyAnswer(request bool, ans *extprocv3.ProcessingResponse) (cr *extprocv3.CommonResponse, immediate *extprocv3.ImmediateResponse, ok bool) {
	switch a := ans.GetResponse().(type) {
	case *extprocv3.ProcessingResponse_ImmediateResponse:
		return nil, a.ImmediateResponse, true
	case *extprocv3.ProcessingResponse_RequestBody:
		return a.RequestBody.GetResponse(), nil, request
	case *extprocv3.ProcessingResponse_ResponseBody:
		return a.ResponseBody.GetResponse(), nil, !request
	}
	return nil, nil, false
}

// streamBody runs one direction in STREAMED mode, as Envoy does: data held
// while the headers answer was awaited goes out first as one chunk; then each
// data callback is sent at once (pipelined, without waiting for earlier
// answers) and queued; each answer is matched to the oldest queued chunk, its
// body mutation applied (a header mutation is ignored) and the result handed
// to out, in order. Reading stops while more than BufferLimit bytes are
// queued. Each queued chunk must be answered within MessageTimeout of being
// sent.
//
// It returns nil once the end of the body has been answered and delivered;
// errHandled when processing failed and the exchange was answered (or marked
// for reset); errClientGone; a *sourceError or *sinkError. When processing
// ends but the request may continue (processor closed the stream, or
// FailureModeAllow), the queued chunks and the rest of the body are delivered
// unmodified.
func (x *exchange) streamBody(request bool, src *bodySource, out func([]byte) error) error {
	var queue []pendingChunk
	queued, sentEnd := 0, false
	timer := time.NewTimer(time.Hour)
	timer.Stop()
	defer timer.Stop()
	rearm := func() {
		if len(queue) > 0 {
			timer.Reset(time.Until(queue[0].deadline))
		} else {
			timer.Stop()
		}
	}
	sendChunk := func(data []byte, eos bool) error {
		queue = append(queue, pendingChunk{data: data, eos: eos, deadline: time.Now().Add(x.p.cfg.MessageTimeout)})
		queued += len(data)
		sentEnd = sentEnd || eos
		if len(queue) == 1 {
			rearm()
		}
		return x.send(request, bodyMsg(request, data, eos))
	}
	unprocessed := func() error {
		for _, c := range queue {
			if len(c.data) > 0 {
				if err := out(c.data); err != nil {
					return &sinkError{err}
				}
			}
		}
		if sentEnd {
			return nil
		}
		return x.copyRest(src, out)
	}
	failed := func(err error) error {
		if x.fail(err) {
			return unprocessed()
		}
		if x.aborted {
			return errClientGone
		}
		return errHandled
	}

	// Data that arrived before a source failure still reaches the
	// processor, as Envoy's codec delivers it before the reset.
	if data, eof, err, ok := src.drainAvailable(); ok {
		if err != nil {
			if len(data) > 0 {
				_ = sendChunk(data, false)
			}
			return &sourceError{err}
		}
		if err := sendChunk(data, eof); err != nil {
			return failed(err)
		}
	}
	for !sentEnd || len(queue) > 0 {
		var reads <-chan chunk
		if !sentEnd && queued <= x.p.cfg.BufferLimit {
			reads = src.ch
		}
		select {
		case c := <-reads:
			if c.err != nil {
				if len(c.data) > 0 {
					_ = sendChunk(c.data, false)
				}
				return &sourceError{c.err}
			}
			if err := sendChunk(c.data, c.eof); err != nil {
				return failed(err)
			}
		case ans, ok := <-x.answers():
			if !ok {
				return failed(x.msg.st.endFailure())
			}
			x.p.stats.received.Add(1)
			cr, immediate, good := bodyAnswer(request, ans)
			switch {
			case immediate != nil:
				x.immediate(immediate)
				return errHandled
			case !good, cr.GetBodyMutation().GetStreamedResponse() != nil:
				return failed(spurious(ans))
			}
			c := queue[0]
			queue = queue[1:]
			queued -= len(c.data)
			rearm()
			if data := applyBodyMutation(cr.GetBodyMutation(), c.data); len(data) > 0 {
				if err := out(data); err != nil {
					return &sinkError{err}
				}
			}
		case <-timer.C:
			return failed(&failure{kind: failTimeout, detail: "per-message timeout exceeded"})
		case <-x.ctx.Done():
			return errClientGone
		}
	}
	return nil
}

// partialBody runs one direction in BUFFERED_PARTIAL mode: it collects the
// body until it ends or passes BufferLimit, sends what it has (end_of_stream
// only if the body ended) and returns that data after the answer's body
// mutation (a header mutation is ignored). eof reports whether the body
// ended; if not, the rest of src must pass unprocessed. ok is false when the
// exchange has been answered or the client went away.
func (x *exchange) partialBody(request bool, src *bodySource) (data []byte, eof, ok bool) {
	data, eof, err := x.collect(src, x.p.cfg.BufferLimit)
	if err != nil {
		if request || errors.Is(err, errClientGone) {
			x.clientGone()
		} else {
			x.p.stats.upstreamFail.Add(1)
			x.reset = true
		}
		return nil, false, false
	}
	ans, err := x.call(request, bodyMsg(request, data, eof))
	if err != nil {
		return data, eof, x.fail(err)
	}
	cr, immediate, good := bodyAnswer(request, ans)
	switch {
	case immediate != nil:
		x.immediate(immediate)
		return nil, false, false
	case !good:
		return data, eof, x.fail(spurious(ans))
	}
	return applyBodyMutation(cr.GetBodyMutation(), data), eof, true
}
