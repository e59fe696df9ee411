package e2e

import (
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// TestAbortedStreamIsCountedByTokenize: with pricing.tokenizer pointing
// at a vLLM's /tokenize, a stream the upstream resets mid-way is charged
// the prompt vLLM would have reported plus exactly the tokens delivered,
// reported as counted; the same request completed is charged its reported
// usage, without a single /tokenize call. The stream does not grow here
// (limits.streams.grow: false): one that grows asks vLLM for usage on
// every chunk and needs no counting (TestAbortedGrowingStreamIsReported).
func TestAbortedStreamIsCountedByTokenize(t *testing.T) {
	tokenizer, tokURL := startVLLM(t, fakevllm.Config{})
	cfg := strings.Replace(streamConfig, "budgets:\n",
		"  tokenizer: {url: '"+tokURL+"', timeout: 5s}\nbudgets:\n", 1) + "limits:\n  streams:\n    grow: false\n"
	s := newStackWith(t, cfg, fakevllm.Config{}, stackOptions{streamThrough: true})
	model := "meta-llama/Llama-3.1-8B"
	body := streamRequest("/v1/chat/completions", model, false)
	reports := func(n int) bool { return len(s.reports.all()) == n }

	full := s.postRaw("/v1/chat/completions", body, "x-tenant-id", "acme")
	require.NoError(t, full.err)
	require.Eventually(t, func() bool { return reports(1) }, 10*time.Second, 5*time.Millisecond)
	reported := s.reports.all()[0]
	require.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_REPORTED, reported.GetUsageSource())
	assert.Zero(t, tokenizer.Count(), "reported usage: /tokenize never asked")

	cut := s.postRaw("/v1/chat/completions", body, "x-tenant-id", "acme", fakevllm.HeaderAbortAfterEvents, "6")
	assert.Error(t, cut.err, "the client sees a cut body")
	require.Eventually(t, func() bool { return reports(2) }, 10*time.Second, 5*time.Millisecond)
	rep := s.reports.all()[1]
	assert.True(t, rep.GetAborted())
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_COUNTED, rep.GetUsageSource())
	assert.False(t, rep.GetEstimated())
	assert.Equal(t, reported.GetPromptTokens(), rep.GetPromptTokens(), "the prompt as vLLM counts it, template applied")
	// Six events: the role chunk and five words, one token each.
	assert.Equal(t, int64(5), rep.GetCompletionTokens())
	assert.Positive(t, tokenizer.Count())
}

// TestAbortedGrowingStreamIsReported: a stream whose reservation grows
// carries vLLM's running usage on every chunk, so when the upstream
// resets it mid-way it is charged the usage of the last chunk delivered,
// reported by the upstream, without asking /tokenize.
func TestAbortedGrowingStreamIsReported(t *testing.T) {
	tokenizer, tokURL := startVLLM(t, fakevllm.Config{})
	cfg := strings.Replace(streamConfig, "budgets:\n",
		"  tokenizer: {url: '"+tokURL+"', timeout: 5s}\nbudgets:\n", 1)
	s := newStackWith(t, cfg, fakevllm.Config{}, stackOptions{streamThrough: true})
	body := streamRequest("/v1/chat/completions", "meta-llama/Llama-3.1-8B", false)
	cut := s.postRaw("/v1/chat/completions", body, "x-tenant-id", "acme", fakevllm.HeaderAbortAfterEvents, "6")
	assert.Error(t, cut.err, "the client sees a cut body")
	require.Eventually(t, func() bool { return len(s.reports.all()) == 1 }, 10*time.Second, 5*time.Millisecond)
	rep := s.reports.all()[0]
	assert.True(t, rep.GetAborted())
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_REPORTED, rep.GetUsageSource())
	assert.False(t, rep.GetEstimated())
	assert.Equal(t, int64(5), rep.GetCompletionTokens(), "the role chunk and five words, one token each")
	assert.Zero(t, tokenizer.Count())
	assert.NotContains(t, cut.body, `"usage"`, "the client did not ask for usage")
}
