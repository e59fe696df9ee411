package envoysim

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// waitFor is how long tests wait for asynchronous effects (stream ends).
const waitFor = 5 * time.Second

// script is a fake processor's behaviour for one stream.
type script func(s *procStream) error

// fakeProcessor is a real gRPC ext_proc server whose streams follow a script
// and record what they received.
type fakeProcessor struct {
	extprocv3.UnimplementedExternalProcessorServer
	addr   string
	script script
	mu     sync.Mutex
	all    []*procStream
}

func startProcessor(t *testing.T, sc script) *fakeProcessor {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	fp := &fakeProcessor{addr: ln.Addr().String(), script: sc}
	srv := grpc.NewServer(grpc.MaxRecvMsgSize(16 << 20)) // bodies up to the largest BufferLimit a test uses
	extprocv3.RegisterExternalProcessorServer(srv, fp)
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(srv.Stop)
	return fp
}

func (fp *fakeProcessor) Process(srv extprocv3.ExternalProcessor_ProcessServer) error {
	s := &procStream{srv: srv, ended: make(chan struct{})}
	fp.mu.Lock()
	fp.all = append(fp.all, s)
	fp.mu.Unlock()
	defer close(s.ended)
	return fp.script(s)
}

// streams returns the streams opened so far.
func (fp *fakeProcessor) streams() []*procStream {
	fp.mu.Lock()
	defer fp.mu.Unlock()
	return append([]*procStream(nil), fp.all...)
}

// only waits for the single stream of a test and for its handler to return.
func (fp *fakeProcessor) only(t *testing.T) *procStream {
	t.Helper()
	require.Eventually(t, func() bool { return len(fp.streams()) > 0 }, waitFor, time.Millisecond)
	ss := fp.streams()
	require.Len(t, ss, 1)
	select {
	case <-ss[0].ended:
	case <-time.After(waitFor):
		t.Fatal("processor stream did not end")
	}
	return ss[0]
}

// procStream is one Process stream on the fake processor side.
type procStream struct {
	srv    extprocv3.ExternalProcessor_ProcessServer
	ended  chan struct{}
	mu     sync.Mutex
	msgs   []*extprocv3.ProcessingRequest
	events []string
}

func (s *procStream) note(ev string) {
	s.mu.Lock()
	s.events = append(s.events, ev)
	s.mu.Unlock()
}

// recv receives one message and records it (or "eof" / "canceled").
func (s *procStream) recv() (*extprocv3.ProcessingRequest, error) {
	m, err := s.srv.Recv()
	switch {
	case err == nil:
		s.mu.Lock()
		s.msgs = append(s.msgs, m)
		s.events = append(s.events, kindOf(m))
		s.mu.Unlock()
	case errors.Is(err, io.EOF):
		s.note("eof")
	case status.Code(err) == codes.Canceled:
		s.note("canceled")
	default:
		s.note("error")
	}
	return m, err
}

func (s *procStream) send(r *extprocv3.ProcessingResponse) error { return s.srv.Send(r) }

// waitCanceled blocks until the stream context ends and records it.
func (s *procStream) waitCanceled() {
	<-s.srv.Context().Done()
	s.note("canceled")
}

func (s *procStream) messages() []*extprocv3.ProcessingRequest {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]*extprocv3.ProcessingRequest(nil), s.msgs...)
}

func (s *procStream) log() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]string(nil), s.events...)
}

// kinds lists the kinds of the messages received, in order.
func (s *procStream) kinds() []string {
	var out []string
	for _, m := range s.messages() {
		out = append(out, kindOf(m))
	}
	return out
}

func kindOf(m *extprocv3.ProcessingRequest) string {
	switch m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return "request_headers"
	case *extprocv3.ProcessingRequest_RequestBody:
		return "request_body"
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return "response_headers"
	case *extprocv3.ProcessingRequest_ResponseBody:
		return "response_body"
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return "response_trailers"
	}
	return "other"
}

// answerAll answers every message with fn's result (nil: no answer) until
// EOF, then waits for the stream to be reset, as a careful processor would.
func answerAll(fn func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse) script {
	return func(s *procStream) error {
		for {
			m, err := s.recv()
			if errors.Is(err, io.EOF) {
				s.waitCanceled()
				return nil
			}
			if err != nil {
				return nil
			}
			if r := fn(m); r != nil {
				if err := s.send(r); err != nil {
					return nil
				}
			}
		}
	}
}

// cont answers m with an empty CONTINUE of the matching kind.
func cont(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse { return answer(m, nil) }

// answer answers m with cr in the matching kind.
func answer(m *extprocv3.ProcessingRequest, cr *extprocv3.CommonResponse) *extprocv3.ProcessingResponse {
	switch m.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{Response: cr}}}
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{Response: cr}}}
	case *extprocv3.ProcessingRequest_RequestBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{Response: cr}}}
	case *extprocv3.ProcessingRequest_ResponseBody:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{Response: cr}}}
	}
	panic("unexpected message")
}

func immediate(code int, body string, set ...*corev3.HeaderValueOption) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ImmediateResponse{ImmediateResponse: &extprocv3.ImmediateResponse{
		Status:  &typev3.HttpStatus{Code: typev3.StatusCode(code)},
		Headers: &extprocv3.HeaderMutation{SetHeaders: set},
		Body:    []byte(body),
	}}}
}

// setRaw sets a header the right way (raw_value); setAppend appends.
func setRaw(k, v string) *corev3.HeaderValueOption {
	return &corev3.HeaderValueOption{Header: &corev3.HeaderValue{Key: k, RawValue: []byte(v)}}
}

func setAppend(k, v string) *corev3.HeaderValueOption {
	o := setRaw(k, v)
	o.Append = wrapperspb.Bool(true)
	return o
}

func headerMut(set ...*corev3.HeaderValueOption) *extprocv3.CommonResponse {
	return &extprocv3.CommonResponse{HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: set}}
}

func bodyMut(b string) *extprocv3.BodyMutation {
	return &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_Body{Body: []byte(b)}}
}

// headerOf returns the raw value of key in a HeaderMap.
func headerOf(hm *corev3.HeaderMap, key string) (string, bool) {
	for _, h := range hm.GetHeaders() {
		if h.GetKey() == key {
			return string(h.GetRawValue()), true
		}
	}
	return "", false
}

// seenRequest is what the upstream received.
type seenRequest struct {
	Method, URI, Host string
	Header            http.Header
	Body              string
	ContentLength     int64
	Chunked           bool
}

// upstream is a recording httptest upstream.
type upstream struct {
	*httptest.Server
	mu   sync.Mutex
	seen []seenRequest
}

// startUpstream serves reply (or a JSON 200 when nil) and records requests.
func startUpstream(t *testing.T, reply http.HandlerFunc) *upstream {
	t.Helper()
	if reply == nil {
		reply = func(w http.ResponseWriter, _ *http.Request) {
			w.Header().Set("Content-Type", "application/json")
			_, _ = io.WriteString(w, `{"ok":true}`)
		}
	}
	u := &upstream{}
	u.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		u.mu.Lock()
		u.seen = append(u.seen, seenRequest{
			Method: r.Method, URI: r.RequestURI, Host: r.Host, Header: r.Header.Clone(), Body: string(body),
			ContentLength: r.ContentLength, Chunked: len(r.TransferEncoding) > 0 && r.TransferEncoding[0] == "chunked",
		})
		u.mu.Unlock()
		reply(w, r)
	}))
	t.Cleanup(u.Close)
	return u
}

func (u *upstream) requests() []seenRequest {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]seenRequest(nil), u.seen...)
}

// harness is a processor, an upstream and an envoysim Proxy in front of them.
type harness struct {
	proc  *fakeProcessor
	up    *upstream
	proxy *Proxy
	front *httptest.Server
}

func newHarness(t *testing.T, sc script, reply http.HandlerFunc, tweak func(*Config)) *harness {
	t.Helper()
	h := &harness{proc: startProcessor(t, sc), up: startUpstream(t, reply)}
	cfg := DefaultConfig(h.proc.addr, h.up.URL)
	cfg.ProcessingMode = StreamedMode()  // the mode most tests were written for; duplex tests set theirs
	cfg.MessageTimeout = 2 * time.Second // generous: -race on a busy machine
	cfg.Logf = t.Logf
	if tweak != nil {
		tweak(&cfg)
	}
	p, err := New(cfg)
	require.NoError(t, err)
	h.proxy = p
	h.front = httptest.NewServer(p)
	t.Cleanup(func() {
		h.front.Close()
		require.NoError(t, p.Close())
	})
	return h
}

// do sends a request through the proxy and returns the response with its body read.
func (h *harness) do(t *testing.T, method, path, body string, hdr ...string) (*http.Response, string) {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req, err := http.NewRequestWithContext(context.Background(), method, h.front.URL+path, rd)
	require.NoError(t, err)
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	resp, err := h.front.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp, string(b)
}
