package usage

import (
	"bytes"

	"github.com/spendguard/spendguard/internal/jsonscan"
	"github.com/spendguard/spendguard/pricing"
)

// What the scanner reads beyond the last usage: the per-choice running
// counts of continuous_usage_stats (SSEChat), and the two usage events of
// an Anthropic Messages stream (SSEAnthropic).

// maxChoiceIndex bounds the choice indexes whose running counts are kept
// (a slice indexed by choice); an event of a choice past it is read as an
// event of no choice.
const maxChoiceIndex = 4095

// Anthropic stream event types that carry usage or content.
const (
	anthropicStart = "message_start"
	anthropicDelta = "message_delta"
	anthropicBlock = "content_block_delta"
)

var (
	keyMessage     = []byte(`"message"`)
	keyPartialJSON = []byte(`"partial_json"`)
	keyThinking    = []byte(`"thinking"`)
	keyText        = []byte(`"text"`)
)

// chatUsage records the usage u of a SSEChat event (data, complete and
// valid JSON with a top-level usage). An event whose top-level choices is
// a non-empty array is one choice's chunk: under continuous_usage_stats
// its completion count is that choice's running count, kept per choice
// (the index of its first choice). Any other event (the usage-only event,
// choices empty or absent) carries the request's usage: it wins over the
// per-choice counts, and the last one wins.
func (s *SSEScanner) chatUsage(data []byte, u pricing.Usage, d Details) {
	idx, ok := s.choiceIndex(data)
	if !ok {
		s.occ, s.usage, s.details, s.usageErr, s.final = occFound, u, d, nil, true
		return
	}
	for len(s.running) <= idx {
		s.running = append(s.running, -1)
	}
	s.running[idx] = u.Completion
	if s.perPrompt > 0 {
		p := idx / s.perPrompt
		for len(s.prompts) <= p {
			s.prompts = append(s.prompts, -1)
		}
		s.prompts[p] = u.Prompt
	}
	if s.final {
		return // the request's usage already came: a choice's count does not replace it
	}
	s.occ, s.usage, s.details, s.usageErr = occFound, u, d, nil
}

// SetChoicesPerPrompt tells a SSEChat scanner that the stream answers
// several prompts with n choices each (a completions request with a list
// of prompts): vLLM numbers choice i of prompt p as p*n + i, and under
// continuous_usage_stats a choice's event carries its own prompt's
// prompt_tokens. Until the request's usage comes, the prompt is then the
// sum over the prompts whose choices sent an event of each one's last
// prompt_tokens. n <= 0, the default (Reset restores it), means one
// prompt for every choice (chat): the last event's prompt. Call it after
// Reset and before the first Write.
func (s *SSEScanner) SetChoicesPerPrompt(n int) { s.perPrompt = max(n, 0) }

// runningUsage is the usage of a stream whose last usage came from
// per-choice events: the last event's prompt (with several prompts, the
// sum of each prompt's last one), the sum of each choice's last running
// count (saturating).
func (s *SSEScanner) runningUsage() pricing.Usage {
	u := s.usage
	if s.final || len(s.running) == 0 {
		return u
	}
	u.Completion = 0
	for _, c := range s.running {
		if c > 0 {
			u.Completion = satAdd(u.Completion, c)
		}
	}
	if len(s.prompts) > 0 {
		u.Prompt = 0
		for _, p := range s.prompts {
			if p > 0 {
				u.Prompt = satAdd(u.Prompt, p)
			}
		}
		u.CachedPrompt = min(u.CachedPrompt, u.Prompt)
	}
	return u
}

// choiceIndex returns the "index" of the first element of the top-level
// choices array of data when that array is not empty and the index is an
// integer from 0 to maxChoiceIndex.
func (s *SSEScanner) choiceIndex(data []byte) (int, bool) {
	top, object := s.topMembers(data)
	if !object {
		return 0, false
	}
	choices := top.Get("choices")
	if len(choices) == 0 || choices[0] != '[' {
		return 0, false
	}
	i := jsonscan.SkipSpace(choices, 1)
	if choices[i] != '{' {
		return 0, false
	}
	var buf [16]jsonscan.Member
	raw := jsonscan.Members(choices[i:], buf[:0]).Get("index")
	n, ok, err := (field{"", "index"}).count(raw)
	if err != nil || !ok || n > maxChoiceIndex {
		return 0, false
	}
	return int(n), true
}

// anthropicEvent reads the usage of an Anthropic stream event: the
// message.usage of message_start (the prompt, with output_tokens 0 or 1),
// kept apart, and the top-level usage of message_delta, whose members are
// laid over those of message_start's usage (Anthropic's own message_delta
// may carry output_tokens alone) and decoded together: that is the
// stream's usage, the last message_delta winning.
func (s *SSEScanner) anthropicEvent(data, typ []byte) {
	isStart := string(typ) == anthropicStart
	if !isStart && string(typ) != anthropicDelta || !bytes.Contains(data, keyUsage) && !bytes.Contains(data, unicodeEsc) {
		return
	}
	var buf [16]jsonscan.Member
	top, valid, object := jsonscan.ValidMembers(data, buf[:0])
	if !valid || !object {
		return
	}
	if isStart {
		msg := top.Get("message")
		if len(msg) == 0 || msg[0] != '{' {
			return
		}
		raw := jsonscan.Members(msg, top[:0]).Get(usageKey)
		if len(raw) == 0 || raw[0] != '{' {
			return
		}
		s.startRaw = append(s.startRaw[:0], raw...)
		u, _, err := parseValidUsage(s.startRaw)
		s.startFound = err == nil
		s.startUsage = u
		return
	}
	raw := top.Get(usageKey)
	switch {
	case raw == nil || string(raw) == "null":
		return
	case raw[0] != '{':
		s.occ, s.usageErr = occFailed, errUsageNotObject
		return
	}
	var v usageMembers
	for _, obj := range [2][]byte{s.startRaw, raw} {
		if len(obj) == 0 {
			continue
		}
		for m := newMemberWalk(obj); ; {
			key, value, ok := m.next()
			if !ok {
				break
			}
			v.add(key, value)
		}
	}
	u, d, err := v.decode()
	if err != nil {
		s.occ, s.usageErr = occFailed, err
		return
	}
	s.occ, s.usage, s.details, s.usageErr = occFound, u, d, nil
}

// PromptOnly reports the usage a stream reported before its end without
// reporting its completion: an Anthropic stream's message_start usage
// (its prompt, cached prompt included; Completion is 0) when no
// message_delta usage followed. ok is false for every other stream and
// whenever Result reports found or an error: a caller that must estimate
// the completion of a stream cut short charges this prompt and its own
// estimate of the completion.
func (s *SSEScanner) PromptOnly() (u pricing.Usage, ok bool) {
	if s.kind != SSEAnthropic || !s.startFound || s.occ != occNone {
		return pricing.Usage{}, false
	}
	u = s.startUsage
	u.Completion = 0
	return u, true
}

// isAnthropicContent reports whether an Anthropic event is a
// content_block_delta whose delta holds a non-empty text, partial_json or
// thinking string.
func isAnthropicContent(data, typ []byte) bool {
	if string(typ) != anthropicBlock {
		return false
	}
	return hasNonEmptyString(data, keyText) || hasNonEmptyString(data, keyPartialJSON) ||
		hasNonEmptyString(data, keyThinking)
}
