package usage

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// extraOutcome is what a scanner reports beyond sseOutcome: the prompt of
// a stream cut short and the delivered text.
type extraOutcome struct {
	Prompt   pricing.Usage
	PromptOK bool
	Text     string
}

// scanExtra runs body through a scanner of kind capturing up to limit
// bytes of text, in chunks of the sizes next returns.
func scanExtra(body []byte, kind SSEKind, limit int, next func(rest int) int) extraOutcome {
	s := NewSSEScanner(kind, kind == SSEChat)
	s.SetCaptureText(limit)
	feed(s, body, next, 'x')
	u, ok := s.PromptOnly()
	return extraOutcome{Prompt: u, PromptOK: ok, Text: string(s.Text())}
}

// checkExtra runs body whole, byte by byte, split in two at every byte and
// at random splits, and checks that every run reports want.
func checkExtra(t *testing.T, body []byte, kind SSEKind, limit int, want extraOutcome) {
	t.Helper()
	require.Equal(t, want, scanExtra(body, kind, limit, whole), "whole")
	require.Equal(t, want, scanExtra(body, kind, limit, bytewise), "byte by byte")
	for cut := 1; cut < len(body); cut++ {
		first := true
		split := func(rest int) int {
			if first {
				first = false
				return cut
			}
			return rest
		}
		require.Equal(t, want, scanExtra(body, kind, limit, split), "split at %d", cut)
	}
	seed := baseSeed(t)
	for k := range uint64(20) {
		require.Equal(t, want, scanExtra(body, kind, limit, randomSplits(seed+k)), "random split, seed %d", seed+k)
	}
}

func TestSSEAnthropicPromptOnly(t *testing.T) {
	tests := []struct {
		file string
		want extraOutcome
	}{
		{file: "vllm-messages-stream.sse"},
		{file: "vllm-messages-stream-aborted.sse", want: extraOutcome{Prompt: pricing.Usage{Prompt: 31}, PromptOK: true}},
		{file: "vllm-messages-stream-error.sse", want: extraOutcome{Prompt: pricing.Usage{Prompt: 12}, PromptOK: true}},
		{file: "vllm-chat-stream-truncated.sse"}, // only SSEAnthropic reports a prompt alone
	}
	for _, tt := range tests {
		t.Run(tt.file, func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", tt.file))
			require.NoError(t, err)
			kind := SSEAnthropic
			if strings.HasPrefix(tt.file, "vllm-chat") {
				kind = SSEChat
			}
			checkExtra(t, body, kind, 0, tt.want)
		})
	}
}

// TestSSEAnthropicUsageMerge: message_delta's members are laid over
// message_start's, so Anthropic's own stream (a delta with output_tokens
// alone, cache counts in message_start) is read whole.
func TestSSEAnthropicUsageMerge(t *testing.T) {
	frame := func(typ, data string) string { return "event: " + typ + "\ndata: " + data + "\n\n" }
	start := frame("message_start", `{"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-x","content":[],"usage":{"input_tokens":10,"cache_creation_input_tokens":20,"cache_read_input_tokens":300,"output_tokens":1}}}`)
	tests := []struct {
		name   string
		body   string
		want   pricing.Usage
		found  bool
		errMsg string
	}{
		{name: "delta with output only", body: start + frame("message_delta", `{"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":15}}`),
			want: pricing.Usage{Prompt: 330, CachedPrompt: 300, Completion: 15}, found: true},
		{name: "delta overrides input", body: start + frame("message_delta", `{"type":"message_delta","usage":{"input_tokens":11,"output_tokens":2}}`),
			want: pricing.Usage{Prompt: 331, CachedPrompt: 300, Completion: 2}, found: true},
		{name: "last delta wins", body: start + frame("message_delta", `{"type":"message_delta","usage":{"output_tokens":2}}`) +
			frame("message_delta", `{"type":"message_delta","usage":{"output_tokens":9}}`),
			want: pricing.Usage{Prompt: 330, CachedPrompt: 300, Completion: 9}, found: true},
		{name: "delta without start", body: frame("message_delta", `{"type":"message_delta","usage":{"input_tokens":4,"output_tokens":2}}`),
			want: pricing.Usage{Prompt: 4, Completion: 2}, found: true},
		{name: "delta without start or input", body: frame("message_delta", `{"type":"message_delta","usage":{"output_tokens":2}}`),
			errMsg: "neither prompt_tokens nor input_tokens"},
		{name: "type from data, no event field", body: "data: " + `{"type":"message_delta","usage":{"input_tokens":4,"output_tokens":3}}` + "\n\n",
			want: pricing.Usage{Prompt: 4, Completion: 3}, found: true},
		{name: "delta usage null", body: start + frame("message_delta", `{"type":"message_delta","usage":null}`)},
		{name: "delta usage not an object", body: start + frame("message_delta", `{"type":"message_delta","usage":[1]}`), errMsg: "not an object"},
		{name: "bad count", body: start + frame("message_delta", `{"type":"message_delta","usage":{"output_tokens":-1}}`), errMsg: "output_tokens"},
		{name: "usage of other events ignored", body: start + frame("content_block_delta", `{"type":"content_block_delta","usage":{"input_tokens":1,"output_tokens":1}}`)},
		{name: "escaped key", body: start + frame("message_delta", `{"type":"message_delta","\u0075sage":{"output_tokens":5}}`),
			want: pricing.Usage{Prompt: 330, CachedPrompt: 300, Completion: 5}, found: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, next := range []func(int) int{whole, bytewise} {
				s := NewSSEScanner(SSEAnthropic, true)
				for rest := []byte(tt.body); len(rest) > 0; {
					n := next(len(rest))
					out, changed := s.Write(rest[:n])
					require.False(t, changed, "an Anthropic stream is never changed")
					require.Equal(t, string(rest[:n]), string(out))
					rest = rest[n:]
				}
				s.Finish()
				u, found, err := s.Result()
				if tt.errMsg != "" {
					require.ErrorIs(t, err, ErrUsage)
					assert.Contains(t, err.Error(), tt.errMsg)
					continue
				}
				require.NoError(t, err)
				assert.Equal(t, tt.found, found)
				assert.Equal(t, tt.want, u)
			}
		})
	}
}

// TestSSEPerChoice covers the per-choice running counts beyond the
// fixtures: the request's usage wins over later choice events, an index
// out of range or missing makes an event count as the request's, and a
// choice's own last count is used, not its largest.
func TestSSEPerChoice(t *testing.T) {
	ev := func(choices, usage string) string {
		return `data: {"object":"chat.completion.chunk","choices":` + choices + `,"usage":` + usage + "}\n\n"
	}
	u := func(p, c int) string {
		return `{"prompt_tokens":` + itoa(p) + `,"completion_tokens":` + itoa(c) + `}`
	}
	ch := func(i int) string { return `[{"index":` + itoa(i) + `,"delta":{"content":"x"}}]` }
	tests := []struct {
		name string
		body string
		want pricing.Usage
	}{
		{name: "three choices", body: ev(ch(0), u(5, 3)) + ev(ch(2), u(5, 4)) + ev(ch(1), u(5, 1)) + ev(ch(0), u(5, 6)),
			want: pricing.Usage{Prompt: 5, Completion: 11}},
		{name: "final wins, later choice events change nothing", body: ev(ch(0), u(5, 3)) + ev(`[]`, u(5, 9)) + ev(ch(1), u(5, 40)),
			want: pricing.Usage{Prompt: 5, Completion: 9}},
		{name: "no choices member counts as the request's", body: ev(ch(0), u(5, 3)) + `data: {"usage":` + u(5, 8) + "}\n\n",
			want: pricing.Usage{Prompt: 5, Completion: 8}},
		{name: "index past the bound", body: ev(ch(0), u(5, 3)) + ev(ch(maxChoiceIndex+1), u(5, 2)),
			want: pricing.Usage{Prompt: 5, Completion: 2}},
		{name: "index at the bound", body: ev(ch(0), u(5, 3)) + ev(ch(maxChoiceIndex), u(5, 2)),
			want: pricing.Usage{Prompt: 5, Completion: 5}},
		{name: "choice without index", body: ev(ch(0), u(5, 3)) + ev(`[{"delta":{}}]`, u(5, 2)),
			want: pricing.Usage{Prompt: 5, Completion: 2}},
		{name: "last count, not the largest", body: ev(ch(0), u(5, 3)) + ev(ch(0), u(5, 2)),
			want: pricing.Usage{Prompt: 5, Completion: 2}},
		{name: "saturates", body: ev(ch(0), u(5, 1)) + ev(ch(1), `{"prompt_tokens":5,"completion_tokens":9223372036854775807}`),
			want: pricing.Usage{Prompt: 5, Completion: 1<<63 - 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := checkSSE(t, []byte(tt.body), SSEChat, 0, dropUsageOnly(tt.body), baseSeed(t), 20)
			require.True(t, got.Found, got.Err)
			assert.Equal(t, tt.want, got.Usage)
		})
	}
}

// dropUsageOnly removes the events with an empty choices array and a usage
// object from a stream written with "\n" line ends.
func dropUsageOnly(body string) string {
	out, _ := withoutUsageEvents(body, "\n")
	return out
}

func itoa(n int) string { b, _ := json.Marshal(n); return string(b) }

// TestSSECaptureText: the captured text is what an encoding/json reading of
// every event gives, for every fixture and every split; a limit cuts it at
// a character boundary and then stops.
func TestSSECaptureText(t *testing.T) {
	for _, c := range handMadeStreams {
		t.Run(strings.TrimSuffix(c.file, ".sse"), func(t *testing.T) {
			body, err := os.ReadFile(filepath.Join("testdata", c.file))
			require.NoError(t, err)
			want := oracleText(t, body, c.kind)
			if c.content > 0 {
				require.NotEmpty(t, want, "a stream with content has text")
			}
			got := scanExtra(body, c.kind, 1<<20, whole)
			assert.Equal(t, want, got.Text)
			checkExtra(t, body, c.kind, 1<<20, got)

			for _, limit := range []int{1, 7, len(want) / 2, len(want) - 1} {
				if limit <= 0 || limit >= len(want) {
					continue
				}
				cut := scanExtra(body, c.kind, limit, bytewise)
				assert.LessOrEqual(t, len(cut.Text), limit)
				assert.True(t, strings.HasPrefix(want, cut.Text), "limit %d: a prefix of the text", limit)
				assert.True(t, utf8.ValidString(cut.Text) || !utf8.ValidString(want), "limit %d: cut at a character", limit)
				assert.Greater(t, len(cut.Text), limit-utf8.UTFMax, "limit %d: no more than a character short", limit)
			}
			assert.Empty(t, scanExtra(body, c.kind, 0, whole).Text, "off by default")
		})
	}
}

// TestSSECaptureTextAnthropic pins the text of the Anthropic fixture.
func TestSSECaptureTextAnthropic(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "vllm-messages-stream.sse"))
	require.NoError(t, err)
	got := scanExtra(body, SSEAnthropic, 1<<10, whole)
	assert.Equal(t, `The user wants the weather.Let me check — 日本語 😀{"city": "Paris"}`, got.Text)
}

// TestSSECaptureTextResetOff: Reset turns capture off and forgets the text.
func TestSSECaptureTextResetOff(t *testing.T) {
	s := NewSSEScanner(SSEChat, false)
	s.SetCaptureText(100)
	s.Write([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"hi\"}}]}\n\n"))
	require.Equal(t, "hi", string(s.Text()))
	s.Reset(SSEChat, false)
	s.Write([]byte("data: {\"choices\":[{\"index\":0,\"delta\":{\"content\":\"ho\"}}]}\n\n"))
	assert.Empty(t, s.Text())
}

// oracleText decodes every event of body with encoding/json and collects
// the delivered text as the package documentation lists it.
func oracleText(t *testing.T, body []byte, kind SSEKind) string {
	t.Helper()
	var b strings.Builder
	str := func(v any) {
		if s, ok := v.(string); ok {
			b.WriteString(s)
		}
	}
	obj := func(v any) map[string]any { m, _ := v.(map[string]any); return m }
	arr := func(v any) []any { a, _ := v.([]any); return a }
	for _, block := range strings.Split(strings.ReplaceAll(string(body), "\r\n", "\n"), "\n\n") {
		var data, typ string
		for _, line := range strings.Split(block, "\n") {
			if v, ok := strings.CutPrefix(line, "data: "); ok {
				data = v
			}
			if v, ok := strings.CutPrefix(line, "event: "); ok {
				typ = v
			}
		}
		var ev map[string]any
		if json.Unmarshal([]byte(data), &ev) != nil {
			continue
		}
		if typ == "" {
			typ, _ = ev["type"].(string)
		}
		switch kind {
		case SSEResponses:
			if strings.HasSuffix(typ, ".delta") {
				str(ev["delta"])
			}
		case SSEAnthropic:
			if typ == "content_block_delta" {
				d := obj(ev["delta"])
				str(d["text"])
				str(d["partial_json"])
				str(d["thinking"])
			}
		default:
			for _, c := range arr(ev["choices"]) {
				str(obj(c)["text"])
				d := obj(obj(c)["delta"])
				for _, k := range chatDeltaKeys {
					str(d[k])
				}
				for _, call := range arr(d["tool_calls"]) {
					str(obj(obj(call)["function"])["arguments"])
				}
			}
		}
	}
	return b.String()
}
