package processor

import (
	"context"
	"unicode/utf8"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/pricing/tokencount"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Counted, not guessed. When a metered request ends without the
// upstream's usage (an aborted or errored stream, a response without
// usage) and pricing.tokenizer is configured, the model server's own
// /tokenize counts what the request cost instead of spendguard's estimate:
// the prompt from the request body (kept for this purpose only when a
// tokenizer is configured; a reference, not a copy), the completion from
// the text the SSE scanner captured as it passed.
//
// Counting never delays a response chunk. complete(), called while the
// last chunk is answered, only marks the stream (count.pending) and leaves
// the settlement to finish(), which runs once the stream has ended; there
// the counts are submitted (tokencount never blocks on a full queue),
// awaited for at most the tokenizer's timeout, and the request settled.
// A request whose prompt and completion were both counted is reported
// with usage_source counted; one whose counts failed, or were only partly
// possible, is charged the estimate for the part that was not counted and
// reported estimated. Whatever happens, finish settles the reservation: a
// failure or a panic while counting falls back to the estimate.

// Tokenizer counts tokens with the model server (*tokencount.Client).
// Every method returns at once; the Count is awaited with Wait.
type Tokenizer interface {
	// ChatPrompt counts a chat completions request body's prompt.
	ChatPrompt(ctx context.Context, model string, body []byte) *tokencount.Count
	// Prompts counts the prompts in field of a completions or
	// embeddings request body.
	Prompts(ctx context.Context, model, field string, body []byte) *tokencount.Count
	// ChatMessages counts a prompt already converted to the chat shape
	// (a Responses or Anthropic Messages request, tokencount.FromResponses
	// and tokencount.FromAnthropic).
	ChatMessages(ctx context.Context, model string, in tokencount.ChatInput) *tokencount.Count
	// Text counts delivered text (copied before Text returns).
	Text(ctx context.Context, model string, text []byte) *tokencount.Count
	// Settings are the tokenizer's settings (its timeout bounds the wait).
	Settings() tokencount.Settings
}

// textCapturer is the SSE scanner's opt-in capture of the content text it
// delivered (usage.SSEScanner): limit bytes at most, 0 turns it off.
type textCapturer interface {
	SetCaptureText(limit int)
	Text() []byte
}

// Capture bounds: the text kept for a count is at most this many bytes
// per token of the worst case (no token of a byte-level tokenizer is
// longer), and never more than maxCaptureBytes.
const (
	captureBytesPerToken = 32
	maxCaptureBytes      = 8 << 20
)

// counting is a stream's state for counting its usage.
type counting struct {
	tok     Tokenizer // nil: no tokenizer configured (when the body was read)
	body    []byte    // the request body, when its prompt can be counted
	limit   int       // capture limit given to the SSE scanner, 0 when none
	pending bool      // complete() left the settlement to finish()
}

// tokenizerRef holds a Tokenizer in an atomic.Pointer.
type tokenizerRef struct{ t Tokenizer }

// SetTokenizer installs the tokenizer streams that read their body after
// this call use to count missing usage; nil turns counting off. Streams
// already past their body keep the one they took.
func (s *Server) SetTokenizer(t Tokenizer) {
	if t == nil {
		s.tok.Store(nil)
		return
	}
	s.tok.Store(&tokenizerRef{t: t})
}

// keepForCount takes the server's tokenizer for this stream and, when the
// endpoint's prompt can be counted, keeps a reference to the request body.
func (st *stream) keepForCount(body []byte) {
	ref := st.srv.tok.Load()
	if ref == nil {
		return
	}
	st.count.tok = ref.t
	switch st.endpoint {
	case pricing.ChatCompletions, pricing.Completions, pricing.Embeddings, pricing.Responses, pricing.Messages:
		st.count.body = body
	}
}

// startCapture has an SSE scanner capture the text it delivers when a
// tokenizer may count it (Reset turned a pooled scanner's capture off).
// The bound follows the request's own output limit; without one, vLLM's
// limit is the context length, and the bound is maxCaptureBytes.
func (st *stream) startCapture() {
	if st.count.tok == nil {
		return
	}
	tc, ok := any(st.sseScan).(textCapturer)
	if !ok {
		return
	}
	st.count.limit = maxCaptureBytes
	if st.req.MaxOutputTokens > 0 {
		st.count.limit = int(min(st.worstCase.Completion*captureBytesPerToken, maxCaptureBytes))
	}
	tc.SetCaptureText(st.count.limit)
}

// deferCount reports whether complete() should leave a response without
// usage to finish(), to be counted there: a tokenizer is configured and
// some part of the usage can be counted.
func (st *stream) deferCount() bool {
	if st.count.tok == nil || (st.count.body == nil && st.count.limit == 0 && st.endpoint.Generates()) {
		return false
	}
	st.count.pending = true
	return true
}

// countedOutcome counts the stream's usage with the tokenizer, waiting at
// most its timeout. ok is false when nothing could be counted (then the
// caller charges the estimate). With only one part counted, the other is
// the estimate's and the outcome is marked estimated. A panic while
// counting is recovered and counts as nothing counted.
func (st *stream) countedOutcome() (o outcome, ok bool) {
	tok := st.count.tok
	if tok == nil {
		return outcome{}, false
	}
	defer func() {
		if r := recover(); r != nil {
			_ = st.srv.recovered(st.requestID, "counting usage", r)
			o, ok = outcome{}, false
		}
	}()
	ctx, cancel := context.WithTimeout(context.Background(), tok.Settings().Timeout)
	defer cancel()
	u := st.estimate()
	var prompt *tokencount.Count
	promptOK := false
	if p, ok := st.reportedPrompt(); ok { // reported (Anthropic message_start): exact, no call
		u.Prompt, u.CachedPrompt, promptOK = p.Prompt, p.CachedPrompt, true
	} else {
		prompt = st.promptCount(ctx, tok)
	}
	completion, completionExact := st.completionCount(ctx, tok)
	completionOK := completionExact && completion == nil
	if completionOK {
		u.Completion = 0
	}
	if prompt != nil {
		n, err := prompt.Wait(ctx)
		promptOK = st.counted("prompt", err)
		if promptOK {
			u.Prompt, u.CachedPrompt = n, 0
		}
	}
	if completion != nil {
		n, err := completion.Wait(ctx)
		completionOK = st.counted("completion", err)
		if completionOK {
			u.Completion = n
			if st.req.MaxOutputTokens > 0 {
				u.Completion = min(n, st.worstCase.Completion) // vLLM stops at max_tokens
			}
		}
	}
	if !promptOK && !completionOK {
		return outcome{}, false
	}
	o = outcome{usage: u, source: spendguardv1.UsageSource_USAGE_SOURCE_COUNTED}
	if !promptOK || !completionOK {
		o.estimated, o.source = true, spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED
	}
	return o, true
}

// reportedPrompt is the prompt an SSE stream reported before it was cut
// (an Anthropic stream's message_start).
func (st *stream) reportedPrompt() (pricing.Usage, bool) {
	if st.sseScan == nil {
		return pricing.Usage{}, false
	}
	return st.sseScan.PromptOnly()
}

// promptCount submits the count of the request's prompt, nil when it
// cannot be counted. A Responses or Anthropic Messages request is first
// converted to the chat messages vLLM renders for it; one whose
// rendering the body cannot tell (tokencount.ErrUncountable) keeps its
// estimate.
func (st *stream) promptCount(ctx context.Context, tok Tokenizer) *tokencount.Count {
	if st.count.body == nil {
		return nil
	}
	var convert func([]byte) (tokencount.ChatInput, error)
	switch st.endpoint {
	case pricing.ChatCompletions:
		return tok.ChatPrompt(ctx, st.servedModel, st.count.body)
	case pricing.Completions:
		return tok.Prompts(ctx, st.servedModel, "prompt", st.count.body)
	case pricing.Embeddings:
		return tok.Prompts(ctx, st.servedModel, "input", st.count.body)
	case pricing.Responses:
		convert = tokencount.FromResponses
	case pricing.Messages:
		convert = tokencount.FromAnthropic
	default:
		return nil
	}
	in, err := convert(st.count.body)
	if err != nil {
		st.counted("prompt", err)
		return nil
	}
	return tok.ChatMessages(ctx, st.servedModel, in)
}

// completionCount submits the count of the delivered completion. exact
// with a nil Count means the completion is known without a call (nothing
// can be generated, or nothing was delivered); !exact means it cannot be
// counted (a JSON body, or a capture that reached its limit) and stays
// estimated.
func (st *stream) completionCount(ctx context.Context, tok Tokenizer) (c *tokencount.Count, exact bool) {
	if !st.endpoint.Generates() || st.worstCase.Completion == 0 {
		return nil, true
	}
	tc, ok := any(st.sseScan).(textCapturer)
	if !ok || st.count.limit == 0 {
		return nil, false
	}
	text := tc.Text()
	switch {
	case len(text) > st.count.limit-utf8.UTFMax:
		return nil, false // cut at the limit (at a character boundary): not all of it
	case len(text) == 0:
		return nil, true
	}
	return tok.Text(ctx, st.servedModel, text), true
}

// counted reports whether a part's count succeeded, logging why not.
func (st *stream) counted(part string, err error) bool {
	if err == nil {
		return true
	}
	st.log.Debug("token count failed; charging the estimate", zap.String("request_id", st.requestID),
		zap.String("part", part), zap.Error(err))
	return false
}

// sourceOf is the usage source an outcome reports: its own, else
// estimated for an estimate, else none (nothing was charged for usage).
func (o outcome) sourceOf() spendguardv1.UsageSource {
	switch {
	case o.source != spendguardv1.UsageSource_USAGE_SOURCE_UNSPECIFIED:
		return o.source
	case o.estimated:
		return spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED
	}
	return spendguardv1.UsageSource_USAGE_SOURCE_UNSPECIFIED
}

// reported is the outcome of the upstream's own usage u.
func reported(u pricing.Usage) outcome {
	return outcome{usage: u, source: spendguardv1.UsageSource_USAGE_SOURCE_REPORTED}
}
