package envoysim

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"testing"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// splitAt returns a ResponseChunker cutting the body at the given offsets.
func splitAt(offsets ...int) func([]byte) [][]byte {
	return func(b []byte) [][]byte {
		var out [][]byte
		prev := 0
		for _, o := range offsets {
			out = append(out, b[prev:o])
			prev = o
		}
		return append(out, b[prev:])
	}
}

func fixedBody(body, contentType string) http.HandlerFunc {
	return func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", contentType)
		w.Header().Set("Content-Length", strconv.Itoa(len(body)))
		_, _ = io.WriteString(w, body)
	}
}

func responseBodies(s *procStream) []*extprocv3.HttpBody {
	var out []*extprocv3.HttpBody
	for _, m := range s.messages() {
		if b := m.GetResponseBody(); b != nil {
			out = append(out, b)
		}
	}
	return out
}

// TestStreamedResponsePipelined pins STREAMED: content-length is stripped
// towards the client (but seen by the processor), every chunk is sent without
// waiting for earlier answers, answers are matched in order and only
// answered (mutated) data reaches the client.
func TestStreamedResponsePipelined(t *testing.T) {
	const body = `{"id":"cmpl-1","usage":{"total_tokens":42}}`
	h := newHarness(t, func(s *procStream) error {
		var held []*extprocv3.ProcessingRequest
		for {
			m, err := s.recv()
			if errors.Is(err, io.EOF) {
				s.waitCanceled()
				return nil
			}
			if err != nil {
				return nil
			}
			b := m.GetResponseBody()
			switch {
			case b == nil && m.GetResponseHeaders() != nil:
				err = s.send(answer(m, headerMut(setRaw("x-spendguard-remaining-usd", "7.000000"))))
			case b == nil:
				err = s.send(cont(m))
			default:
				// Answer nothing until the last chunk: only a pipelining sender gets here.
				held = append(held, m)
				if b.GetEndOfStream() {
					for i, hm := range held {
						data := fmt.Sprintf("<%d:%s>", i, hm.GetResponseBody().GetBody())
						if err := s.send(answer(hm, &extprocv3.CommonResponse{BodyMutation: bodyMut(data)})); err != nil {
							return nil
						}
					}
				}
			}
			if err != nil {
				return nil
			}
		}
	}, fixedBody(body, "application/json"), func(c *Config) { c.ResponseChunker = splitAt(5, 20) })

	resp, got := h.do(t, http.MethodPost, "/v1/completions", `{}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "<0:"+body[:5]+"><1:"+body[5:20]+"><2:"+body[20:]+">", got)
	assert.Equal(t, "7.000000", resp.Header.Get("X-Spendguard-Remaining-Usd"))
	assert.Equal(t, int64(-1), resp.ContentLength, "content-length stripped: chunked to the client")

	s := h.proc.only(t)
	cl, ok := headerOf(s.messages()[2].GetResponseHeaders().GetHeaders(), "content-length")
	assert.True(t, ok)
	assert.Equal(t, strconv.Itoa(len(body)), cl)
	assert.Len(t, responseBodies(s), 3)
}

// TestStreamedChunksAtArbitraryOffsets checks that pieces arrive exactly as
// split — inside a UTF-8 sequence, inside "data:", inside a JSON string — and
// that an empty final piece becomes its own end_of_stream message.
func TestStreamedChunksAtArbitraryOffsets(t *testing.T) {
	const sse = "data: {\"choices\":[{\"delta\":{\"content\":\"héllo wörld\"}}]}\n\ndata: [DONE]\n\n"
	utf8Cut := strings.Index(sse, "é") + 1
	tests := []struct {
		name    string
		offsets []int
	}{
		{"inside a UTF-8 sequence", []int{utf8Cut}},
		{"inside data:", []int{3, strings.LastIndex(sse, "data:") + 2}},
		{"inside a JSON string", []int{strings.Index(sse, "content") + 3}},
		{"empty final piece", []int{10, len(sse)}},
		{"one byte at a time", func() []int {
			var o []int
			for i := 1; i < len(sse); i++ {
				o = append(o, i)
			}
			return o
		}()},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, answerAll(cont), fixedBody(sse, "text/event-stream"),
				func(c *Config) { c.ResponseChunker = splitAt(tc.offsets...) })
			resp, got := h.do(t, http.MethodPost, "/v1/chat/completions", `{"stream":true}`)
			require.Equal(t, http.StatusOK, resp.StatusCode)
			assert.Equal(t, sse, got, "the client gets the stream byte for byte")
			want := splitAt(tc.offsets...)([]byte(sse))
			bodies := responseBodies(h.proc.only(t))
			require.Len(t, bodies, len(want))
			for i, b := range bodies {
				assert.Equal(t, string(want[i]), string(b.GetBody()), "chunk %d", i)
				assert.Equal(t, i == len(want)-1, b.GetEndOfStream(), "chunk %d", i)
			}
		})
	}
}

func TestStreamedResponseFromChunkedUpstream(t *testing.T) {
	h := newHarness(t, answerAll(cont), func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "text/event-stream")
		for i := range 5 {
			_, _ = fmt.Fprintf(w, "data: %d\n\n", i)
			w.(http.Flusher).Flush()
		}
	}, nil)
	resp, got := h.do(t, http.MethodPost, "/v1/completions", `{"stream":true}`)
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "data: 0\n\ndata: 1\n\ndata: 2\n\ndata: 3\n\ndata: 4\n\n", got)
	bodies := responseBodies(h.proc.only(t))
	require.NotEmpty(t, bodies)
	var all strings.Builder
	for i, b := range bodies {
		all.Write(b.GetBody())
		assert.Equal(t, i == len(bodies)-1, b.GetEndOfStream())
	}
	assert.Equal(t, got, all.String())
}

func TestLargeStreamedResponseWithBackPressure(t *testing.T) {
	big := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
	h := newHarness(t, answerAll(cont), fixedBody(big, "application/octet-stream"),
		func(c *Config) { c.BufferLimit = 64 << 10 })
	resp, got := h.do(t, http.MethodGet, "/big", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, len(big), len(got))
	assert.Equal(t, big, got)
}

func TestHeaderMutationInStreamedBodyAnswerIgnored(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseBody() != nil {
			return answer(m, headerMut(setRaw("x-late", "1")))
		}
		return cont(m)
	}), nil, nil)
	resp, body := h.do(t, http.MethodGet, "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"ok":true}`, body)
	assert.Empty(t, resp.Header.Get("X-Late"))
}

func TestModeOverrideToStreamedKeepsContentLength(t *testing.T) {
	const body = `{"ok":true,"padding":"xxxxxxxx"}`
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		r := cont(m)
		if m.GetResponseHeaders() != nil {
			r.ModeOverride = &extprocfilterv3.ProcessingMode{ResponseBodyMode: extprocfilterv3.ProcessingMode_STREAMED}
		}
		return r
	}), fixedBody(body, "application/json"), func(c *Config) {
		c.ProcessingMode = StreamedMode()
		c.ProcessingMode.ResponseBodyMode = extprocfilterv3.ProcessingMode_NONE
	})
	resp, got := h.do(t, http.MethodGet, "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, body, got)
	assert.Equal(t, int64(len(body)), resp.ContentLength, "not stripped after a mode_override")
	assert.NotEmpty(t, responseBodies(h.proc.only(t)))
}

func TestBufferedResponse(t *testing.T) {
	const body = `{"usage":{"total_tokens":3}}`
	tests := []struct {
		name     string
		limit    int
		setCL    bool
		wantCode int
		wantBody string
	}{
		{"header mutation in the body answer applies", 0, true, http.StatusOK, "rewritten"},
		{"stale content-length is 500", 0, false, http.StatusInternalServerError, ""},
		{"over the buffer limit is 500", 8, true, http.StatusInternalServerError, "Internal Server Error"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
				if m.GetResponseBody() != nil {
					cr := headerMut(setRaw("x-held", "yes"))
					if tc.setCL {
						cr.HeaderMutation.SetHeaders = append(cr.HeaderMutation.SetHeaders, setRaw("content-length", "9"))
					}
					cr.BodyMutation = bodyMut("rewritten")
					return answer(m, cr)
				}
				return cont(m)
			}), fixedBody(body, "application/json"), func(c *Config) {
				c.BufferLimit = tc.limit
				c.ProcessingMode = StreamedMode()
				c.ProcessingMode.ResponseBodyMode = extprocfilterv3.ProcessingMode_BUFFERED
			})
			resp, got := h.do(t, http.MethodGet, "/", "")
			assert.Equal(t, tc.wantCode, resp.StatusCode)
			assert.Equal(t, tc.wantBody, got)
			if tc.wantCode == http.StatusOK {
				assert.Equal(t, "yes", resp.Header.Get("X-Held"))
				assert.Equal(t, int64(9), resp.ContentLength)
			}
			if tc.limit > 0 {
				assert.Empty(t, responseBodies(h.proc.only(t)), "the processor sees nothing of an oversized body")
			}
		})
	}
}

func TestContinueAndReplaceResponse(t *testing.T) {
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseHeaders() != nil {
			return answer(m, &extprocv3.CommonResponse{Status: extprocv3.CommonResponse_CONTINUE_AND_REPLACE, BodyMutation: bodyMut("new")})
		}
		return cont(m)
	}), nil, nil)
	resp, got := h.do(t, http.MethodGet, "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "new", got)
	assert.Empty(t, responseBodies(h.proc.only(t)), "no body messages after CONTINUE_AND_REPLACE")
}

func TestUpstreamConnectFailureIs503ThroughTheFilter(t *testing.T) {
	h := newHarness(t, answerAll(cont), nil, nil)
	h.up.Close() // nothing listens there any more
	resp, body := h.do(t, http.MethodPost, "/v1/completions", `{}`)
	assert.Equal(t, http.StatusServiceUnavailable, resp.StatusCode)
	assert.True(t, strings.HasPrefix(body, "upstream connect error"), body)
	s := h.proc.only(t)
	assert.Equal(t, []string{"request_headers", "request_body", "response_headers", "response_body"}, s.kinds())
	code, _ := headerOf(s.messages()[2].GetResponseHeaders().GetHeaders(), ":status")
	assert.Equal(t, "503", code)
	assert.Equal(t, int64(1), h.proxy.Stats().UpstreamFailures)
}
