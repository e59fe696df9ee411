package processor_test

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
)

// chunkUsage is the usage object of a vLLM chunk (flat: no nested
// object but a null prompt_tokens_details).
var chunkUsage = regexp.MustCompile(`"usage":\{[^{}]*\}`)

// withoutContinuousUsage is what vLLM streams for a request that did not
// ask for continuous usage, given the stream it sends with it (compact
// events, one data line each): every chunk with choices loses its usage
// (chat: the member and its comma; completions: its value becomes null),
// and with dropEvent the usage-only event goes too.
func withoutContinuousUsage(stream string, completions, dropEvent bool) string {
	var b strings.Builder
	for _, ev := range strings.SplitAfter(stream, "\n\n") {
		switch {
		case strings.Contains(ev, `"choices":[]`):
			if !dropEvent {
				b.WriteString(ev)
			}
		case completions:
			b.WriteString(chunkUsage.ReplaceAllString(ev, `"usage":null`))
		default:
			b.WriteString(strings.Replace(chunkUsage.ReplaceAllString(ev, ""), ",}\n", "}\n", 1))
		}
	}
	return b.String()
}

// TestRunningUsageHiddenFromClient: a stream whose usage must run (issue
// 19) asks vLLM for include_usage and continuous_usage_stats; the client
// receives exactly what vLLM would have sent for its own body (no usage
// on any chunk it did not ask for, no usage event it did not ask for),
// whatever the splits, and is charged the usage vLLM reported.
func TestRunningUsageHiddenFromClient(t *testing.T) {
	const both = `{"include_usage":true,"continuous_usage_stats":true}`
	chat := string(streamFixture(t, "vllm-chat-stream-continuous.sse"))
	text := string(streamFixture(t, "vllm-completion-stream-continuous-n2.sse"))
	tests := []struct {
		name, path, body, wantFwd, upstream, client string
		prompt, completion                          int64
	}{
		{
			name: "chat without stream_options", path: "/v1/chat/completions",
			body:     `{"model":"Hunyuan","stream":true,"messages":[{"role":"user","content":"Once"}]}`,
			wantFwd:  withLimit(`{"model":"Hunyuan","stream":true,"messages":[{"role":"user","content":"Once"}],"stream_options":`+both+`}`, "max_completion_tokens", 10),
			upstream: chat, client: withoutContinuousUsage(chat, false, true), prompt: 21, completion: 4,
		},
		{
			name: "chat with include_usage", path: "/v1/chat/completions",
			body:     `{"model":"Hunyuan","stream":true,"stream_options":{"include_usage":true},"messages":[]}`,
			wantFwd:  withLimit(`{"model":"Hunyuan","stream":true,"stream_options":`+both+`,"messages":[]}`, "max_completion_tokens", 10),
			upstream: chat, client: withoutContinuousUsage(chat, false, false), prompt: 21, completion: 4,
		},
		{
			name: "chat asking for both", path: "/v1/chat/completions",
			body:     `{"model":"Hunyuan","stream":true,"stream_options":` + both + `,"messages":[]}`,
			wantFwd:  withLimit(`{"model":"Hunyuan","stream":true,"stream_options":`+both+`,"messages":[]}`, "max_completion_tokens", 10),
			upstream: chat, client: chat, prompt: 21, completion: 4,
		},
		{
			name: "completions, two prompts, n 2, usage off", path: "/v1/completions",
			body:     `{"model":"Hunyuan","prompt":["Count:","Colors:"],"n":2,"stream":true,"stream_options":{"include_usage":false}}`,
			wantFwd:  withLimit(`{"model":"Hunyuan","prompt":["Count:","Colors:"],"n":2,"stream":true,"stream_options":`+both+`}`, "max_tokens", 10),
			upstream: text, client: withoutContinuousUsage(text, true, true), prompt: 10, completion: 8,
		},
	}
	require.NotContains(t, tests[0].client, "usage", "no usage at all")
	require.NotContains(t, tests[3].client, `"usage":{`, "no usage but null")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.client != tt.upstream {
				require.NotEqual(t, tt.upstream, tt.client)
			}
			for _, chunk := range splits {
				h := newHarness(t, usageConfig)
				h.srv.SetRunningUsage(true)
				fwd, client := exchangeAt(t, h, tt.path, tt.body, []byte(tt.upstream), chunk, false)
				assert.Equal(t, tt.wantFwd, string(fwd), "chunk %d", chunk)
				assert.Equal(t, tt.client, string(client), "chunk %d", chunk)
				rep := report(t, h)
				assert.Equal(t, tt.prompt, rep.GetPromptTokens())
				assert.Equal(t, tt.completion, rep.GetCompletionTokens())
				assert.False(t, rep.GetEstimated())
				assert.Equal(t, budget.Counter{Committed: cost(tt.prompt, tt.completion)}, h.spend("acme"))
			}
		})
	}
}

// TestRunningUsageAborted: a stream cut before its usage event is charged
// the running counts it carried (the prompt and each choice's last
// count), not an estimate, and the client saw none of them.
func TestRunningUsageAborted(t *testing.T) {
	upstream := string(streamFixture(t, "vllm-chat-stream-continuous-n2-aborted.sse"))
	body := `{"model":"Hunyuan","n":2,"stream":true,"messages":[{"role":"user","content":"Two proverbs"}]}`
	for _, chunk := range splits {
		h := newHarness(t, usageConfig)
		h.srv.SetRunningUsage(true)
		_, client := exchange(t, h, body, []byte(upstream), chunk, true)
		assert.Equal(t, withoutContinuousUsage(upstream, false, true), string(client), "chunk %d", chunk)
		rep := report(t, h)
		assert.Equal(t, int64(17), rep.GetPromptTokens())
		assert.Equal(t, int64(5+2), rep.GetCompletionTokens())
		assert.False(t, rep.GetEstimated())
		assert.True(t, rep.GetAborted())
	}
}
