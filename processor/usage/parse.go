package usage

import (
	"encoding/json"
	"fmt"
	"math"

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
	top, err := object(obj, "usage")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if top == nil {
		return pricing.Usage{}, Details{}, errUsageNotObject
	}
	promptDetails, err := object(top["prompt_tokens_details"], "prompt_tokens_details")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	inputDetails, err := object(top["input_tokens_details"], "input_tokens_details")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	completionDetails, err := object(top["completion_tokens_details"], "completion_tokens_details")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	outputDetails, err := object(top["output_tokens_details"], "output_tokens_details")
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}

	prompt, hasPrompt, err := either(field{top, "", "prompt_tokens"}, field{top, "", "input_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	completion, _, err := either(field{top, "", "completion_tokens"}, field{top, "", "output_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if _, _, err := (field{top, "", "total_tokens"}).count(); err != nil {
		return pricing.Usage{}, Details{}, err
	}
	cached, _, err := either(
		field{promptDetails, "prompt_tokens_details.", "cached_tokens"},
		field{inputDetails, "input_tokens_details.", "cached_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	reasoning, _, err := either(
		field{completionDetails, "completion_tokens_details.", "reasoning_tokens"},
		field{outputDetails, "output_tokens_details.", "reasoning_tokens"})
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

// object decodes raw as a JSON object. Absent (nil) and null give a nil map.
func object(raw []byte, name string) (map[string]json.RawMessage, error) {
	raw = trimSpace(raw)
	if len(raw) == 0 || string(raw) == "null" {
		return nil, nil
	}
	if raw[0] != '{' {
		return nil, fmt.Errorf("%w: %s is not an object", ErrUsage, name)
	}
	var m map[string]json.RawMessage
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrUsage, name, err)
	}
	return m, nil
}

// field names one count: key in the object m, reached by path.
type field struct {
	m    map[string]json.RawMessage
	path string
	key  string
}

// either reads a quantity that may be given as a, b or both; when both are
// given they must be equal.
func either(a, b field) (int64, bool, error) {
	va, oka, err := a.count()
	if err != nil {
		return 0, false, err
	}
	vb, okb, err := b.count()
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

// count reads the field as a token count. Absent and null give ok=false.
func (f field) count() (n int64, ok bool, err error) {
	raw, present := f.m[f.key]
	raw = trimSpace(raw)
	if !present || string(raw) == "null" {
		return 0, false, nil
	}
	if len(raw) == 0 {
		return 0, false, fmt.Errorf("%w: %s%s is empty", ErrUsage, f.path, f.key)
	}
	for _, c := range raw {
		if !isDigit(c) {
			return 0, false, fmt.Errorf("%w: %s%s is %.32s, not a non-negative integer", ErrUsage, f.path, f.key, raw)
		}
		d := int64(c - '0')
		if n > (math.MaxInt64-d)/10 {
			return 0, false, fmt.Errorf("%w: %s%s %.32s overflows int64", ErrUsage, f.path, f.key, raw)
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
