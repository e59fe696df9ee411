package processor

import (
	"os"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor/usage"
)

// TestSSEKindPerEndpoint: every endpoint kind streams in the shape its
// scanner reads, and only those that generate tokens are charged a
// completion estimate.
func TestSSEKindPerEndpoint(t *testing.T) {
	want := map[pricing.Endpoint]usage.SSEKind{
		pricing.ChatCompletions: usage.SSEChat,
		pricing.Completions:     usage.SSEChat,
		pricing.Generate:        usage.SSEChat,
		pricing.Transcriptions:  usage.SSEChat,
		pricing.Translations:    usage.SSEChat,
		pricing.Responses:       usage.SSEResponses,
		pricing.Messages:        usage.SSEAnthropic,
	}
	for e, k := range want {
		assert.Equal(t, k, sseKind(e), "%v", e)
	}
	for e := pricing.ChatCompletions; e <= pricing.LastEndpoint; e++ {
		_, streams := want[e]
		assert.Equal(t, streams, e.Generates(), "%v: generates tokens exactly when it streams them", e)
	}
}

// TestEstimate: the estimate of a response without usage takes an
// Anthropic stream's own prompt, and caps the delivered completion only by
// the request's own limit.
func TestEstimate(t *testing.T) {
	read := func(name string) []byte {
		b, err := os.ReadFile(filepath.Join("usage", "testdata", name))
		require.NoError(t, err)
		return b
	}
	aborted, truncated := read("vllm-messages-stream-aborted.sse"), read("vllm-chat-stream-truncated.sse")
	tests := []struct {
		name      string
		endpoint  pricing.Endpoint
		maxTokens int64
		stream    []byte
		want      pricing.Usage
	}{
		// message_start said 31 prompt tokens; 6 content events.
		{name: "anthropic, cut short", endpoint: pricing.Messages, maxTokens: 100, stream: aborted, want: pricing.Usage{Prompt: 31, Completion: 6}},
		{name: "anthropic, max_tokens caps", endpoint: pricing.Messages, maxTokens: 4, stream: aborted, want: pricing.Usage{Prompt: 31, Completion: 4}},
		// 4 content events, above the default output limit of 2: no
		// prompt reported, so bytes/4.
		{name: "chat, no limit stated", endpoint: pricing.ChatCompletions, stream: truncated, want: pricing.Usage{Prompt: 25, Completion: 4}},
		{name: "chat, max_tokens caps", endpoint: pricing.ChatCompletions, maxTokens: 3, stream: truncated, want: pricing.Usage{Prompt: 25, Completion: 3}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := &pricing.Request{Endpoint: tt.endpoint, PromptBytes: 100, MaxOutputTokens: tt.maxTokens, N: 1}
			st := &stream{endpoint: tt.endpoint, req: req, worstCase: req.WorstCase(2)}
			st.sseScan = usage.NewSSEScanner(sseKind(tt.endpoint), false)
			st.sseScan.Write(tt.stream)
			st.sseScan.Finish()
			assert.Equal(t, tt.want, st.estimate())
		})
	}

	// Endpoints that generate nothing are charged no completion, however
	// many bytes came.
	req := &pricing.Request{Endpoint: pricing.Embeddings, PromptBytes: 40}
	st := &stream{endpoint: pricing.Embeddings, req: req, worstCase: req.WorstCase(1000), bodyBytes: 1 << 20}
	assert.Equal(t, pricing.Usage{Prompt: 10}, st.estimate())
	// A JSON response cut short without a stated limit: bytes/4, above the
	// default of 2.
	req = &pricing.Request{Endpoint: pricing.ChatCompletions, PromptBytes: 40, N: 1}
	st = &stream{endpoint: pricing.ChatCompletions, req: req, worstCase: req.WorstCase(2), bodyBytes: 400}
	assert.Equal(t, pricing.Usage{Prompt: 10, Completion: 100}, st.estimate())
}
