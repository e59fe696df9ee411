package usage

import (
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
	var buf [5][8]jsonscan.Member // the usage object and its four details objects, read in place
	top, ok, err := object(obj, "usage", buf[0][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if !ok {
		return pricing.Usage{}, Details{}, errUsageNotObject
	}
	promptDetails, _, err := object(top.Get("prompt_tokens_details"), "prompt_tokens_details", buf[1][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	inputDetails, _, err := object(top.Get("input_tokens_details"), "input_tokens_details", buf[2][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	completionDetails, _, err := object(top.Get("completion_tokens_details"), "completion_tokens_details", buf[3][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	outputDetails, _, err := object(top.Get("output_tokens_details"), "output_tokens_details", buf[4][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}

	prompt, hasPrompt, err := either(top, field{"", "prompt_tokens"}, top, field{"", "input_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	completion, _, err := either(top, field{"", "completion_tokens"}, top, field{"", "output_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if _, _, err := (field{"", "total_tokens"}).count(top); err != nil {
		return pricing.Usage{}, Details{}, err
	}
	cached, _, err := either(
		promptDetails, field{"prompt_tokens_details.", "cached_tokens"},
		inputDetails, field{"input_tokens_details.", "cached_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	reasoning, _, err := either(
		completionDetails, field{"completion_tokens_details.", "reasoning_tokens"},
		outputDetails, field{"output_tokens_details.", "reasoning_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if !hasPrompt {
		return pricing.Usage{}, Details{}, fmt.Errorf("%w: neither prompt_tokens nor input_tokens is given", ErrUsage)
	}
	if cached > prompt {
		return pricing.Usage{}, Details{}, fmt.Errorf("%w: %d cached tokens exceed %d prompt tokens", ErrUsage, cached, prompt)
	}
	u := pricing.Usage{Prompt: prompt, CachedPrompt: cached, Completion: completion}
	return u, Details{Reasoning: reasoning}, nil
}

// object reads raw as a JSON object, in place into buf's storage; ok is
// false for absent (nil) and null.
func object(raw []byte, name string, buf jsonscan.Object) (o jsonscan.Object, ok bool, err error) {
	raw = trimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, false, nil
	}
	if raw[0] != '{' {
		return nil, false, fmt.Errorf("%w: %s is not an object", ErrUsage, name)
	}
	if !jsonscan.Valid(raw) {
		var m map[string]json.RawMessage
		err := json.Unmarshal(raw, &m) // for encoding/json's account of the error
		return nil, false, fmt.Errorf("%w: %s: %w", ErrUsage, name, err)
	}
	return jsonscan.Members(raw, buf), true, nil
}

// field names one count: key in its object, reached by path.
type field struct {
	path string
	key  string
}

// either reads a quantity that may be given as a, b or both; when both are
// given they must be equal.
func either(ma jsonscan.Object, a field, mb jsonscan.Object, b field) (int64, bool, error) {
	va, oka, err := a.count(ma)
	if err != nil {
		return 0, false, err
	}
	vb, okb, err := b.count(mb)
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

// count reads the field of m as a token count. Absent and null give
// ok=false.
func (f field) count(m jsonscan.Object) (n int64, ok bool, err error) {
	member, present := m.Lookup(f.key)
	raw := trimSpace(member.Value)
	if !present || string(raw) == "null" {
		return 0, false, nil
	}
	if len(raw) == 0 {
		return 0, false, fmt.Errorf("%w: %s%s is empty", ErrUsage, f.path, f.key)
	}
	for _, c := range raw {
		if !isDigit(c) {
			return 0, false, fmt.Errorf("%w: %s%s is %.32s, not a non-negative integer", ErrUsage, f.path, f.key, string(raw))
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false, fmt.Errorf("%w: %s%s %.32s overflows int64", ErrUsage, f.path, f.key, string(raw))
		}
		n = n*10 + d
	}
	return n, true, nil
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
