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

// splitSeedsPerBody is how many random splits every fixture body gets.
const splitSeedsPerBody = 200

type bodyCase struct {
	file      string
	found     bool
	usage     pricing.Usage
	reasoning int64
}

// upstreamCases holds the counts SOURCES.md gives for every JSON fixture in
// shared/fixtures/upstream.
var upstreamCases = []bodyCase{
	{file: "openai-chat.json", found: true, usage: pricing.Usage{Prompt: 8, Completion: 377}, reasoning: 320},
	{file: "openai-completion.json", found: true, usage: pricing.Usage{Prompt: 31, Completion: 25}},
	{file: "openai-embeddings.json", found: true, usage: pricing.Usage{Prompt: 7}},
	{file: "openai-error-404-model-not-found.json"},
	{file: "vllm-chat.json", found: true, usage: pricing.Usage{Prompt: 12, Completion: 100}},
	{file: "vllm-completion.json", found: true, usage: pricing.Usage{Prompt: 252, Completion: 1}},
	{file: "vllm-embeddings.json", found: true, usage: pricing.Usage{Prompt: 39}},
	{file: "vllm-error-400.json"},
}

// handMadeCases holds the counts of the bodies in testdata (see its README).
var handMadeCases = []bodyCase{
	{file: "responses-basic.json", found: true, usage: pricing.Usage{Prompt: 36, Completion: 87}},
	{file: "responses-cached-reasoning.json", found: true, usage: pricing.Usage{Prompt: 1200, CachedPrompt: 1024, Completion: 300}, reasoning: 256},
	{file: "responses-function-call.json", found: true, usage: pricing.Usage{Prompt: 81, Completion: 19}},
	{file: "chat-tool-call-decoys.json", found: true, usage: pricing.Usage{Prompt: 140, CachedPrompt: 128, Completion: 23}},
	{file: "vllm-messages.json", found: true, usage: pricing.Usage{Prompt: 25, Completion: 9}},
	{file: "vllm-transcription.json", found: true, usage: pricing.Usage{Seconds: 3}},
}

func TestUpstreamFixturesAllCovered(t *testing.T) {
	dir := upstreamFixtures(t)
	files, err := filepath.Glob(filepath.Join(dir, "*.json"))
	require.NoError(t, err)
	require.NotEmpty(t, files)
	var have, want []string
	for _, f := range files {
		have = append(have, filepath.Base(f))
	}
	for _, c := range upstreamCases {
		want = append(want, c.file)
	}
	sort.Strings(have)
	sort.Strings(want)
	assert.Equal(t, want, have, "every JSON fixture needs its expected counts in upstreamCases")
}

func TestFixtures(t *testing.T) {
	seed := baseSeed(t)
	run := func(t *testing.T, dir string, cases []bodyCase) {
		for _, c := range cases {
			t.Run(strings.TrimSuffix(c.file, ".json"), func(t *testing.T) {
				body, err := os.ReadFile(filepath.Join(dir, c.file))
				require.NoError(t, err)
				want := outcome{Usage: c.usage, Details: Details{Reasoning: c.reasoning}, Found: c.found}

				assert.Equal(t, want, scanWhole(body), "whole")
				assert.Equal(t, want, scanBytewise(body), "byte by byte")
				for k := range uint64(splitSeedsPerBody) {
					if !assert.Equal(t, want, scanRandom(body, seed+k), "random split, -usage.seed=%d", seed+k) {
						return
					}
				}
			})
		}
	}
	t.Run("upstream", func(t *testing.T) { run(t, upstreamFixtures(t), upstreamCases) })
	t.Run("hand-made", func(t *testing.T) { run(t, "testdata", handMadeCases) })
}
