package envoysim

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"testing/iotest"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestNewValidatesConfig(t *testing.T) {
	mode := func(edit func(*extprocfilterv3.ProcessingMode)) *extprocfilterv3.ProcessingMode {
		m := SpendguardMode()
		edit(m)
		return m
	}
	tests := []struct {
		name    string
		cfg     Config
		wantErr string
	}{
		{"defaults are valid", DefaultConfig("127.0.0.1:1", "http://127.0.0.1:2"), ""},
		{"missing processor", DefaultConfig("", "http://127.0.0.1:2"), "ProcessorAddr"},
		{"bad upstream", DefaultConfig("127.0.0.1:1", "127.0.0.1:2"), "Upstream"},
		{"full duplex without response trailers SEND", Config{ProcessorAddr: "a:1", Upstream: "http://b", ProcessingMode: mode(func(m *extprocfilterv3.ProcessingMode) {
			m.ResponseBodyMode = extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
			m.ResponseTrailerMode = extprocfilterv3.ProcessingMode_SKIP
		})}, "needs response_trailer_mode SEND"},
		{"full duplex request body", Config{ProcessorAddr: "a:1", Upstream: "http://b", ProcessingMode: mode(func(m *extprocfilterv3.ProcessingMode) {
			m.RequestBodyMode = extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
		})}, "not supported by envoysim"},
		{"response trailers without full duplex", Config{ProcessorAddr: "a:1", Upstream: "http://b", ProcessingMode: mode(func(m *extprocfilterv3.ProcessingMode) {
			m.ResponseBodyMode = extprocfilterv3.ProcessingMode_STREAMED
			m.ResponseTrailerMode = extprocfilterv3.ProcessingMode_SEND
		})}, "only with response_body_mode FULL_DUPLEX_STREAMED"},
		{"trailers", Config{ProcessorAddr: "a:1", Upstream: "http://b", ProcessingMode: mode(func(m *extprocfilterv3.ProcessingMode) {
			m.RequestTrailerMode = extprocfilterv3.ProcessingMode_SEND
		})}, "trailer mode SEND"},
		{"bad status_on_error", Config{ProcessorAddr: "a:1", Upstream: "http://b", StatusOnError: 42}, "StatusOnError"},
		{"negative timeout", Config{ProcessorAddr: "a:1", Upstream: "http://b", MessageTimeout: -1}, "negative"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			p, err := New(tc.cfg)
			if tc.wantErr != "" {
				require.ErrorContains(t, err, tc.wantErr)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, DefaultMessageTimeout, p.cfg.MessageTimeout)
			assert.Equal(t, DefaultStatusOnError, p.cfg.StatusOnError)
			assert.Equal(t, DefaultBufferLimit, p.cfg.BufferLimit)
			assert.True(t, p.cfg.AllowModeOverride)
			require.NoError(t, p.Close())
		})
	}
}

func TestStartServesOnAPort(t *testing.T) {
	proc := startProcessor(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseHeaders() != nil {
			return answer(m, headerMut(setRaw("x-spendguard-budget", "tenant-monthly")))
		}
		return cont(m)
	}))
	up := startUpstream(t, nil)
	cfg := DefaultConfig(proc.addr, up.URL)
	cfg.ProcessingMode = StreamedMode()
	p, err := New(cfg)
	require.NoError(t, err)
	srv, err := p.Start("127.0.0.1:0")
	require.NoError(t, err)
	assert.NotContains(t, srv.Addr(), ":0")
	assert.Same(t, p, srv.Proxy())

	resp, err := http.Post(srv.URL()+"/v1/completions", "application/json", strings.NewReader("{}"))
	require.NoError(t, err)
	body, _ := io.ReadAll(resp.Body)
	_ = resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, `{"ok":true}`, string(body))
	assert.Equal(t, "tenant-monthly", resp.Header.Get("X-Spendguard-Budget"))

	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	require.NoError(t, srv.Shutdown(ctx))
	require.NoError(t, srv.Close(), "Close after Shutdown is harmless")
}

// TestConcurrentRequestsKeepTheirOwnStreams sends requests in parallel; each
// stream's answers must apply to its own request only.
func TestConcurrentRequestsKeepTheirOwnStreams(t *testing.T) {
	h := newHarness(t, func(s *procStream) error {
		var tenant string
		return answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
			if rh := m.GetRequestHeaders(); rh != nil {
				tenant, _ = headerOf(rh.GetHeaders(), "x-tenant")
			}
			if m.GetResponseHeaders() != nil {
				return answer(m, headerMut(setRaw("x-echo-tenant", tenant)))
			}
			if b := m.GetResponseBody(); b != nil && len(b.GetBody()) > 0 {
				return answer(m, &extprocv3.CommonResponse{BodyMutation: bodyMut(tenant + ":" + string(b.GetBody()))})
			}
			return cont(m)
		})(s)
	}, nil, nil)
	const n = 24
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tenant := fmt.Sprintf("t%d", i)
			req, err := http.NewRequest(http.MethodPost, h.front.URL+"/v1/completions", strings.NewReader("{}"))
			if !assert.NoError(t, err) {
				return
			}
			req.Header.Set("X-Tenant", tenant)
			resp, err := h.front.Client().Do(req)
			if !assert.NoError(t, err) {
				return
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			assert.Equal(t, tenant, resp.Header.Get("X-Echo-Tenant"))
			assert.Equal(t, tenant+`:{"ok":true}`, string(body))
		})
	}
	wg.Wait()
	assert.Equal(t, int64(n), h.proxy.Stats().Streams)
	assert.Equal(t, int64(n), h.proxy.Stats().UpstreamRequests)
}

func TestBufferedPartialResponse(t *testing.T) {
	big := strings.Repeat("z", 100_000)
	h := newHarness(t, answerAll(func(m *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
		if m.GetResponseBody() != nil {
			return answer(m, &extprocv3.CommonResponse{BodyMutation: bodyMut("A")})
		}
		return cont(m)
	}), fixedBody(big, "text/plain"), func(c *Config) {
		c.BufferLimit = 1000
		c.ResponseChunker = splitAt(600, 1200)
		c.ProcessingMode = StreamedMode()
		c.ProcessingMode.ResponseBodyMode = extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL
	})
	resp, got := h.do(t, http.MethodGet, "/", "")
	require.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, "A"+big[1200:], got, "the first 1200 bytes (over the limit) were processed, the rest passed")
	bodies := responseBodies(h.proc.only(t))
	require.Len(t, bodies, 1)
	assert.Len(t, bodies[0].GetBody(), 1200)
	assert.False(t, bodies[0].GetEndOfStream())
}

// TestHeldDataIsCoalesced pins the mechanism behind Envoy's rule that data
// arriving while the headers answer is awaited goes out as one chunk.
func TestHeldDataIsCoalesced(t *testing.T) {
	src := startBody(iotest.OneByteReader(strings.NewReader("abc")), nil)
	defer src.close()
	require.Eventually(t, func() bool { return len(src.ch) == 4 }, waitFor, time.Millisecond) // a, b, c, end
	data, eof, err, ok := src.drainAvailable()
	require.NoError(t, err)
	assert.True(t, ok)
	assert.True(t, eof, "the whole body had arrived: one message with end_of_stream")
	assert.Equal(t, "abc", string(data))

	exact := startBody(strings.NewReader("abc"), splitAt(1))
	defer exact.close()
	_, _, _, ok = exact.drainAvailable()
	assert.False(t, ok, "ResponseChunker pieces are never coalesced")
}
