package envoysim

import (
	"context"
	"io"
	"net/http"
	"sync"
)

// readSize is the largest data callback a bodySource produces.
const readSize = 32 << 10

// sourceDepth bounds how many data callbacks a bodySource reads ahead; with
// readSize it bounds the memory one body can hold before back-pressure.
const sourceDepth = 8

// chunk is one data callback: data, end of stream, or a read error. The
// chunk with eof carries the body's trailers, if any.
type chunk struct {
	data     []byte
	eof      bool
	err      error
	trailers headerList
}

// bodySource reads an HTTP body on its own goroutine and delivers it as data
// callbacks on ch, in order, ending with exactly one chunk that has eof or
// err set. The reader stays at most sourceDepth callbacks ahead.
type bodySource struct {
	ch       chan chunk
	stop     chan struct{}
	stopOnce sync.Once
	// exact is true when the callbacks come from a ResponseChunker and must
	// never be coalesced.
	exact bool
	// trailer, when set, returns the trailers known once the body has been
	// read to its end (an upstream response's Trailer).
	trailer func() http.Header
}

// startBody starts reading r. With split set, the whole body is read first
// and split's pieces become the callbacks (see Config.ResponseChunker).
func startBody(r io.Reader, split func([]byte) [][]byte) *bodySource {
	return startBodyTrailers(r, split, nil)
}

// startBodyTrailers is startBody for a body followed by trailers: the eof
// chunk carries what trailer returns then.
func startBodyTrailers(r io.Reader, split func([]byte) [][]byte, trailer func() http.Header) *bodySource {
	s := &bodySource{ch: make(chan chunk, sourceDepth), stop: make(chan struct{}), exact: split != nil, trailer: trailer}
	go s.run(r, split)
	return s
}

// trailers returns the body's trailers once it has ended.
func (s *bodySource) trailers() headerList {
	if s.trailer == nil {
		return nil
	}
	return regularHeaders(s.trailer())
}

func (s *bodySource) emit(c chunk) bool {
	select {
	case s.ch <- c:
		return true
	case <-s.stop:
		return false
	}
}

func (s *bodySource) run(r io.Reader, split func([]byte) [][]byte) {
	if split != nil {
		all, err := io.ReadAll(r)
		if err != nil {
			s.emit(chunk{err: err})
			return
		}
		pieces := split(all)
		if len(pieces) == 0 {
			s.emit(chunk{eof: true, trailers: s.trailers()})
			return
		}
		for i, p := range pieces {
			c := chunk{data: p}
			if i == len(pieces)-1 {
				c.eof, c.trailers = true, s.trailers()
			}
			if !s.emit(c) {
				return
			}
		}
		return
	}
	for {
		buf := make([]byte, readSize)
		n, err := r.Read(buf)
		switch {
		case err == io.EOF:
			s.emit(chunk{data: buf[:n], eof: true, trailers: s.trailers()})
			return
		case err != nil:
			if n > 0 && !s.emit(chunk{data: buf[:n]}) {
				return
			}
			s.emit(chunk{err: err})
			return
		case n > 0:
			if !s.emit(chunk{data: buf[:n]}) {
				return
			}
		}
	}
}

// close stops the reader goroutine at its next delivery. It does not close
// the underlying reader.
func (s *bodySource) close() {
	if s != nil {
		s.stopOnce.Do(func() { close(s.stop) })
	}
}

// drainAvailable takes every callback already delivered, without waiting, as
// Envoy holds data that arrives while a headers answer is awaited. It
// returns their data joined, whether the body ended, and any read error.
// ok is false when nothing had arrived. Exact sources are never drained.
func (s *bodySource) drainAvailable() (data []byte, eof bool, err error, ok bool) {
	if s.exact {
		return nil, false, nil, false
	}
	for {
		select {
		case c := <-s.ch:
			ok = true
			data = append(data, c.data...)
			if c.err != nil || c.eof {
				return data, c.eof, c.err, true
			}
		default:
			return data, false, nil, ok
		}
	}
}

// sourceReader adapts a bodySource to io.Reader for bodies that pass through
// unprocessed. Reads fail with errClientGone-like context errors when ctx ends.
type sourceReader struct {
	ctx  context.Context
	src  *bodySource
	buf  []byte
	done bool
	err  error
}

func (r *sourceReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.done {
			return 0, r.err
		}
		select {
		case c := <-r.src.ch:
			r.buf = c.data
			switch {
			case c.err != nil:
				r.done, r.err = true, c.err
			case c.eof:
				r.done, r.err = true, io.EOF
			}
		case <-r.ctx.Done():
			r.done, r.err = true, r.ctx.Err()
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}
