package usage

import (
	"encoding/json"
	"fmt"
	"math"
	"testing"

	"github.com/spendguard/spendguard/internal/jsonscan"
	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/require"
)

// refParseUsageDetails is ParseUsageDetails as it was before the scanner
// was tuned for speed (a jsonscan.Object and a lookup per field): the
// reference the rewrite must agree with, error text included.
func refParseUsageDetails(obj []byte) (pricing.Usage, Details, error) {
	var buf [5][8]jsonscan.Member // the usage object and its four details objects, read in place
	top, ok, err := refObject(obj, "usage", buf[0][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if !ok {
		return pricing.Usage{}, Details{}, errUsageNotObject
	}
	promptDetails, _, err := refObject(top.Get("prompt_tokens_details"), "prompt_tokens_details", buf[1][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	inputDetails, _, err := refObject(top.Get("input_tokens_details"), "input_tokens_details", buf[2][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	completionDetails, _, err := refObject(top.Get("completion_tokens_details"), "completion_tokens_details", buf[3][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	outputDetails, _, err := refObject(top.Get("output_tokens_details"), "output_tokens_details", buf[4][:0])
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}

	prompt, hasPrompt, err := refEither(top, refField{"", "prompt_tokens"}, top, refField{"", "input_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	completion, _, err := refEither(top, refField{"", "completion_tokens"}, top, refField{"", "output_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	if _, _, err := (refField{"", "total_tokens"}).count(top); err != nil {
		return pricing.Usage{}, Details{}, err
	}
	cached, _, err := refEither(
		promptDetails, refField{"prompt_tokens_details.", "cached_tokens"},
		inputDetails, refField{"input_tokens_details.", "cached_tokens"})
	if err != nil {
		return pricing.Usage{}, Details{}, err
	}
	reasoning, _, err := refEither(
		completionDetails, refField{"completion_tokens_details.", "reasoning_tokens"},
		outputDetails, refField{"output_tokens_details.", "reasoning_tokens"})
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

// refObject reads raw as a JSON object, in place into buf's storage; ok is
// false for absent (nil) and null.
func refObject(raw []byte, name string, buf jsonscan.Object) (o jsonscan.Object, ok bool, err error) {
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

// refField names one count: key in its object, reached by path.
type refField struct {
	path string
	key  string
}

// refEither reads a quantity that may be given as a, b or both; when both are
// given they must be equal.
func refEither(ma jsonscan.Object, a refField, mb jsonscan.Object, b refField) (int64, bool, error) {
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
func (f refField) count(m jsonscan.Object) (n int64, ok bool, err error) {
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
			n = math.MaxInt64 // saturates
			continue
		}
		n = n*10 + d
	}
	return n, true, nil
}

// FuzzParseUsageDetails checks that ParseUsageDetails agrees with
// refParseUsageDetails on any input: the same usage, details and error text.
func FuzzParseUsageDetails(f *testing.F) {
	for _, obj := range parseSeeds {
		f.Add([]byte(obj))
	}
	for _, c := range scanCases {
		f.Add([]byte(c.body))
	}
	f.Fuzz(func(t *testing.T, obj []byte) {
		checkParseAgainstRef(t, obj)
	})
}

func TestParseUsageDetailsMatchesRef(t *testing.T) {
	for _, obj := range parseSeeds {
		checkParseAgainstRef(t, []byte(obj))
	}
}

func checkParseAgainstRef(t *testing.T, obj []byte) {
	t.Helper()
	u, d, err := ParseUsageDetails(obj)
	ru, rd, rerr := refParseUsageDetails(obj)
	require.Equal(t, ru, u, "usage of %q", obj)
	require.Equal(t, rd, d, "details of %q", obj)
	if rerr == nil {
		require.NoError(t, err, "%q", obj)
		return
	}
	require.EqualError(t, err, rerr.Error(), "%q", obj)
	require.ErrorIs(t, err, ErrUsage)
}

// parseSeeds are usage objects for the comparison with the reference, each
// aimed at one rule or one error and its order among the others.
var parseSeeds = []string{
	`{"prompt_tokens":12,"total_tokens":112,"completion_tokens":100,"prompt_tokens_details":null}`,
	`{"completion_tokens":377,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":320,"rejected_prediction_tokens":0},"prompt_tokens":8,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":0},"total_tokens":385}`,
	`{"input_tokens":36,"input_tokens_details":{"cached_tokens":4},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":10},"total_tokens":123}`,
	" \n{ \"prompt_tokens\" : 2 ,\t\"completion_tokens\" : 1 }\n",
	`{"prompt_tokens":1,"prompt_tokens":2}`,
	`{"prompt_tokens":1,"prompt_tokens":null}`,
	`{"prompt_tokens":-1,"prompt_tokens":2}`,
	`{"pr\u006fmpt_tokens":3,"prompt_tokens_details":{"c\u0061ched_tokens":2}}`,
	`{"prompt_tokens\u0000":3}`,
	`{"prompt_tokens":3,"input_tokens":4}`,
	`{"prompt_tokens":3,"completion_tokens":1,"output_tokens":2}`,
	`{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":1},"input_tokens_details":{"cached_tokens":2}}`,
	`{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}`,
	`{"prompt_tokens":3,"completion_tokens_details":{"reasoning_tokens":1},"output_tokens_details":{"reasoning_tokens":2}}`,
	`{"prompt_tokens":"3"}`,
	`{"prompt_tokens":1.0,"total_tokens":1e2}`,
	`{"prompt_tokens":9223372036854775807}`,
	`{"prompt_tokens":9223372036854775808}`,
	`{"prompt_tokens":99999999999999999999x}`,
	`{"prompt_tokens":1e300,"completion_tokens":1000000000000000000}`,
	`{"prompt_tokens":12.5}`,
	`{"prompt_tokens":99999999999999999999,"input_tokens":9223372036854775807,"input_tokens_details":{"cached_tokens":1e999}}`,
	`{"prompt_tokens":123456789012345678901234567890123456789012345678901234567890}`,
	`{"total_tokens":-1,"prompt_tokens_details":[],"input_tokens":"x"}`,
	`{"prompt_tokens_details":1,"input_tokens_details":[],"completion_tokens_details":"x","output_tokens_details":true}`,
	`{"output_tokens_details":true,"prompt_tokens":1}`,
	`{"prompt_tokens":1,"prompt_tokens_details":{"cached_tokens":1,"cached_tokens":null}}`,
	`{"prompt_tokens":1,"prompt_tokens_details":{}}`,
	`{"completion_tokens":1,"total_tokens":1}`,
	`{"prompt_tokens":null}`,
	`{}`,
	` { } `,
	`null`,
	` null `,
	``,
	`   `,
	`[{"prompt_tokens":1}]`,
	`"usage"`,
	`{"prompt_tokens":1,}`,
	`{"prompt_tokens":1} {}`,
	`{"prompt_tokens":1`,
	`{"a":{"b":[1,2,{"prompt_tokens":-1}]},"prompt_tokens":2,"x":"\"}\\"}`,
}
