package usage

import (
	"fmt"
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// cmplChunk is one event of a vLLM /v1/completions stream under
// continuous_usage_stats (vLLM's key order, exclude_unset=False): choice
// index i = prompt*n + k carries its own prompt's prompt_tokens and its
// own running completion count.
func cmplChunk(index int, text string, prompt, completion int) string {
	return fmt.Sprintf(`data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"index":%d,"text":%q,"logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_logprobs":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":%d,"total_tokens":%d,"completion_tokens":%d,"prompt_tokens_details":null}}`,
		index, text, prompt, prompt+completion, completion) + "\n\n"
}

// scanPrompts runs body through a SSEChat scanner told n choices per
// prompt, in chunks of the sizes next returns, and reports its usage.
func scanPrompts(t *testing.T, body []byte, n int, next func(rest int) int) pricing.Usage {
	t.Helper()
	s := NewSSEScanner(SSEChat, false)
	s.SetChoicesPerPrompt(n)
	feed(s, body, next, '\n')
	u, found, err := s.Result()
	require.NoError(t, err)
	require.True(t, found)
	return u
}

// TestSSEPerPrompt: a completions stream with several prompts cut before
// its final usage event is charged the sum over the prompts of each one's
// prompt_tokens (not the last event's), and the sum over choices of each
// one's last count; the same however the body is split.
func TestSSEPerPrompt(t *testing.T) {
	final := `data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[],"usage":{"prompt_tokens":12,"total_tokens":21,"completion_tokens":9,"prompt_tokens_details":null}}` + "\n\n"
	// Two prompts of 5 and 7 tokens, n=2: choices 0 and 1 answer prompt
	// 0, choices 2 and 3 prompt 1.
	twoByTwo := cmplChunk(0, "a", 5, 1) + cmplChunk(2, "b", 7, 1) + cmplChunk(1, "c", 5, 1) +
		cmplChunk(3, "d", 7, 1) + cmplChunk(0, "e", 5, 2) + cmplChunk(3, "f", 7, 2)
	// Three prompts, n=1; the middle one not started yet.
	three := cmplChunk(0, "a", 5, 1) + cmplChunk(2, "b", 9, 1) + cmplChunk(0, "c", 5, 2)
	tests := []struct {
		name string
		body string
		n    int
		want pricing.Usage
	}{
		{name: "two prompts, n=2, aborted", body: twoByTwo, n: 2, want: pricing.Usage{Prompt: 12, Completion: 2 + 1 + 1 + 2}},
		{name: "three prompts, n=1, one not started", body: three, n: 1, want: pricing.Usage{Prompt: 14, Completion: 3}},
		{name: "the final usage wins", body: twoByTwo + final + "data: [DONE]\n\n", n: 2, want: pricing.Usage{Prompt: 12, Completion: 9}},
		{name: "one prompt for every choice (chat)", body: twoByTwo, n: 0, want: pricing.Usage{Prompt: 7, Completion: 6}},
		{name: "one prompt, n=3", body: cmplChunk(0, "a", 5, 1) + cmplChunk(2, "b", 5, 1) + cmplChunk(1, "c", 5, 1), n: 3,
			want: pricing.Usage{Prompt: 5, Completion: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body := []byte(tt.body)
			assert.Equal(t, tt.want, scanPrompts(t, body, tt.n, whole), "whole")
			assert.Equal(t, tt.want, scanPrompts(t, body, tt.n, bytewise), "byte by byte")
			for cut := 1; cut < len(body); cut++ {
				first := true
				split := func(rest int) int {
					if first {
						first = false
						return cut
					}
					return rest
				}
				require.Equal(t, tt.want, scanPrompts(t, body, tt.n, split), "split at %d", cut)
			}
			seed := baseSeed(t)
			for k := range uint64(20) {
				require.Equal(t, tt.want, scanPrompts(t, body, tt.n, randomSplits(seed+k)), "random split, seed %d", seed+k)
			}
		})
	}
}

// TestSSEPerPromptResetForgets: Reset returns a scanner to one prompt for
// every choice, and forgets the prompts seen.
func TestSSEPerPromptResetForgets(t *testing.T) {
	s := NewSSEScanner(SSEChat, false)
	s.SetChoicesPerPrompt(1)
	s.Write([]byte(cmplChunk(0, "a", 5, 1) + cmplChunk(1, "b", 7, 1)))
	u, _, _ := s.Result()
	require.Equal(t, int64(12), u.Prompt)
	s.Reset(SSEChat, false)
	s.Write([]byte(cmplChunk(0, "a", 5, 1) + cmplChunk(1, "b", 7, 1)))
	u, _, _ = s.Result()
	assert.Equal(t, pricing.Usage{Prompt: 7, Completion: 2}, u)
}

// FuzzSSEPerPrompt: with several prompts, any stream split anywhere
// reports what it reports whole, and never a prompt larger than the sum
// of every event's prompt_tokens.
func FuzzSSEPerPrompt(f *testing.F) {
	f.Add([]byte(cmplChunk(0, "a", 5, 1)+cmplChunk(2, "b", 7, 1)+cmplChunk(1, "c", 5, 1)+cmplChunk(3, "d", 7, 2)), uint8(2), uint64(1))
	f.Add([]byte(cmplChunk(0, "a", 5, 1)+cmplChunk(4095, "b", 9, 1)), uint8(1), uint64(2))
	f.Add([]byte(cmplChunk(0, "a", 5, 1)+`data: {"choices":[],"usage":{"prompt_tokens":5,"completion_tokens":1}}`+"\n\n"), uint8(3), uint64(3))
	f.Fuzz(func(t *testing.T, body []byte, n uint8, seed uint64) {
		run := func(next func(int) int) sseOutcome {
			s := NewSSEScanner(SSEChat, false)
			s.SetChoicesPerPrompt(int(n))
			for rest := body; len(rest) > 0; {
				k := max(min(next(len(rest)), len(rest)), 1)
				s.Write(rest[:k])
				rest = rest[k:]
			}
			s.Finish()
			u, found, err := s.Result()
			o := sseOutcome{Usage: u, Found: found}
			if err != nil {
				o.Err = err.Error()
			}
			return o
		}
		want := run(whole)
		require.Equal(t, want, run(bytewise))
		require.Equal(t, want, run(randomSplits(seed)))
		require.GreaterOrEqual(t, want.Usage.Prompt, int64(0))
		require.LessOrEqual(t, want.Usage.CachedPrompt, want.Usage.Prompt)
	})
}
