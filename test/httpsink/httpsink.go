// Package httpsink is a real HTTP receiver on the loopback interface for
// exporter tests: it records every request and answers as told — 200, any
// other status, or not at all (it hangs until the client gives up or the
// sink is closed). test/otlpsink and test/heliconesink build on it.
package httpsink

import (
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
)

// Request is one received request.
type Request struct {
	Method string
	Path   string
	Header http.Header
	Body   []byte
}

// Handler decides the answer to a request whose body was read; it may
// write headers and a body. Returning a status other than 0 overrides the
// sink's status.
type Handler func(w http.ResponseWriter, r Request) (status int)

// Server records requests. The zero status answers 200.
type Server struct {
	srv     *httptest.Server
	status  atomic.Int32
	hang    atomic.Bool
	handler Handler
	release chan struct{}
	once    sync.Once

	mu       sync.Mutex
	requests []Request
	arrived  atomic.Int64
}

// New starts a sink on 127.0.0.1; h may be nil.
func New(h Handler) *Server {
	s := &Server{handler: h, release: make(chan struct{})}
	s.srv = httptest.NewServer(http.HandlerFunc(s.serve))
	return s
}

// URL is the sink's base URL, e.g. http://127.0.0.1:40123.
func (s *Server) URL() string { return s.srv.URL }

// SetStatus makes the sink answer status (0: back to 200).
func (s *Server) SetStatus(status int) { s.status.Store(int32(status)) }

// SetHang makes the sink hold every request open without answering until
// the client cancels it or the sink is closed.
func (s *Server) SetHang(hang bool) { s.hang.Store(hang) }

// Arrived counts requests that reached the sink, answered or not.
func (s *Server) Arrived() int64 { return s.arrived.Load() }

// Requests returns the requests that were answered with a 2xx status, in
// arrival order.
func (s *Server) Requests() []Request {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Request(nil), s.requests...)
}

// Close releases hanging requests and stops the sink.
func (s *Server) Close() {
	s.once.Do(func() { close(s.release) })
	s.srv.CloseClientConnections()
	s.srv.Close()
}

func (s *Server) serve(w http.ResponseWriter, r *http.Request) {
	s.arrived.Add(1)
	body, err := io.ReadAll(r.Body)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.hang.Load() {
		select {
		case <-r.Context().Done():
		case <-s.release:
		}
		return
	}
	req := Request{Method: r.Method, Path: r.URL.Path, Header: r.Header.Clone(), Body: body}
	status := int(s.status.Load())
	if status == 0 {
		status = http.StatusOK
	}
	if s.handler != nil && status < 300 {
		if st := s.handler(w, req); st != 0 {
			status = st
		}
	}
	if status >= 200 && status < 300 {
		s.mu.Lock()
		s.requests = append(s.requests, req)
		s.mu.Unlock()
	}
	w.WriteHeader(status)
}
