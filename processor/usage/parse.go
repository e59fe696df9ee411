package usage

import (
	"bytes"
	"encoding/json"
	"fmt"
	"math"

	"github.com/spendguard/spendguard/internal/jsonscan"
	"github.com/spendguard/spendguard/pricing"
)

// Details holds counts of a usage object that are informational: they do
// not change the price.
type Details struct {
	// Reasoning is completion_tokens_details.reasoning_tokens or
	// output_tokens_details.reasoning_tokens, 0 when absent. These tokens are
	// already counted in pricing.Usage.Completion.
	Reasoning int64
}

// ParseUsageObject decodes one usage object, such as the value of the usage
// member of a response body or of a stream event, in either the chat or the
// Responses API vocabulary (see the package documentation for the rules).
// Errors wrap ErrUsage. JSON null is not an object and is an error: callers
// treat "usage": null as no usage before calling.
func ParseUsageObject(obj []byte) (pricing.Usage, error) {
	u, _, err := ParseUsageDetails(obj)
	return u, err
}

// ParseUsageDetails is ParseUsageObject that also returns the informational
// counts.
func ParseUsageDetails(obj []byte) (pricing.Usage, Details, error) {
	obj = trimSpace(obj)
	if len(obj) == 0 || string(obj) == "null" {
		return pricing.Usage{}, Details{}, errUsageNotObject
	}
	if obj[0] != '{' {
		return pricing.Usage{}, Details{}, fmt.Errorf("%w: usage is not an object", ErrUsage)
	}
	if !jsonscan.Valid(obj) {
		var m map[string]json.RawMessage
		err := json.Unmarshal(obj, &m) // for encoding/json's account of the error
		return pricing.Usage{}, Details{}, fmt.Errorf("%w: usage: %w", ErrUsage, err)
	}
	return parseValidUsage(obj)
}

// The members of a usage object that are read, indexes into usageKeys.
const (
	kPrompt = iota
	kInput
	kCompletion
	kOutput
	kTotal
	kPromptDetails
	kInputDetails
	kCompletionDetails
	kOutputDetails
	kCacheRead
	kCacheCreation
	kType
	kSeconds
	nUsageKeys
)

var usageKeys = [nUsageKeys]string{
	kPrompt:            "prompt_tokens",
	kInput:             "input_tokens",
	kCompletion:        "completion_tokens",
	kOutput:            "output_tokens",
	kTotal:             "total_tokens",
	kPromptDetails:     "prompt_tokens_details",
	kInputDetails:      "input_tokens_details",
	kCompletionDetails: "completion_tokens_details",
	kOutputDetails:     "output_tokens_details",
	kCacheRead:         "cache_read_input_tokens",
	kCacheCreation:     "cache_creation_input_tokens",
	kType:              "type",
	kSeconds:           "seconds",
}

// parseValidUsage is ParseUsageDetails for an object that is known to be
// valid JSON with no space around it, such as a JSONScanner's capture.
func parseValidUsage(obj []byte) (pricing.Usage, Details, error) {
	var v usageMembers
	for m := newMemberWalk(obj); ; {
		key, value, ok := m.next()
		if !ok {
			break
		}
		v.add(key, value)
	}
	return v.decode()
}

// usageMembers holds what ParseUsageDetails reads of a usage object: for
// each key of usageKeys, the value of the last member with that key, nil
// when there is none. It is filled in one walk over the members; decode
// then runs the checks in a fixed order, so the first error reported does
// not depend on the order of the members.
type usageMembers [nUsageKeys][]byte

// add records a member, given its key as written.
func (v *usageMembers) add(key, value []byte) {
	if k := usageKeyIndex(key); k >= 0 {
		v[k] = value
	}
}

// collectValid checks the object at b[i], depth containers deep, as
// jsonscan.ValidValue does, and adds its members to v in the same pass. It
// returns the end of the object, or -1 when b holds no complete valid
// object there (v is then partly filled).
func (v *usageMembers) collectValid(b []byte, i, depth int) int {
	if depth >= jsonscan.MaxDepth {
		return -1
	}
	if i = jsonscan.SkipSpace(b, i+1); i < len(b) && b[i] == '}' {
		return i + 1
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return -1
		}
		kend := jsonscan.ValidValue(b, i, depth+1)
		if kend < 0 {
			return -1
		}
		j := jsonscan.SkipSpace(b, kend)
		if j >= len(b) || b[j] != ':' {
			return -1
		}
		j = jsonscan.SkipSpace(b, j+1)
		vend := jsonscan.ValidValue(b, j, depth+1)
		if vend < 0 {
			return -1
		}
		v.add(b[i+1:kend-1], b[j:vend])
		if i = jsonscan.SkipSpace(b, vend); i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = jsonscan.SkipSpace(b, i+1)
		case '}':
			return i + 1
		default:
			return -1
		}
	}
}

// decode checks the members and computes the usage.
func (v *usageMembers) decode() (pricing.Usage, Details, error) {
	promptCached, err := detailsCount(v[kPromptDetails], "prompt_tokens_details", "cached_tokens")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	inputCached, err := detailsCount(v[kInputDetails], "input_tokens_details", "cached_tokens")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	completionReasoning, err := detailsCount(v[kCompletionDetails], "completion_tokens_details", "reasoning_tokens")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	outputReasoning, err := detailsCount(v[kOutputDetails], "output_tokens_details", "reasoning_tokens")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}

	prompt, hasPrompt, err := either(v[kPrompt], field{"", "prompt_tokens"}, v[kInput], field{"", "input_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	completion, _, err := either(v[kCompletion], field{"", "completion_tokens"}, v[kOutput], field{"", "output_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if _, _, err := (field{"", "total_tokens"}).count(v[kTotal]); err != nil {
		return pricing.Usage{}, Details{}, err
	}
	cached, _, err := either(
		promptCached, field{"prompt_tokens_details.", "cached_tokens"},
		inputCached, field{"input_tokens_details.", "cached_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	reasoning, _, err := either(
		completionReasoning, field{"completion_tokens_details.", "reasoning_tokens"},
		outputReasoning, field{"output_tokens_details.", "reasoning_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	cacheRead, _, err := (field{"", "cache_read_input_tokens"}).count(v[kCacheRead])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	cacheCreation, _, err := (field{"", "cache_creation_input_tokens"}).count(v[kCacheCreation])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	seconds, duration, err := v.duration()
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if !hasPrompt && !duration {
		return pricing.Usage{}, Details{}, fmt.Errorf("%w: neither prompt_tokens nor input_tokens is given", ErrUsage)
	}
	if cached > prompt {
		return pricing.Usage{}, Details{}, fmt.Errorf("%w: %d cached tokens exceed %d prompt tokens", ErrUsage, cached, prompt)
	}
	// Anthropic's input_tokens leave out the prompt tokens read from or
	// written to its cache: they are added back, and the cache reads are
	// cached prompt tokens.
	u := pricing.Usage{
		Prompt:       satAdd(satAdd(prompt, cacheRead), cacheCreation),
		CachedPrompt: satAdd(cached, cacheRead),
		Completion:   completion,
		Seconds:      seconds,
	}
	return u, Details{Reasoning: reasoning}, nil
}

// durationType is the type of an audio usage object billed by duration.
const durationType = "duration"

// duration reads an audio usage object, {"type":"duration","seconds":N}:
// when type is the string "duration", seconds is a required count. Any
// other type leaves seconds unread.
func (v *usageMembers) duration() (seconds int64, ok bool, err error) {
	typ := v[kType]
	if len(typ) == 0 || typ[0] != '"' {
		return 0, false, nil
	}
	if name, _ := jsonscan.String(typ); name != durationType {
		return 0, false, nil
	}
	seconds, ok, err = (field{"", "seconds"}).count(v[kSeconds])
	if err == nil && !ok {
		err = fmt.Errorf("%w: a duration usage without seconds", ErrUsage)
	}
	return seconds, ok, err
}

// satAdd is a + b for non-negative counts, saturating at math.MaxInt64.
func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

// usageKeyIndex returns the index in usageKeys of a key as written (escapes
// not decoded), -1 for a key that is not read.
func usageKeyIndex(key []byte) int {
	for k, name := range usageKeys {
		if string(key) == name {
			return k
		}
	}
	if bytes.IndexByte(key, '\\') >= 0 { // rare: decode it
		for k, name := range usageKeys {
			if jsonscan.KeyIs(key, name) {
				return k
			}
		}
	}
	return -1
}

// detailsCount returns the value of the last member named key of the
// details object raw (valid JSON, or nil when absent); nil when raw is
// absent or null, or has no such member.
func detailsCount(raw []byte, name, key string) ([]byte, error) {
	if raw == nil || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("%w: %s is not an object", ErrUsage, name)
	}
	var last []byte
	for m := newMemberWalk(raw); ; {
		k, value, ok := m.next()
		if !ok {
			return last, nil
		}
		if jsonscan.KeyIs(k, key) {
			last = value
		}
	}
}

// memberWalk walks the members of a valid JSON object in document order.
type memberWalk struct {
	b []byte
	i int // at the next key's quote, or at the closing brace
}

// newMemberWalk starts a walk of the valid object b (starting with '{').
func newMemberWalk(b []byte) memberWalk { return memberWalk{b: b, i: jsonscan.SkipSpace(b, 1)} }

// next returns the next member's key as written (without its quotes,
// escapes not decoded) and its value; ok is false after the last member.
func (m *memberWalk) next() (key, value []byte, ok bool) {
	b, i := m.b, m.i
	if b[i] == '}' {
		return nil, nil, false
	}
	kend := jsonscan.SkipValue(b, i)
	key = b[i+1 : kend-1]
	i = jsonscan.SkipSpace(b, jsonscan.SkipSpace(b, kend)+1) // past the colon
	vend := jsonscan.SkipValue(b, i)
	value = b[i:vend]
	if i = jsonscan.SkipSpace(b, vend); b[i] == ',' {
		i = jsonscan.SkipSpace(b, i+1)
	}
	m.i = i
	return key, value, true
}

// field names one count: key in its object, reached by path.
type field struct {
	path string
	key  string
}

// either reads a quantity that may be given as a, b or both (raw values,
// nil when absent); when both are given they must be equal.
func either(ra []byte, a field, rb []byte, b field) (int64, bool, error) {
	va, oka, err := a.count(ra)
	if err != nil {
		return 0, false, err
	}
	vb, okb, err := b.count(rb)
	if err != nil {
		return 0, false, err
	}
	if oka && okb && va != vb {
		return 0, false, fmt.Errorf("%w: %s%s %d and %s%s %d disagree", ErrUsage, a.path, a.key, va, b.path, b.key, vb)
	}
	if oka {
		return va, true, nil
	}
	return vb, okb, nil
}

// count reads raw, the value of the field (nil when absent), as a token
// count. Absent and null give ok=false. A count too large for int64
// saturates at math.MaxInt64: an absurd count is charged as the largest
// one (its cost saturates too), never wrapped and never traded for the
// smaller estimate.
func (f field) count(raw []byte) (n int64, ok bool, err error) {
	if raw == nil || string(raw) == "null" {
		return 0, false, nil
	}
	for _, c := range raw {
		if !isDigit(c) {
			return 0, false, f.notCount(raw)
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			n = math.MaxInt64 // and stays there; later bytes must still be digits
			continue
		}
		n = n*10 + d
	}
	return n, true, nil
}

func (f field) notCount(raw []byte) error {
	return fmt.Errorf("%w: %s%s is %.32s, not a non-negative integer", ErrUsage, f.path, f.key, string(raw))
}

func trimSpace(b []byte) []byte {
	for len(b) > 0 && isSpace(b[0]) {
		b = b[1:]
	}
	for len(b) > 0 && isSpace(b[len(b)-1]) {
		b = b[:len(b)-1]
	}
	return b
}
