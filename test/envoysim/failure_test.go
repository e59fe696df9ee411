package envoysim

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// readAll sends a request and reads the body, returning the read error
// instead of failing (a reset response is what some tests expect).
func (h *harness) readAll(t *testing.T, method, path, body string) (*http.Response, string, error) {
	t.Helper()
	req, err := http.NewRequestWithContext(context.Background(), method, h.front.URL+path, strings.NewReader(body))
	require.NoError(t, err)
	resp, err := h.front.Client().Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp, string(b), err
}

// silent reads every message and never answers.
func silent(s *procStream) error {
	for {
		if _, err := s.recv(); err != nil {
			if errors.Is(err, io.EOF) {
				s.waitCanceled()
			}
			return nil
		}
	}
}

// failing answers the first n-1 messages and fails the stream on the nth.
func failing(n int) script {
	return func(s *procStream) error {
		for i := 1; ; i++ {
			m, err := s.recv()
			if err != nil {
				return nil
			}
			if i == n {
				return status.Error(codes.Internal, "processor broke")
			}
			if err := s.send(cont(m)); err != nil {
				return nil
			}
		}
	}
}

func TestProcessorFailures(t *testing.T) {
	wrongKind := func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
		}
		return cont(m)
	}
	noOneof := func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetRequestBody() != nil {
			return &extprocv3.ProcessingResponse{}
		}
		return cont(m)
	}
	bodyForHeaders := func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetRequestHeaders() != nil {
			return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
		}
		return cont(m)
	}
	tests := []struct {
		name     string
		script   script
		failOpen bool
		onError  int
		wantCode int
		stat     func(Stats) int64
	}{
		{"wrong kind is spurious: 500", answerAll(wrongKind), false, 0, 500, func(s Stats) int64 { return s.SpuriousMessages }},
		{"no oneof is spurious: status_on_error", answerAll(noOneof), false, 503, 503, func(s Stats) int64 { return s.SpuriousMessages }},
		{"body answer to headers is spurious", answerAll(bodyForHeaders), false, 0, 500, func(s Stats) int64 { return s.SpuriousMessages }},
		{"spurious with failure_mode_allow", answerAll(wrongKind), true, 0, 200, func(s Stats) int64 { return s.SpuriousMessages }},
		{"message timeout: 504", silent, false, 0, 504, func(s Stats) int64 { return s.Timeouts }},
		{"message timeout with failure_mode_allow", silent, true, 0, 200, func(s Stats) int64 { return s.Timeouts }},
		{"gRPC error: 500", failing(1), false, 0, 500, func(s Stats) int64 { return s.GRPCErrors }},
		{"gRPC error: status_on_error", failing(2), false, 502, 502, func(s Stats) int64 { return s.GRPCErrors }},
		{"gRPC error with failure_mode_allow", failing(1), true, 0, 200, func(s Stats) int64 { return s.GRPCErrors }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.script, nil, func(c *Config) {
				c.FailureModeAllow = tc.failOpen
				c.StatusOnError = tc.onError
				c.MessageTimeout = time.Second // generous: answers from a loaded CI machine must not time out by accident
			})
			resp, body := h.do(t, http.MethodPost, "/v1/completions", `{"prompt":"hi"}`)
			assert.Equal(t, tc.wantCode, resp.StatusCode)
			assert.Equal(t, int64(1), tc.stat(h.proxy.Stats()))
			s := h.proc.only(t)
			if tc.failOpen {
				assert.Equal(t, `{"ok":true}`, body)
				reqs := h.up.requests()
				require.Len(t, reqs, 1)
				assert.Equal(t, `{"prompt":"hi"}`, reqs[0].Body, "forwarded unmodified")
				assert.Equal(t, int64(1), h.proxy.Stats().FailOpen)
			} else {
				assert.Empty(t, body)
				assert.Empty(t, h.up.requests(), "the upstream is never contacted")
			}
			assert.NotContains(t, s.kinds(), "response_headers", "no further messages on a failed stream")
		})
	}
}

func TestUnreachableProcessor(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	dead := ln.Addr().String()
	require.NoError(t, ln.Close())
	for _, failOpen := range []bool{false, true} {
		t.Run(map[bool]string{false: "fail closed", true: "fail open"}[failOpen], func(t *testing.T) {
			h := newHarness(t, answerAll(cont), nil, func(c *Config) {
				c.ProcessorAddr = dead
				c.FailureModeAllow = failOpen
			})
			resp, _ := h.do(t, http.MethodPost, "/v1/completions", "{}")
			assert.Equal(t, map[bool]int{false: 500, true: 200}[failOpen], resp.StatusCode)
			assert.Equal(t, int64(1), h.proxy.Stats().GRPCErrors)
		})
	}
}

func TestProcessorClosingWithOKLetsTheRequestProceed(t *testing.T) {
	h := newHarness(t, func(s *procStream) error {
		m, err := s.recv()
		if err != nil {
			return nil
		}
		_ = s.send(answer(m, headerMut(setRaw("x-seen", "1"))))
		return nil // ends the stream with OK mid-request
	}, nil, nil)
	resp, body := h.do(t, http.MethodPost, "/v1/completions", "original")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"ok":true}`, body)
	reqs := h.up.requests()
	require.Len(t, reqs, 1)
	assert.Equal(t, "original", reqs[0].Body)
	assert.Equal(t, "1", reqs[0].Header.Get("X-Seen"), "the mutation received before the close stands")
	assert.Equal(t, []string{"request_headers"}, h.proc.only(t).kinds())
	assert.Equal(t, int64(1), h.proxy.Stats().StreamsClosedByProcessor)
}

// TestFailureMidResponse pins failures after the response headers went out:
// Envoy can no longer answer locally, so it resets the client — unless the
// request may continue, in which case the queued and remaining chunks flow
// unmodified.
func TestFailureMidResponse(t *testing.T) {
	const body = "0123456789abcdefghijklmnopqrstuvwxyz"
	closeOK := func(s *procStream) error { // answers up to the first body chunk, then ends with OK
		for {
			m, err := s.recv()
			if err != nil {
				return nil
			}
			_ = s.send(cont(m))
			if m.GetResponseBody() != nil {
				return nil
			}
		}
	}
	silentBody := answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseBody() != nil {
			return nil
		}
		return cont(m)
	})
	tests := []struct {
		name      string
		script    script
		failOpen  bool
		wantReset bool
	}{
		{"timeout resets", silentBody, false, true},
		{"timeout with failure_mode_allow", silentBody, true, false},
		{"gRPC error resets", failing(5), false, true},
		{"gRPC error with failure_mode_allow", failing(5), true, false},
		{"processor closes with OK", closeOK, false, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.script, fixedBody(body, "text/plain"), func(c *Config) {
				c.MessageTimeout = time.Second // generous: answers from a loaded CI machine must not time out by accident
				c.FailureModeAllow = tc.failOpen
				c.ResponseChunker = splitAt(10, 20)
			})
			resp, got, err := h.readAll(t, http.MethodGet, "/", "")
			assert.Equal(t, http.StatusOK, resp.StatusCode)
			h.proc.only(t)
			if tc.wantReset {
				assert.ErrorIs(t, err, io.ErrUnexpectedEOF)
				assert.Equal(t, int64(1), h.proxy.Stats().ResetResponses)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, body, got, "the rest flows unmodified")
		})
	}
}

func TestStreamEndsWithEOFThenCancellation(t *testing.T) {
	h := newHarness(t, answerAll(cont), nil, nil)
	resp, _ := h.do(t, http.MethodPost, "/v1/completions", "{}")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	s := h.proc.only(t)
	assert.Equal(t, []string{"request_headers", "request_body", "response_headers", "response_body", "eof", "canceled"}, s.log())
}

func TestClientAbortMidResponse(t *testing.T) {
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	h := newHarness(t, answerAll(cont), func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		_, _ = io.WriteString(w, "data: first\n\n")
		w.(http.Flusher).Flush()
		select { // the rest never comes
		case <-r.Context().Done():
		case <-release:
		}
	}, nil)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.front.URL+"/v1/chat/completions", strings.NewReader(`{"stream":true}`))
	require.NoError(t, err)
	resp, err := h.front.Client().Do(req)
	require.NoError(t, err)
	first := make([]byte, len("data: first\n\n"))
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)
	cancel() // the client goes away mid-response
	_ = resp.Body.Close()

	s := h.proc.only(t)
	log := s.log()
	require.GreaterOrEqual(t, len(log), 2)
	assert.Equal(t, []string{"eof", "canceled"}, log[len(log)-2:], "half-close, then reset")
	for _, b := range responseBodies(s) {
		assert.False(t, b.GetEndOfStream(), "the response never ended")
	}
	require.Eventually(t, func() bool { return h.proxy.Stats().ClientAborts == 1 }, waitFor, time.Millisecond)
}

func TestUpstreamResetMidBody(t *testing.T) {
	h := newHarness(t, answerAll(cont), func(w http.ResponseWriter, _ *http.Request) {
		conn, buf, err := w.(http.Hijacker).Hijack()
		if err != nil {
			return
		}
		_, _ = buf.WriteString("HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n9\r\ndata: 1\n\n\r\n")
		_ = buf.Flush()
		_ = conn.Close() // reset before the terminating chunk
	}, nil)
	resp, got, err := h.readAll(t, http.MethodPost, "/v1/chat/completions", `{"stream":true}`)
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Error(t, err, "the client sees a truncated body")
	assert.True(t, strings.HasPrefix("data: 1\n\n", got))
	s := h.proc.only(t)
	log := s.log()
	assert.Equal(t, []string{"eof", "canceled"}, log[len(log)-2:])
	st := h.proxy.Stats()
	assert.Equal(t, int64(1), st.UpstreamFailures)
	assert.Equal(t, int64(1), st.ResetResponses)
}
