package processor

import (
	"testing"

	"github.com/stretchr/testify/assert"

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
		assert.Equal(t, streams, generates(e), "%v: generates tokens exactly when it streams them", e)
	}
}
