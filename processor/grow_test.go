package processor_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// growConfig is usageConfig (Hunyuan at 1 and 2 USD per million tokens: a
// prompt token costs 1,000 nano-USD, an output token 2,000) with the
// tenant capped at 100,000 nano-USD: with the 5-token prompt the streams
// below report, room for 47 output tokens.
var growConfig = strings.Replace(usageConfig, "hard_usd: 1\n", "hard_usd: 0.0001\n", 1)

const growPrompt = 5

// chatStream is a vLLM chat stream of n tokens with continuous usage
// (every chunk, the role chunk included, carries the running count), the
// final usage chunk and [DONE], one event per element.
func chatStream(n int) [][]byte {
	var out [][]byte
	chunk := func(delta string, k int, finish string) []byte {
		fin := "null"
		if finish != "" {
			fin = `"` + finish + `"`
		}
		return fmt.Appendf(nil, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Hunyuan","choices":[{"index":0,"delta":%s,"logprobs":null,"finish_reason":%s}],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}`+"\n\n",
			delta, fin, growPrompt, growPrompt+k, k)
	}
	out = append(out, chunk(`{"role":"assistant","content":""}`, 0, ""))
	for k := 1; k <= n; k++ {
		finish := ""
		if k == n {
			finish = "stop"
		}
		out = append(out, chunk(`{"content":" tok"}`, k, finish))
	}
	out = append(out, fmt.Appendf(nil, `data: {"id":"chatcmpl-1","object":"chat.completion.chunk","created":1,"model":"Hunyuan","choices":[],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}`+"\n\n", growPrompt, growPrompt+n, n))
	return append(out, []byte("data: [DONE]\n\n"))
}

// growExchange runs one request whose response body is FULL_DUPLEX_STREAMED
// (when duplex) through the harness: it sends the events one chunk each,
// stopping at the answer that ends the response. It returns the forwarded
// request body, what the client got, and whether spendguard ended the
// response before the upstream did.
func growExchange(t *testing.T, h *harness, path, body string, events [][]byte, duplex bool) (forwarded string, client []byte, cut bool) {
	t.Helper()
	s, cancel := h.open()
	defer cancel()
	first := reqHeaders(path, "x-tenant-id", "acme")
	if duplex {
		first = duplexModes(first)
	} else {
		first = withModes(first, extprocfilterv3.ProcessingMode_BUFFERED, extprocfilterv3.ProcessingMode_STREAMED)
	}
	require.NotNil(t, h.roundTrip(s, first).GetRequestHeaders())
	resp := h.roundTrip(s, reqBody(body))
	require.NotNil(t, resp.GetRequestBody(), "%v", resp)
	forwarded = body
	if m := resp.GetRequestBody().GetResponse().GetBodyMutation(); m != nil {
		forwarded = string(m.GetBody())
	}
	h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", "200", "content-type", "text/event-stream; charset=utf-8")}}})
	for i, ev := range events {
		last := i == len(events)-1
		r := h.roundTrip(s, respBody(ev, last))
		if !duplex {
			client = append(client, sees(r, ev)...)
			continue
		}
		sr := r.GetResponseBody().GetResponse().GetBodyMutation().GetStreamedResponse()
		require.NotNil(t, sr, "chunk %d: a streamed_response: %v", i, r)
		client = append(client, sr.GetBody()...)
		if sr.GetEndOfStream() {
			return forwarded, client, !last
		}
	}
	return forwarded, client, false
}

// dataEvents returns the data of each event of an SSE body.
func dataEvents(body []byte) []string {
	var out []string
	for _, block := range strings.Split(strings.TrimSpace(string(body)), "\n\n") {
		for _, line := range strings.Split(block, "\n") {
			if d, ok := strings.CutPrefix(line, "data: "); ok {
				out = append(out, d)
			}
		}
	}
	return out
}

// TestStreamGrowsAndIsCutAtTheCap: a stream without max_tokens reserves
// the default output (10 tokens), grows while it streams, and is ended
// when the budget has no room left: the client gets the tokens the budget
// pays for, then a budget_exceeded error event and [DONE]; the request is
// charged exactly what was delivered, never more than the cap, and
// reported cut.
func TestStreamGrowsAndIsCutAtTheCap(t *testing.T) {
	h := newHarness(t, growConfig)
	body := `{"model":"Hunyuan","stream":true,"messages":[{"role":"user","content":"Hi"}]}`
	forwarded, client, cut := growExchange(t, h, "/v1/chat/completions", body, chatStream(200), true)
	require.True(t, cut, "the stream is ended before the upstream's end")

	assert.Equal(t, strings.TrimSuffix(body, "}")+`,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, forwarded,
		"no output limit written; usage on every chunk asked for")
	assert.NotContains(t, string(client), `"usage"`, "the client did not ask for usage")

	evs := dataEvents(client)
	require.GreaterOrEqual(t, len(evs), 3)
	assert.Equal(t, "[DONE]", evs[len(evs)-1])
	var last struct {
		Error struct{ Type, Message string }
	}
	require.NoError(t, json.Unmarshal([]byte(evs[len(evs)-2]), &last))
	assert.Equal(t, "budget_exceeded", last.Error.Type)
	assert.Contains(t, last.Error.Message, `"tenant-daily"`)
	delivered := int64(strings.Count(string(client), `" tok"`))
	assert.Equal(t, int64(47), delivered, "every token the budget can pay for, and no more")

	rep := report(t, h)
	assert.True(t, rep.GetCut())
	assert.True(t, rep.GetStream())
	assert.False(t, rep.GetAborted())
	assert.Equal(t, "tenant-daily", rep.GetBudget())
	assert.Equal(t, int64(growPrompt), rep.GetPromptTokens())
	assert.Equal(t, delivered, rep.GetCompletionTokens())
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_REPORTED, rep.GetUsageSource())
	want := money.Nano(growPrompt*1000 + delivered*2000)
	assert.Equal(t, int64(want), rep.GetCostNanoUsd())
	h.eventually(func() bool { return h.spend("acme").Reserved == 0 })
	c := h.spend("acme")
	assert.Equal(t, want, c.Committed)
	assert.LessOrEqual(t, c.Committed, money.Nano(100_000), "never past the cap")
}

// TestStreamGrowsWithoutCut: with room enough, a 200-token stream (20
// times what was first reserved) is served whole and charged its usage.
func TestStreamGrowsWithoutCut(t *testing.T) {
	h := newHarness(t, strings.Replace(growConfig, "hard_usd: 0.0001", "hard_usd: 1", 1))
	body := `{"model":"Hunyuan","stream":true,"stream_options":{"include_usage":true},"messages":[{"role":"user","content":"Hi"}]}`
	_, client, cut := growExchange(t, h, "/v1/chat/completions", body, chatStream(200), true)
	assert.False(t, cut)
	assert.Equal(t, 200, strings.Count(string(client), `" tok"`))
	evs := dataEvents(client)
	assert.Contains(t, evs[len(evs)-2], `"choices":[],"usage":{"prompt_tokens":5,"total_tokens":205,"completion_tokens":200}`,
		"the usage event the client asked for is kept")
	assert.Equal(t, 1, strings.Count(string(client), `"usage"`), "per-chunk usage hidden: the client asked include_usage only")
	rep := report(t, h)
	assert.False(t, rep.GetCut())
	assert.Equal(t, int64(200), rep.GetCompletionTokens())
	assert.Equal(t, int64(growPrompt*1000+200*2000), rep.GetCostNanoUsd())
	h.eventually(func() bool { return h.spend("acme").Reserved == 0 })
	assert.Equal(t, money.Nano(growPrompt*1000+200*2000), h.spend("acme").Committed)
}

// TestStreamWithoutFullDuplexGetsTheLimit: when Envoy sends the response
// STREAMED (it cannot be ended cleanly) or limits.streams.grow is off, a
// stream is reserved and limited like any other request.
func TestStreamWithoutFullDuplexGetsTheLimit(t *testing.T) {
	body := `{"model":"Hunyuan","stream":true,"messages":[{"role":"user","content":"Hi"}]}`
	want := strings.TrimSuffix(body, "}") + `,"stream_options":{"include_usage":true},"max_completion_tokens":10}`

	h := newHarness(t, growConfig)
	forwarded, _, cut := growExchange(t, h, "/v1/chat/completions", body, chatStream(10), false)
	assert.Equal(t, want, forwarded)
	assert.False(t, cut)
	assert.False(t, report(t, h).GetCut())

	h = newHarness(t, growConfig+"limits:\n  streams:\n    grow: false\n")
	forwarded, _, cut = growExchange(t, h, "/v1/chat/completions", body, chatStream(10), true)
	assert.Equal(t, want, forwarded)
	assert.False(t, cut)
}

// messagesStream is an Anthropic Messages stream of n text deltas as
// vLLM sends it: message_start with the prompt, the deltas, message_delta
// with the usage, message_stop.
func messagesStream(n int) [][]byte {
	ev := func(typ, data string) []byte { return []byte("event: " + typ + "\ndata: " + data + "\n\n") }
	out := [][]byte{
		ev("message_start", fmt.Sprintf(`{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","content":[],"model":"Hunyuan","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":%d,"output_tokens":0}}}`, growPrompt)),
		ev("content_block_start", `{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}`),
	}
	for range n {
		out = append(out, ev("content_block_delta", `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":" tok"}}`))
	}
	return append(out,
		ev("content_block_stop", `{"type":"content_block_stop","index":0}`),
		ev("message_delta", fmt.Sprintf(`{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"input_tokens":%d,"output_tokens":%d}}`, growPrompt, n)),
		ev("message_stop", `{"type":"message_stop"}`))
}

// responsesStream is a Responses API stream of n output_text deltas.
func responsesStream(n int) [][]byte {
	ev := func(typ string, seq int, rest string) []byte {
		return fmt.Appendf(nil, "event: %s\ndata: {\"type\":\"%s\",\"sequence_number\":%d%s}\n\n", typ, typ, seq, rest)
	}
	resp := `,"response":{"id":"resp_abc","object":"response","created_at":1,"model":"Hunyuan","status":"in_progress","output":[],"usage":null}`
	out := [][]byte{ev("response.created", 0, resp), ev("response.in_progress", 1, resp)}
	for k := range n {
		out = append(out, ev("response.output_text.delta", 2+k, `,"item_id":"msg_1","output_index":0,"content_index":0,"delta":" tok","logprobs":[]`))
	}
	done := fmt.Sprintf(`,"response":{"id":"resp_abc","object":"response","created_at":1,"model":"Hunyuan","status":"completed","output":[],"usage":{"input_tokens":%d,"input_tokens_details":{"cached_tokens":0},"output_tokens":%d,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":%d}}`, growPrompt, n, growPrompt+n)
	return append(out, ev("response.completed", 2+n, done))
}

// TestStreamCutShapes: Messages and Responses streams, which report usage
// only at their end, grow on their content events and are cut with their
// own API's error event.
func TestStreamCutShapes(t *testing.T) {
	t.Run("messages", func(t *testing.T) {
		h := newHarness(t, growConfig)
		body := `{"model":"Hunyuan","stream":true,"max_tokens":4096,"messages":[{"role":"user","content":"Hi"}]}`
		_, client, cut := growExchange(t, h, "/v1/messages", body, messagesStream(200), true)
		require.True(t, cut)
		blocks := strings.Split(strings.TrimSuffix(string(client), "\n\n"), "\n\n")
		lastBlock := blocks[len(blocks)-1]
		require.True(t, strings.HasPrefix(lastBlock, "event: error\ndata: "), "%q", lastBlock)
		var e struct {
			Type  string
			Error struct{ Type, Message string }
		}
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(lastBlock, "event: error\ndata: ")), &e))
		assert.Equal(t, "error", e.Type)
		assert.Equal(t, "billing_error", e.Error.Type)
		delivered := int64(strings.Count(string(client), `" tok"`))
		rep := report(t, h)
		assert.True(t, rep.GetCut())
		assert.True(t, rep.GetEstimated(), "counted from content events")
		assert.Equal(t, delivered, rep.GetCompletionTokens())
		assert.Equal(t, int64(growPrompt), rep.GetPromptTokens(), "the prompt message_start reported")
		assert.LessOrEqual(t, rep.GetCostNanoUsd(), int64(100_000))
		assert.Equal(t, int64(47), delivered)
	})
	t.Run("responses", func(t *testing.T) {
		h := newHarness(t, growConfig)
		body := `{"model":"Hunyuan","stream":true,"input":"Hi"}`
		_, client, cut := growExchange(t, h, "/v1/responses", body, responsesStream(200), true)
		require.True(t, cut)
		blocks := strings.Split(strings.TrimSuffix(string(client), "\n\n"), "\n\n")
		lastBlock := blocks[len(blocks)-1]
		require.True(t, strings.HasPrefix(lastBlock, "event: response.failed\ndata: "), "%q", lastBlock)
		var e struct {
			Type           string
			SequenceNumber int `json:"sequence_number"`
			Response       struct {
				ID, Status string
				Error      struct{ Code, Message string }
			}
		}
		require.NoError(t, json.Unmarshal([]byte(strings.TrimPrefix(lastBlock, "event: response.failed\ndata: ")), &e))
		assert.Equal(t, "resp_abc", e.Response.ID)
		assert.Equal(t, "failed", e.Response.Status)
		assert.Equal(t, "budget_exceeded", e.Response.Error.Code)
		assert.Equal(t, len(blocks)-1, e.SequenceNumber, "the next sequence number")
		rep := report(t, h)
		assert.True(t, rep.GetCut())
		assert.LessOrEqual(t, rep.GetCostNanoUsd(), int64(100_000))
	})
}

// TestRefusalSaysWhatWasAssumed: a 402 for a request that states no
// output limit says how many output tokens were assumed for it.
func TestRefusalSaysWhatWasAssumed(t *testing.T) {
	h := newHarness(t, strings.Replace(growConfig, "hard_usd: 0.0001", "hard_usd: 0.00001", 1))
	s, cancel := h.open()
	defer cancel()
	require.NotNil(t, h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")).GetRequestHeaders())
	r := h.roundTrip(s, reqBody(`{"model":"Hunyuan","messages":[{"role":"user","content":"Hi"}]}`))
	require.NotNil(t, r.GetImmediateResponse(), "%v", r)
	assert.Contains(t, string(r.GetImmediateResponse().GetBody()), "pricing.default_max_output_tokens = 10 output tokens per sequence were assumed")

	s2, cancel2 := h.open()
	defer cancel2()
	require.NotNil(t, h.roundTrip(s2, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")).GetRequestHeaders())
	r = h.roundTrip(s2, reqBody(`{"model":"Hunyuan","max_tokens":5,"messages":[{"role":"user","content":"Hi"}]}`))
	require.NotNil(t, r.GetImmediateResponse(), "%v", r)
	assert.NotContains(t, string(r.GetImmediateResponse().GetBody()), "assumed", "a stated limit needs no explanation")
}
