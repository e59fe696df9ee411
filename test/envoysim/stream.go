package envoysim

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/structpb"
)

// failureKind says why the processor could not be used for the rest of a request.
type failureKind int

const (
	failSpurious failureKind = iota // answer of the wrong kind or with no oneof
	failTimeout                     // message_timeout expired
	failGRPC                        // stream failed with a non-OK status
	failClosedOK                    // processor ended the stream with OK early
	failMutation                    // malformed mutation or content-length mismatch
)

// failure is a processor failure; how it ends the request depends on its kind
// and on FailureModeAllow.
type failure struct {
	kind   failureKind
	detail string
}

func (f *failure) Error() string { return "ext_proc: " + f.detail }

// errClientGone means the downstream client went away (request context done
// or a write to it failed).
var errClientGone = errors.New("client went away")

// extStream is the one ext_proc stream of an HTTP request. Like Envoy's
// gRPC client it never blocks the request: sends are queued for a sender
// goroutine, and everything the processor sends is read at once by a
// receiver goroutine and delivered in order on answers, which is closed
// (after endErr is set) when the stream ends or the request has finished
// with it.
type extStream struct {
	p       *Proxy
	ctx     context.Context
	cancel  context.CancelFunc
	client  extprocv3.ExternalProcessor_ProcessClient
	answers chan *extprocv3.ProcessingResponse
	endErr  error // why answers was closed; read only after it is closed

	mu       sync.Mutex
	outbox   []*extprocv3.ProcessingRequest
	closing  bool // half-close once outbox is empty
	inbox    []*extprocv3.ProcessingResponse
	recvEnd  error // Recv's final error
	sendWake chan struct{}
	recvWake chan struct{}
	recvDone chan struct{} // closed when Recv has failed: the processor ended the stream

	finishedCh chan struct{} // closed by finish
	finished   bool          // used by the request goroutine only
}

// openStream starts the Process stream. Its context is independent of the
// HTTP request so that shutdown can half-close before resetting.
func (p *Proxy) openStream() (*extStream, error) {
	ctx, cancel := context.WithCancel(context.Background())
	client, err := p.client.Process(ctx)
	if err != nil {
		cancel()
		return nil, err
	}
	p.stats.streams.Add(1)
	s := &extStream{
		p: p, ctx: ctx, cancel: cancel, client: client,
		answers:    make(chan *extprocv3.ProcessingResponse),
		sendWake:   make(chan struct{}, 1),
		recvWake:   make(chan struct{}, 1),
		recvDone:   make(chan struct{}),
		finishedCh: make(chan struct{}),
	}
	p.closers.Add(3)
	go s.sendLoop()
	go s.receive()
	go s.pump()
	return s, nil
}

func wake(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

// enqueue queues req for sending.
func (s *extStream) enqueue(req *extprocv3.ProcessingRequest) {
	s.mu.Lock()
	s.outbox = append(s.outbox, req)
	s.mu.Unlock()
	wake(s.sendWake)
}

// sendLoop sends queued messages in order; after finish it half-closes, then
// resets the stream once the processor has ended it, CloseGrace has passed,
// or the Proxy is closing.
func (s *extStream) sendLoop() {
	defer s.p.closers.Done()
	defer s.cancel()
	for {
		s.mu.Lock()
		if len(s.outbox) > 0 {
			req := s.outbox[0]
			s.outbox[0] = nil
			s.outbox = s.outbox[1:]
			s.mu.Unlock()
			if err := s.client.Send(req); err != nil {
				s.p.cfg.Logf("envoysim: send: %v (Recv reports how the stream ended)", err)
			}
			continue
		}
		closing := s.closing
		s.mu.Unlock()
		if closing {
			break
		}
		select {
		case <-s.sendWake:
		case <-s.ctx.Done():
			return
		case <-s.p.closing:
			return // Proxy.Close resets streams still in use
		}
	}
	_ = s.client.CloseSend()
	t := time.NewTimer(s.p.cfg.CloseGrace)
	defer t.Stop()
	select {
	case <-s.recvDone:
	case <-t.C:
	case <-s.p.closing:
	}
}

// receive reads everything the processor sends, never leaving it blocked.
func (s *extStream) receive() {
	defer s.p.closers.Done()
	defer close(s.recvDone)
	for {
		m, err := s.client.Recv()
		s.mu.Lock()
		if err != nil {
			s.recvEnd = err
		} else {
			s.inbox = append(s.inbox, m)
		}
		s.mu.Unlock()
		wake(s.recvWake)
		if err != nil {
			return
		}
	}
}

// pump delivers received messages on answers, in order, until the stream
// ends or finish is called.
func (s *extStream) pump() {
	defer s.p.closers.Done()
	defer close(s.answers)
	for {
		s.mu.Lock()
		if len(s.inbox) > 0 {
			m := s.inbox[0]
			s.inbox = s.inbox[1:]
			s.mu.Unlock()
			select {
			case s.answers <- m:
				continue
			case <-s.finishedCh:
				s.endErr = context.Canceled
				return
			}
		}
		end := s.recvEnd
		s.mu.Unlock()
		if end != nil {
			s.endErr = end
			return
		}
		select {
		case <-s.recvWake:
		case <-s.finishedCh:
			s.endErr = context.Canceled
			return
		}
	}
}

// endFailure classifies the end of the stream; call it only after answers
// has been closed.
func (s *extStream) endFailure() *failure {
	if errors.Is(s.endErr, io.EOF) {
		return &failure{kind: failClosedOK, detail: "processor closed the stream"}
	}
	return &failure{kind: failGRPC, detail: fmt.Sprintf("stream failed: %v", status.Convert(s.endErr).Message())}
}

// finish closes the stream the way Envoy does: half-close after the queued
// messages, then reset (see sendLoop). Answers still to come are dropped. It
// is idempotent and does not wait.
func (s *extStream) finish() {
	if s == nil || s.finished {
		return
	}
	s.finished = true
	close(s.finishedCh)
	s.mu.Lock()
	s.closing = true
	s.mu.Unlock()
	wake(s.sendWake)
}

// messenger sends ProcessingRequests for one HTTP request, opening the stream
// at the first message and decorating messages the way Envoy does.
type messenger struct {
	p         *Proxy
	st        *extStream
	sentFirst bool
	sentAttrs bool
	protocol  *extprocv3.ProtocolConfiguration
}

// send delivers req. The first message carries protocol_config, every
// message metadata_context, and the first request-direction message the
// route-name attribute. An error is a *failure (stream could not be opened);
// a broken stream is reported later through answers instead.
func (m *messenger) send(req *extprocv3.ProcessingRequest, requestDirection bool) error {
	if m.st == nil {
		st, err := m.p.openStream()
		if err != nil {
			m.p.cfg.Logf("envoysim: opening ext_proc stream: %v", err)
			return &failure{kind: failGRPC, detail: fmt.Sprintf("opening stream: %v", status.Convert(err).Message())}
		}
		m.st = st
	}
	if !m.sentFirst {
		m.sentFirst = true
		req.ProtocolConfig = m.protocol
	}
	if md := m.p.cfg.MetadataContext; md != nil {
		req.MetadataContext = proto.Clone(md).(*corev3.Metadata)
	}
	if requestDirection && !m.sentAttrs {
		m.sentAttrs = true
		if m.p.cfg.RouteName != "" {
			req.Attributes = map[string]*structpb.Struct{
				"envoy.filters.http.ext_proc": {Fields: map[string]*structpb.Value{
					"xds.route_name": structpb.NewStringValue(m.p.cfg.RouteName),
				}},
			}
		}
	}
	m.p.stats.sent.Add(1)
	m.st.enqueue(req)
	return nil
}

// protocolConfig is what Envoy announces in the first message.
func protocolConfig(md modes) *extprocv3.ProtocolConfiguration {
	return &extprocv3.ProtocolConfiguration{
		RequestBodyMode:                         md.reqBody,
		ResponseBodyMode:                        md.respBody,
		SendBodyWithoutWaitingForHeaderResponse: false,
	}
}

// headersMsg and bodyMsg build the two kinds of ProcessingRequest envoysim sends.
func headersMsg(request bool, h headerList, endOfStream bool) *extprocv3.ProcessingRequest {
	hh := &extprocv3.HttpHeaders{Headers: h.proto(), EndOfStream: endOfStream}
	if request {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}}
}

// trailersMsg is the response_trailers message (only responses send trailers).
func trailersMsg(t headerList) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{
		ResponseTrailers: &extprocv3.HttpTrailers{Trailers: t.proto()},
	}}
}

func bodyMsg(request bool, data []byte, endOfStream bool) *extprocv3.ProcessingRequest {
	hb := &extprocv3.HttpBody{Body: data, EndOfStream: endOfStream}
	if request {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: hb}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: hb}}
}

// applyOverride changes md as Envoy does for a mode_override: header modes
// other than SKIP mean SEND; body modes envoysim cannot reproduce are kept
// unchanged (and logged).
func (p *Proxy) applyOverride(md *modes, o *extprocfilterv3.ProcessingMode) {
	next := modesOf(o)
	if !supportedBodyMode(next.reqBody) {
		p.cfg.Logf("envoysim: ignoring mode_override request_body_mode %s", next.reqBody)
		next.reqBody = md.reqBody
	}
	if !supportedBodyMode(next.respBody) {
		p.cfg.Logf("envoysim: ignoring mode_override response_body_mode %s", next.respBody)
		next.respBody = md.respBody
	}
	*md = next
}

// shouldRemoveContentLength is Envoy's rule for stripping content-length at
// header time: the body will be processed in pieces, or without the headers.
func shouldRemoveContentLength(body extprocfilterv3.ProcessingMode_BodySendMode, sendHeaders bool) bool {
	return body == extprocfilterv3.ProcessingMode_STREAMED ||
		body == extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL ||
		body == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED ||
		(body == extprocfilterv3.ProcessingMode_BUFFERED && !sendHeaders)
}
