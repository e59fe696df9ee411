package usage

import (
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// sseSplitSeeds is how many random splits every fixture stream gets.
const sseSplitSeeds = 200

type streamCase struct {
	file      string
	kind      SSEKind
	found     bool
	usage     pricing.Usage
	reasoning int64
	content   int
	dropped   int    // usage-only events dropUsageEvent removes
	model     string // the model the events name
	// limited, when not nil, is what Result reports when every event is
	// larger than MaxSSEEventBytes (found, usage); nil: the same as
	// without the limit. Anthropic usage and per-choice running counts
	// are not read from such events.
	limited *limitedCase
}

type limitedCase struct {
	found bool
	usage pricing.Usage
}

// upstreamStreams holds the counts SOURCES.md gives for every SSE fixture in
// shared/fixtures/upstream; content counts the events with generated text.
var upstreamStreams = []streamCase{
	{file: "openai-chat-stream-usage.sse", found: true, usage: pricing.Usage{Prompt: 12, Completion: 100}, reasoning: 100, dropped: 1, model: "gpt-5-nano-2025-08-07"},
	{file: "openai-chat-stream-no-usage.sse", content: 48, model: "gpt-5-nano-2025-08-07"},
	{file: "openai-completion-stream-usage.sse", found: true, usage: pricing.Usage{Prompt: 31, Completion: 25}, content: 25, dropped: 1, model: "babbage:2023-07-21-v2"},
}

// handMadeStreams holds the counts of the streams in testdata (see its
// README).
var handMadeStreams = []streamCase{
	{file: "vllm-chat-stream-usage.sse", found: true, usage: pricing.Usage{Prompt: 17, Completion: 8}, content: 8, dropped: 1, model: "Qwen/Qwen3-8B"},
	{file: "vllm-chat-stream-crlf-keepalive.sse", found: true, usage: pricing.Usage{Prompt: 40, CachedPrompt: 32, Completion: 9}, reasoning: 4, content: 9, dropped: 1, model: "Qwen/Qwen3-8B"},
	{file: "vllm-chat-stream-continuous.sse", found: true, usage: pricing.Usage{Prompt: 21, Completion: 4}, content: 4, dropped: 1, model: "Qwen/Qwen3-8B"},
	{file: "vllm-chat-stream-error.sse", content: 3, model: "Qwen/Qwen3-8B"},
	{file: "vllm-chat-stream-truncated.sse", content: 4, model: "Qwen/Qwen3-8B"},
	{file: "vllm-chat-stream-tool-calls.sse", found: true, usage: pricing.Usage{Prompt: 230, Completion: 19}, content: 5, dropped: 1, model: "Qwen/Qwen3-8B"},
	{file: "vllm-completion-stream-usage.sse", found: true, usage: pricing.Usage{Prompt: 6, Completion: 8}, content: 8, dropped: 1, model: "Qwen/Qwen3-8B"},
	{file: "vllm-completion-stream-continuous-n2.sse", found: true, usage: pricing.Usage{Prompt: 10, Completion: 8}, content: 8, dropped: 1, model: "Qwen/Qwen3-8B"},
	{file: "vllm-responses-stream.sse", kind: SSEResponses, found: true, usage: pricing.Usage{Prompt: 15, Completion: 4}, content: 4, model: "Qwen/Qwen3-8B"},
	{file: "vllm-chat-stream-continuous-n2.sse", found: true, usage: pricing.Usage{Prompt: 17, Completion: 7}, content: 7, dropped: 1, model: "Qwen/Qwen3-8B"},
	{file: "vllm-chat-stream-continuous-n2-aborted.sse", found: true, usage: pricing.Usage{Prompt: 17, Completion: 7}, content: 7, model: "Qwen/Qwen3-8B",
		limited: &limitedCase{found: true, usage: pricing.Usage{Prompt: 17, Completion: 5}}},
	{file: "vllm-messages-stream.sse", kind: SSEAnthropic, found: true, usage: pricing.Usage{Prompt: 31, Completion: 24}, content: 7, model: "Qwen/Qwen3-8B",
		limited: &limitedCase{}},
	{file: "vllm-messages-stream-aborted.sse", kind: SSEAnthropic, content: 6, model: "Qwen/Qwen3-8B"},
	{file: "vllm-messages-stream-error.sse", kind: SSEAnthropic, content: 2, model: "Qwen/Qwen3-8B"},
	{file: "vllm-transcription-stream-usage.sse", found: true, usage: pricing.Usage{Prompt: 1508, Completion: 4}, content: 4, dropped: 1, model: "openai/whisper-large-v3"},
}

// withoutUsageEvents removes from body, independently of the scanner, the
// events (split at blank lines written as eol twice) that hold both an empty
// choices array and a usage object; it reports how many it removed.
func withoutUsageEvents(body, eol string) (string, int) {
	var b strings.Builder
	n := 0
	for _, ev := range strings.SplitAfter(body, eol+eol) {
		if strings.Contains(ev, `"choices":[]`) && strings.Contains(ev, `"usage":{`) {
			n++
			continue
		}
		b.WriteString(ev)
	}
	return b.String(), n
}

func TestSSEFixturesAllCovered(t *testing.T) {
	check := func(dir string, cases []streamCase) {
		files, err := filepath.Glob(filepath.Join(dir, "*.sse"))
		require.NoError(t, err)
		require.NotEmpty(t, files)
		var have, want []string
		for _, f := range files {
			have = append(have, filepath.Base(f))
		}
		for _, c := range cases {
			want = append(want, c.file)
		}
		sort.Strings(have)
		sort.Strings(want)
		assert.Equal(t, want, have, "every stream in %s needs its expected counts", dir)
	}
	check(upstreamFixtures(t), upstreamStreams)
	check("testdata", handMadeStreams)
}

func TestSSEFixtures(t *testing.T) {
	seed := baseSeed(t)
	run := func(t *testing.T, dir string, cases []streamCase) {
		for _, c := range cases {
			t.Run(strings.TrimSuffix(c.file, ".sse"), func(t *testing.T) {
				body, err := os.ReadFile(filepath.Join(dir, c.file))
				require.NoError(t, err)
				eol := "\n"
				if strings.Contains(string(body), "\r\n") {
					eol = "\r\n"
				}
				wantDropped, n := withoutUsageEvents(string(body), eol)
				require.Equal(t, c.dropped, n, "usage-only events in the file")
				if c.kind != SSEChat {
					wantDropped = string(body) // never dropped
				}

				got := checkSSE(t, body, c.kind, 0, wantDropped, seed, sseSplitSeeds)
				want := sseOutcome{Out: string(body), Usage: c.usage, Details: Details{Reasoning: c.reasoning}, Found: c.found, Content: c.content, Model: c.model}
				assert.Equal(t, want, got)
			})
		}
	}
	t.Run("upstream", func(t *testing.T) { run(t, upstreamFixtures(t), upstreamStreams) })
	t.Run("hand-made", func(t *testing.T) { run(t, "testdata", handMadeStreams) })
}

// TestSSEEventLimit: with a tiny limit every event outgrows it. Nothing is
// dropped, but usage is still found in full (streamed through the JSON
// scanner), whatever the splits.
func TestSSEEventLimit(t *testing.T) {
	seed := baseSeed(t)
	for _, c := range append(append([]streamCase(nil), upstreamStreams...), handMadeStreams...) {
		t.Run(strings.TrimSuffix(c.file, ".sse"), func(t *testing.T) {
			dir := "testdata"
			if strings.HasPrefix(c.file, "openai-") {
				dir = upstreamFixtures(t)
			}
			body, err := os.ReadFile(filepath.Join(dir, c.file))
			require.NoError(t, err)
			got := checkSSE(t, body, c.kind, 64, string(body), seed, 20)
			want := limitedCase{found: c.found, usage: c.usage}
			if c.limited != nil {
				want = *c.limited
			}
			assert.Equal(t, want.found, got.Found)
			assert.Equal(t, want.usage, got.Usage)
		})
	}
}
