package processor_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/pricing"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// abortedStream sends body to path, answers 200 with an SSE stream of the
// given chunks, and then the client goes away; it returns the report.
func abortedStream(h *harness, path, body string, chunks ...string) *spendguardv1.CostReport {
	h.t.Helper()
	s, cancel := h.open()
	h.roundTrip(s, reqHeaders(path, "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(body))
	h.roundTrip(s, respHeadersCT("200", "text/event-stream"))
	for _, c := range chunks {
		h.roundTrip(s, respBody([]byte(c), false))
	}
	require.NoError(h.t, s.CloseSend())
	cancel()
	h.eventually(func() bool { c := h.spend("acme"); return c.Reserved == 0 && c.Committed > 0 })
	select {
	case rep := <-h.reports:
		return rep
	case <-time.After(5 * time.Second):
		h.t.Fatal("no report")
		return nil
	}
}

// responsesDelta is one text delta event of vLLM's Responses stream.
func responsesDelta(text string) string {
	return "event: response.output_text.delta\ndata: " + `{"content_index":0,"delta":` + string(mustJSON(text)) +
		`,"item_id":"msg_1","logprobs":[],"output_index":0,"sequence_number":3,"type":"response.output_text.delta"}` + "\n\n"
}

// TestAbortedResponsesStreamIsCounted: the Responses request's
// instructions and items are converted to the chat messages vLLM renders,
// counted by /tokenize, and with the delivered text counted too the
// report is counted, charged exactly that.
func TestAbortedResponsesStreamIsCounted(t *testing.T) {
	ts := newTokenizeServer(t, nil)
	h := countHarness(t, ts.URL, "5s")
	body := `{"model":"Hunyuan","stream":true,"max_output_tokens":100,"instructions":"Answer in English",` +
		`"input":[{"type":"message","role":"user","content":"Write a haiku"},{"type":"message","role":"assistant","content":[{"type":"output_text","text":"Sure thing"}]},{"role":"user","content":"Now"}]}`
	created := "event: response.created\ndata: " + `{"response":{"id":"resp_1","status":"in_progress","usage":null},"sequence_number":0,"type":"response.created"}` + "\n\n"
	rep := abortedStream(h, "/v1/responses", body, created, responsesDelta("Old pond frog"), responsesDelta(" jumps in"))

	// system (2+3) + user (2+3) + assistant (2+2) + user (2+1) + generation prompt (1)
	assert.Equal(t, int64(18), rep.GetPromptTokens(), "the converted prompt, counted")
	assert.Equal(t, int64(5), rep.GetCompletionTokens(), "the delivered text, counted")
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_COUNTED, rep.GetUsageSource())
	assert.False(t, rep.GetEstimated())
	assert.True(t, rep.GetAborted())
	want := countedCost(t, h, pricing.Usage{Prompt: 18, Completion: 5})
	assert.Equal(t, want, int64(h.spend("acme").Committed))

	ts.mu.Lock()
	defer ts.mu.Unlock()
	var chat map[string]any
	for _, g := range ts.got {
		if _, ok := g["messages"]; ok {
			chat = g
		}
	}
	require.NotNil(t, chat, "the prompt was counted as chat messages")
	assert.Equal(t, []any{
		map[string]any{"role": "system", "content": "Answer in English"},
		map[string]any{"role": "user", "content": "Write a haiku"},
		map[string]any{"role": "assistant", "content": "Sure thing"},
		map[string]any{"role": "user", "content": "Now"},
	}, chat["messages"])
	assert.Equal(t, true, chat["add_generation_prompt"])
}

// TestAbortedMessagesStreamBeforeMessageStartIsCounted: an Anthropic
// stream cut before its message_start has no reported prompt; the
// request converted as vLLM converts it is counted, and nothing was
// delivered.
func TestAbortedMessagesStreamBeforeMessageStartIsCounted(t *testing.T) {
	ts := newTokenizeServer(t, nil)
	h := countHarness(t, ts.URL, "5s")
	body := `{"model":"Hunyuan","max_tokens":50,"stream":true,"system":[{"type":"text","text":"x-anthropic-billing-header: cc=1;"},{"type":"text","text":"Be kind"}],` +
		`"messages":[{"role":"user","content":[{"type":"text","text":"Hello there friend"}]}]}`
	rep := abortedStream(h, "/v1/messages", body, "event: message_start\ndata: {\"type\":\"message_start\",\"mess")

	assert.Equal(t, int64((2+2)+(2+3)+1), rep.GetPromptTokens(), "system (billing header left out) + user + generation prompt")
	assert.Zero(t, rep.GetCompletionTokens(), "nothing was delivered")
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_COUNTED, rep.GetUsageSource())
	assert.False(t, rep.GetEstimated())
	assert.Equal(t, countedCost(t, h, pricing.Usage{Prompt: 10}), int64(h.spend("acme").Committed))
	assert.Equal(t, int64(1), ts.calls.Load(), "one call: the prompt")
}

// TestAbortedMessagesStreamAfterMessageStartUsesItsPrompt: once
// message_start reported the prompt, it is taken as is: only the
// delivered text is counted.
func TestAbortedMessagesStreamAfterMessageStartUsesItsPrompt(t *testing.T) {
	ts := newTokenizeServer(t, nil)
	h := countHarness(t, ts.URL, "5s")
	body := `{"model":"Hunyuan","max_tokens":50,"stream":true,"messages":[{"role":"user","content":"Hello"}]}`
	start := "event: message_start\ndata: " + `{"type":"message_start","message":{"id":"chatcmpl-1","type":"message","role":"assistant","content":[],"model":"Hunyuan","stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":42,"output_tokens":0}}}` + "\n\n"
	delta := "event: content_block_delta\ndata: " + `{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi you two"}}` + "\n\n"
	rep := abortedStream(h, "/v1/messages", body, start, delta)

	assert.Equal(t, int64(42), rep.GetPromptTokens(), "reported")
	assert.Equal(t, int64(3), rep.GetCompletionTokens(), "counted")
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_COUNTED, rep.GetUsageSource())
	assert.Equal(t, int64(1), ts.calls.Load(), "no call for the prompt")
}

// TestUncountableResponsesPromptKeepsTheEstimate: a Responses request
// resolved from stored state (previous_response_id) is not counted; its
// prompt stays estimated.
func TestUncountableResponsesPromptKeepsTheEstimate(t *testing.T) {
	ts := newTokenizeServer(t, nil)
	h := countHarness(t, ts.URL, "5s")
	body := `{"model":"Hunyuan","stream":true,"max_output_tokens":100,"previous_response_id":"resp_0","input":"More please"}`
	rep := abortedStream(h, "/v1/responses", body, responsesDelta("Old pond frog"))
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED, rep.GetUsageSource())
	assert.True(t, rep.GetEstimated())
	assert.Equal(t, int64(3), rep.GetCompletionTokens(), "the completion is still counted")
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, g := range ts.got {
		assert.NotContains(t, g, "messages", "no prompt count was asked for")
	}
}

// TestAbortedMultiPromptCompletionsChargesEveryPrompt: under
// continuous_usage_stats each choice's chunk carries its own prompt's
// prompt_tokens (vLLM numbers choices prompt*n + i); a stream aborted
// before the final usage chunk is charged the sum over its prompts.
func TestAbortedMultiPromptCompletionsChargesEveryPrompt(t *testing.T) {
	h := countHarness(t, "", "")
	body := `{"model":"Hunyuan","prompt":["one two","three four five"],"n":2,"max_tokens":10,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`
	chunk := func(index, prompt, completion int) string {
		return fmt.Sprintf(`data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"Hunyuan","choices":[{"index":%d,"text":"x","logprobs":null,"finish_reason":null,"stop_reason":null}],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d}}`,
			index, prompt, prompt+completion, completion) + "\n\n"
	}
	rep := abortedStream(h, "/v1/completions", body, chunk(0, 5, 1), chunk(2, 7, 1), chunk(3, 7, 1), chunk(1, 5, 1), chunk(0, 5, 2))
	assert.Equal(t, int64(12), rep.GetPromptTokens(), "both prompts, not the last chunk's")
	assert.Equal(t, int64(2+1+1+1), rep.GetCompletionTokens(), "every choice's last count")
	assert.Equal(t, countedCost(t, h, pricing.Usage{Prompt: 12, Completion: 5}), int64(h.spend("acme").Committed))
}
