package envoysim

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// duplexMode configures a FULL_DUPLEX_STREAMED response body (request
// body BUFFERED), as spendguard's envoy.yaml does.
func duplexMode(c *Config) { c.ProcessingMode = SpendguardMode() }

// streamed is a response_body answer carrying a streamed_response.
func streamed(body string, eos bool) *extprocv3.ProcessingResponse {
	return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{
		Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_StreamedResponse{
			StreamedResponse: &extprocv3.StreamedBodyResponse{Body: []byte(body), EndOfStream: eos},
		}}},
	}}}
}

// echo answers headers and trailers with CONTINUE and each response body
// chunk with one streamed_response of its bytes.
func echo(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	if b := m.GetResponseBody(); b != nil {
		return streamed(string(b.GetBody()), b.GetEndOfStream())
	}
	if m.GetResponseTrailers() != nil {
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return cont(m)
}

// endless streams "tick\n" until its client goes away, which it reports
// by closing gone.
func endless(gone chan<- struct{}) http.HandlerFunc {
	var once sync.Once
	return func(w http.ResponseWriter, r *http.Request) {
		defer once.Do(func() { close(gone) })
		w.Header().Set("Content-Type", "text/event-stream")
		for {
			if _, err := io.WriteString(w, "tick\n"); err != nil {
				return
			}
			w.(http.Flusher).Flush()
			select {
			case <-r.Context().Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// TestDuplexRechunksAndWaitsForNothing: body chunks reach the processor
// before it answers the headers; its answers need not match the chunks;
// the client gets exactly the injected bytes, chunked, with the headers
// answer's mutation and no content-length.
func TestDuplexRechunksAndWaitsForNothing(t *testing.T) {
	h := newHarness(t, func(s *procStream) error {
		var body bytes.Buffer
		for {
			m, err := s.recv()
			if err != nil {
				return nil
			}
			switch {
			case m.GetRequestHeaders() != nil, m.GetRequestBody() != nil:
				if s.send(cont(m)) != nil {
					return nil
				}
			case m.GetResponseBody() != nil:
				body.Write(m.GetResponseBody().GetBody())
				if !m.GetResponseBody().GetEndOfStream() {
					continue
				}
				// Every chunk arrived before any response answer: only now
				// answer the headers, then the body in three other pieces.
				if s.send(answer(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{}},
					headerMut(setRaw("x-duplex", "yes"), setRaw("content-length", "3")))) != nil {
					return nil
				}
				up := strings.ToUpper(body.String())
				for _, r := range []*extprocv3.ProcessingResponse{streamed(up[:2], false), streamed("", false), streamed(up[2:], false), streamed("!", true)} {
					if s.send(r) != nil {
						return nil
					}
				}
			}
		}
	}, fixedBody("abcdefghi", "text/plain"), func(c *Config) {
		duplexMode(c)
		c.ResponseChunker = splitAt(3, 6)
	})
	resp, got := h.do(t, http.MethodPost, "/v1/completions", "{}")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ABCDEFGHI!", got)
	assert.Equal(t, "yes", resp.Header.Get("X-Duplex"))
	assert.Equal(t, int64(-1), resp.ContentLength, "content-length is stripped and cannot be set")
	assert.Equal(t, []string{"chunked"}, resp.TransferEncoding)
	s := h.proc.only(t)
	assert.Equal(t, []string{"request_headers", "request_body", "response_headers", "response_body", "response_body", "response_body"}, s.kinds())
	pc := s.messages()[0].GetProtocolConfig()
	assert.Equal(t, extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED, pc.GetResponseBodyMode())
	assert.Equal(t, extprocfilterv3.ProcessingMode_BUFFERED, pc.GetRequestBodyMode())
}

// TestDuplexEndOfStreamEndsTheResponseEarly: an end_of_stream answer before
// the upstream has finished ends the client's response cleanly with exactly
// the injected bytes, and the upstream sees its client go away.
func TestDuplexEndOfStreamEndsTheResponseEarly(t *testing.T) {
	gone := make(chan struct{})
	var once sync.Once
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseBody() != nil {
			var r *extprocv3.ProcessingResponse
			once.Do(func() { r = streamed("data: cut\n\n", true) })
			return r // later chunks are not answered: the response has ended
		}
		return cont(m)
	}), endless(gone), duplexMode)
	resp, got, err := h.readAll(t, http.MethodPost, "/v1/chat/completions", `{"stream":true}`)
	require.NoError(t, err, "a clean end, not a reset")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "data: cut\n\n", got)
	select {
	case <-gone:
	case <-time.After(waitFor):
		t.Fatal("the upstream never saw its client go away")
	}
	s := h.proc.only(t)
	log := s.log()
	assert.Equal(t, []string{"eof", "canceled"}, log[len(log)-2:])
	st := h.proxy.Stats()
	assert.Equal(t, int64(1), st.EndedEarly)
	assert.Zero(t, st.ResetResponses)
	assert.Zero(t, st.ClientAborts)
}

// TestDuplexIgnoresModeOverride: with FULL_DUPLEX_STREAMED configured Envoy
// ignores mode_override, so a response the processor asked not to see still
// comes to it, and must be answered.
func TestDuplexIgnoresModeOverride(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		r := echo(m)
		if m.GetRequestHeaders() != nil {
			r.ModeOverride = &extprocfilterv3.ProcessingMode{
				ResponseHeaderMode: extprocfilterv3.ProcessingMode_SKIP,
				ResponseBodyMode:   extprocfilterv3.ProcessingMode_NONE,
			}
		}
		return r
	}), fixedBody(`{"data":[]}`, "application/json"), duplexMode)
	resp, got := h.do(t, http.MethodGet, "/v1/models", "")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"data":[]}`, got)
	assert.Equal(t, []string{"request_headers", "response_headers", "response_body"}, h.proc.only(t).kinds())
}

// TestDuplexFailures: once response data flowed, failure_mode_allow no
// longer applies: a gRPC error or a spurious answer resets the response;
// a stream closed with OK lets the rest of the body pass unprocessed, and
// the chunks the processor had and did not answer are lost.
func TestDuplexFailures(t *testing.T) {
	// threeParts writes "one.", then "two." once the processor has
	// answered the first part (next closed), then "three." once released.
	threeParts := func(next, release <-chan struct{}) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			for i, part := range []string{"one.", "two.", "three."} {
				gate := next
				if i == 2 {
					gate = release
				}
				if i > 0 {
					select {
					case <-gate:
					case <-r.Context().Done():
						return
					}
				}
				_, _ = io.WriteString(w, part)
				w.(http.Flusher).Flush()
			}
		}
	}
	// onSecond answers everything with echo, closing next after the
	// first response chunk, and ends the stream with end at the second.
	onSecond := func(next chan struct{}, end func(s *procStream) error) script {
		return func(s *procStream) error {
			chunks := 0
			for {
				m, err := s.recv()
				if err != nil {
					return nil
				}
				if m.GetResponseBody() != nil {
					if chunks++; chunks == 2 {
						return end(s)
					}
				}
				if s.send(echo(m)) != nil {
					return nil
				}
				if chunks == 1 && m.GetResponseBody() != nil {
					close(next)
				}
			}
		}
	}
	t.Run("gRPC error", func(t *testing.T) {
		next, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		h := newHarness(t, onSecond(next, func(*procStream) error { return status.Error(codes.Internal, "broke") }),
			threeParts(next, release), func(c *Config) { duplexMode(c); c.FailureModeAllow = true })
		resp, got, err := h.readAll(t, http.MethodPost, "/v1/completions", "{}")
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Error(t, err, "the response is reset")
		assert.Equal(t, "one.", got)
		st := h.proxy.Stats()
		assert.Zero(t, st.FailOpen, "failure_mode_allow is ignored once body data flowed")
		assert.Equal(t, int64(1), st.ResetResponses)
	})
	t.Run("spurious plain body answer", func(t *testing.T) {
		next, release := make(chan struct{}), make(chan struct{})
		defer close(release)
		h := newHarness(t, onSecond(next, func(s *procStream) error {
			_ = s.send(&extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}})
			return silent(s)
		}), threeParts(next, release), duplexMode)
		_, got, err := h.readAll(t, http.MethodPost, "/v1/completions", "{}")
		assert.Error(t, err)
		assert.Equal(t, "one.", got)
		assert.Equal(t, int64(1), h.proxy.Stats().SpuriousMessages)
	})
	t.Run("closed with OK", func(t *testing.T) {
		next, release := make(chan struct{}), make(chan struct{})
		var h *harness
		h = newHarness(t, onSecond(next, func(*procStream) error { return nil }), func(w http.ResponseWriter, r *http.Request) {
			go func() { // the third part is sent once the stream has ended
				defer close(release)
				for end := time.Now().Add(waitFor); time.Now().Before(end) && h.proxy.Stats().StreamsClosedByProcessor == 0; {
					time.Sleep(time.Millisecond)
				}
			}()
			threeParts(next, release)(w, r)
		}, duplexMode)
		resp, got, err := h.readAll(t, http.MethodPost, "/v1/completions", "{}")
		require.NoError(t, err)
		assert.Equal(t, http.StatusOK, resp.StatusCode)
		assert.Equal(t, "one.three.", got, "the unanswered chunk is lost, the rest passes")
	})
}

// TestDuplexClientAbort: the client going away ends the ext_proc stream
// (half-close, then reset) and the upstream request.
func TestDuplexClientAbort(t *testing.T) {
	gone := make(chan struct{})
	h := newHarness(t, answerAll(echo), endless(gone), duplexMode)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.front.URL+"/v1/chat/completions", strings.NewReader("{}"))
	require.NoError(t, err)
	resp, err := h.front.Client().Do(req)
	require.NoError(t, err)
	first := make([]byte, len("tick\n"))
	_, err = io.ReadFull(resp.Body, first)
	require.NoError(t, err)
	cancel()
	_ = resp.Body.Close()
	select {
	case <-gone:
	case <-time.After(waitFor):
		t.Fatal("the upstream never saw the abort")
	}
	s := h.proc.only(t)
	log := s.log()
	assert.Equal(t, []string{"eof", "canceled"}, log[len(log)-2:])
	require.Eventually(t, func() bool { return h.proxy.Stats().ClientAborts == 1 }, waitFor, time.Millisecond)
}

// TestDuplexTrailers: upstream trailers come after a last body message
// without end_of_stream; the trailers answer ends the response with the
// mutated trailers.
func TestDuplexTrailers(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseTrailers() != nil {
			return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{
				HeaderMutation: &extprocv3.HeaderMutation{SetHeaders: headerMut(setRaw("x-added", "2")).GetHeaderMutation().GetSetHeaders()},
			}}}
		}
		return echo(m)
	}), func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Trailer", "X-Upstream")
		_, _ = io.WriteString(w, "body")
		w.Header().Set("X-Upstream", "1")
	}, duplexMode)
	resp, got := h.do(t, http.MethodPost, "/v1/completions", "{}")
	assert.Equal(t, "body", got)
	assert.Equal(t, "1", resp.Trailer.Get("X-Upstream"))
	assert.Equal(t, "2", resp.Trailer.Get("X-Added"))
	s := h.proc.only(t)
	assert.Equal(t, []string{"request_headers", "request_body", "response_headers", "response_body", "response_trailers"}, s.kinds())
	for _, b := range responseBodies(s) {
		assert.False(t, b.GetEndOfStream(), "with trailers no body message carries end_of_stream")
	}
}

// TestDuplexHasNoMessageTimeout: in FULL_DUPLEX_STREAMED mode Envoy arms no
// timer for response messages, so a slow answer is waited for.
func TestDuplexHasNoMessageTimeout(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseHeaders() != nil {
			time.Sleep(500 * time.Millisecond) // well past MessageTimeout
		}
		return echo(m)
	}), fixedBody("ok", "text/plain"), func(c *Config) { duplexMode(c); c.MessageTimeout = 100 * time.Millisecond })
	resp, got := h.do(t, http.MethodPost, "/v1/completions", "{}")
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "ok", got)
	assert.Zero(t, h.proxy.Stats().Timeouts)
}
