package pricing

// Usage is the token usage of one request, as the upstream reported it or as
// spendguard estimated it. CachedPrompt is the part of Prompt served from the
// prefix cache (it is included in Prompt, and priced at cached_input when the
// model has that price).
type Usage struct {
	Prompt       int64
	CachedPrompt int64
	Completion   int64
	// Seconds is the audio duration the upstream billed, in whole seconds
	// (vLLM's transcription usage {"type":"duration","seconds":N}); it is
	// priced at Price.PerSecond.
	Seconds int64
}

// Total is Prompt + Completion.
func (u Usage) Total() int64 { return u.Prompt + u.Completion }
