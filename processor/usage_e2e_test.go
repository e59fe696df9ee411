package processor_test

import (
	"bytes"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// The usage of streams read through the processor over real gRPC, with
// byte-exact vLLM streams (processor/usage/testdata) split at every byte.

// usageConfig prices Hunyuan at 1 USD per million tokens in and 2 out,
// with a small default output limit (10 tokens) to show it caps nothing
// that was delivered.
const usageConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - match: Hunyuan
      input: 1
      output: 2
  default_max_output_tokens: 10
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1
`

// stream reads a stream from the usage package's test data.
func streamFixture(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("usage", "testdata", name))
	require.NoError(t, err)
	return b
}

// cost is the nano-USD of prompt and completion tokens under usageConfig.
func cost(prompt, completion int64) money.Nano { return money.Nano(prompt*1000 + completion*2000) }

// exchange runs one request with body and, after SSE response headers,
// the response stream in chunks of size chunk (the last ends the stream
// unless abort). It returns the request body forwarded upstream (nil:
// unchanged) and the bytes the client receives.
func exchange(t *testing.T, h *harness, body string, stream []byte, chunk int, abort bool, respHdrs ...string) (forwarded, client []byte) {
	t.Helper()
	return exchangeAt(t, h, "/v1/chat/completions", body, stream, chunk, abort, respHdrs...)
}

// exchangeAt is exchange on the endpoint at path.
func exchangeAt(t *testing.T, h *harness, path, body string, stream []byte, chunk int, abort bool, respHdrs ...string) (forwarded, client []byte) {
	t.Helper()
	s, cancel := h.open()
	defer cancel()
	require.NotNil(t, h.roundTrip(s, reqHeaders(path, "x-tenant-id", "acme")).GetRequestHeaders())
	resp := h.roundTrip(s, reqBody(body))
	require.NotNil(t, resp.GetRequestBody(), "%v", resp)
	if m := resp.GetRequestBody().GetResponse().GetBodyMutation(); m != nil {
		forwarded = m.GetBody()
	}
	if len(respHdrs) == 0 {
		respHdrs = []string{":status", "200", "content-type", "text/event-stream; charset=utf-8"}
	}
	h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(respHdrs...)}}})
	for i := 0; i < len(stream); i += chunk {
		end := min(i+chunk, len(stream))
		piece := stream[i:end]
		r := h.roundTrip(s, respBody(piece, end == len(stream) && !abort))
		client = append(client, sees(r, piece)...)
	}
	if abort {
		require.NoError(t, s.CloseSend())
		cancel()
		h.eventually(func() bool { c := h.spend("acme"); return c.Reserved == 0 })
	}
	return forwarded, client
}

// sees is what the client receives for chunk, given the processor's
// answer.
func sees(r *extprocv3.ProcessingResponse, chunk []byte) []byte {
	m := r.GetResponseBody().GetResponse().GetBodyMutation()
	switch {
	case m == nil:
		return chunk
	case m.GetClearBody():
		return nil
	}
	return bytes.Clone(m.GetBody())
}

// report takes the cost report of the request just settled.
func report(t *testing.T, h *harness) *spendguardv1.CostReport {
	t.Helper()
	select {
	case rep := <-h.reports:
		return rep
	default:
		require.FailNow(t, "no cost report")
		return nil
	}
}

// splits are the chunk sizes every stream below is sent in.
var splits = []int{1, 2, 7, 64, 1 << 20}

// TestContinuousUsageN2Aborted: with continuous_usage_stats and n=2 each
// chunk carries its choice's running count; a stream cut before the final
// usage is charged the prompt plus the sum of both choices' last counts,
// as reported (not estimated).
func TestContinuousUsageN2Aborted(t *testing.T) {
	stream := streamFixture(t, "vllm-chat-stream-continuous-n2-aborted.sse")
	body := `{"model":"Hunyuan","n":2,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"messages":[{"role":"user","content":"Two proverbs"}]}`
	for _, chunk := range splits {
		h := newHarness(t, usageConfig)
		fwd, client := exchange(t, h, body, stream, chunk, true)
		assert.Equal(t, withLimit(body, "max_completion_tokens", 10), string(fwd), "usage asked: only the output limit is added")
		assert.Equal(t, string(stream), string(client))
		rep := report(t, h)
		assert.Equal(t, int64(17), rep.GetPromptTokens(), "chunk %d", chunk)
		assert.Equal(t, int64(5+2), rep.GetCompletionTokens(), "chunk %d: the sum over choices", chunk)
		assert.False(t, rep.GetEstimated())
		assert.True(t, rep.GetAborted())
		assert.Equal(t, cost(17, 7), h.spend("acme").Committed)
	}
}

// TestContinuousUsageN2Complete: the final usage chunk carries the sum and
// wins.
func TestContinuousUsageN2Complete(t *testing.T) {
	stream := streamFixture(t, "vllm-chat-stream-continuous-n2.sse")
	body := `{"model":"Hunyuan","n":2,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true},"messages":[{"role":"user","content":"Two proverbs"}]}`
	h := newHarness(t, usageConfig)
	_, client := exchange(t, h, body, stream, 13, false)
	assert.Equal(t, string(stream), string(client))
	rep := report(t, h)
	assert.Equal(t, int64(7), rep.GetCompletionTokens())
	assert.False(t, rep.GetEstimated())
	assert.Equal(t, budget.Counter{Committed: cost(17, 7)}, h.spend("acme"))
}

// TestAbortedStreamNotCappedByDefault: a stream cut before its usage is
// charged the content events delivered (30), though the configured default
// output limit is 10; a limit the request states does cap it.
func TestAbortedStreamNotCappedByDefault(t *testing.T) {
	var stream []byte
	for range 30 {
		stream = append(stream, `data: {"id":"c","object":"chat.completion.chunk","created":1,"model":"Hunyuan","choices":[{"index":0,"delta":{"content":" tok"},"logprobs":null,"finish_reason":null}]}`+"\n\n"...)
	}
	for _, tt := range []struct {
		name       string
		maxTokens  string
		completion int64
	}{
		{name: "no max_tokens", completion: 30},
		{name: "max_tokens 20", maxTokens: `"max_tokens":20,`, completion: 20},
		{name: "max_tokens 20, n 2", maxTokens: `"max_tokens":20,"n":2,`, completion: 30},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := newHarness(t, usageConfig)
			body := `{"model":"Hunyuan",` + tt.maxTokens + `"stream":true,"messages":[{"role":"user","content":"Count"}]}`
			exchange(t, h, body, stream, 100, true)
			rep := report(t, h)
			assert.Equal(t, tt.completion, rep.GetCompletionTokens())
			assert.True(t, rep.GetEstimated())
			assert.True(t, rep.GetAborted())
		})
	}
}

// TestUsageOffWithContinuousStats: a client that turned usage off
// (include_usage false or null) but asked for continuous_usage_stats gets
// exactly what vLLM would send it, no usage on any chunk: spendguard asks
// for include_usage with continuous_usage_stats off, and removes the one
// usage chunk vLLM then sends.
func TestUsageOffWithContinuousStats(t *testing.T) {
	// What vLLM streams for the forwarded body (include_usage true,
	// continuous_usage_stats false).
	upstream := streamFixture(t, "vllm-chat-stream-usage.sse")
	// What vLLM would stream to the client's own body: the same chunks
	// without the usage chunk.
	i := bytes.Index(upstream, []byte(`data: {"id":"chatcmpl-9f1c2d0e5b7a4c61","object":"chat.completion.chunk","created":1755200000,"model":"Qwen/Qwen3-8B","choices":[],"usage"`))
	require.Positive(t, i)
	j := bytes.Index(upstream[i:], []byte("\n\n"))
	want := string(upstream[:i]) + string(upstream[i+j+2:])
	require.NotContains(t, want, `"usage"`)

	for _, opts := range []string{
		`{"include_usage":false,"continuous_usage_stats":true}`,
		`{"continuous_usage_stats":true,"include_usage":null}`,
	} {
		for _, chunk := range splits {
			h := newHarness(t, usageConfig)
			body := `{"model":"Hunyuan","stream":true,"stream_options":` + opts + `,"messages":[{"role":"user","content":"Hi"}]}`
			fwd, client := exchange(t, h, body, upstream, chunk, false)
			wantFwd := strings.Replace(strings.Replace(body, `"continuous_usage_stats":true`, `"continuous_usage_stats":false`, 1),
				`"include_usage":`+map[bool]string{true: "false", false: "null"}[strings.Contains(opts, "false")], `"include_usage":true`, 1)
			assert.Equal(t, withLimit(wantFwd, "max_completion_tokens", 10), string(fwd), "%s: every other byte kept", opts)
			assert.Equal(t, want, string(client), "%s, chunk %d: the stream vLLM would send the client", opts, chunk)
			rep := report(t, h)
			assert.Equal(t, int64(17), rep.GetPromptTokens())
			assert.Equal(t, int64(8), rep.GetCompletionTokens())
			assert.False(t, rep.GetEstimated())
		}
	}
}

// TestEmptyStreamOptionsAsksForUsage: stream_options {} turns usage on in
// vLLM: nothing is injected and the usage chunk reaches the client.
func TestEmptyStreamOptionsAsksForUsage(t *testing.T) {
	upstream := streamFixture(t, "vllm-chat-stream-usage.sse")
	for _, chunk := range splits {
		h := newHarness(t, usageConfig)
		body := `{"model":"Hunyuan","stream":true,"stream_options":{},"messages":[]}`
		fwd, client := exchange(t, h, body, upstream, chunk, false)
		assert.Equal(t, withLimit(body, "max_completion_tokens", 10), string(fwd), "usage asked: only the output limit is added")
		assert.Equal(t, string(upstream), string(client))
		rep := report(t, h)
		assert.Equal(t, int64(8), rep.GetCompletionTokens())
		assert.False(t, rep.GetEstimated())
	}
}

// TestEmbeddingsBytesUsageHeader: with encoding_format "bytes" vLLM sends
// a binary body and the usage in the metadata header, written by Python's
// json.dumps; the body is not scanned. With "bytes_only" there is no usage:
// the estimate is charged, marked estimated.
func TestEmbeddingsBytesUsageHeader(t *testing.T) {
	binary := []byte{0x00, 0x00, 0x80, 0x3f, '{', '"', 0xff, 0x00, 0x00, 0x00, 0x40}
	meta := `{"id": "embd-5c1e", "created": 1755200500, "model": "Hunyuan", "data": [{"index": 0, "object": "embedding"}], "usage": {"prompt_tokens": 9, "total_tokens": 9}}`
	body := `{"model":"Hunyuan","input":"the quick brown fox jumps","encoding_format":"bytes"}`
	run := func(h *harness, headers ...string) {
		s, cancel := h.open()
		defer cancel()
		require.NotNil(t, h.roundTrip(s, reqHeaders("/v1/embeddings", "x-tenant-id", "acme")).GetRequestHeaders())
		require.NotNil(t, h.roundTrip(s, reqBody(body)).GetRequestBody())
		h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
			ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(headers...)}}})
		for i := range binary {
			r := h.roundTrip(s, respBody(binary[i:i+1], i == len(binary)-1))
			assert.Nil(t, r.GetResponseBody().GetResponse().GetBodyMutation())
		}
	}

	h := newHarness(t, usageConfig)
	run(h, ":status", "200", "content-type", "application/octet-stream", "metadata", meta)
	rep := report(t, h)
	assert.Equal(t, int64(9), rep.GetPromptTokens())
	assert.Zero(t, rep.GetCompletionTokens())
	assert.False(t, rep.GetEstimated())
	assert.Equal(t, budget.Counter{Committed: cost(9, 0)}, h.spend("acme"))

	h = newHarness(t, usageConfig)
	run(h, ":status", "200", "content-type", "application/octet-stream")
	rep = report(t, h)
	assert.True(t, rep.GetEstimated(), "bytes_only: no usage anywhere")
	assert.Positive(t, rep.GetPromptTokens())
	assert.Zero(t, rep.GetCompletionTokens())
}

// withLimit is body, a JSON object that ends in its closing brace, with
// the member name: limit added last, as spendguard writes an output limit.
func withLimit(body, name string, limit int64) string {
	return body[:len(body)-1] + `,"` + name + `":` + strconv.FormatInt(limit, 10) + "}"
}
