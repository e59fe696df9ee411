package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"math"
	"math/big"
	"os"
	"path/filepath"
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// FuzzJSONScanner checks, for any body and any split of it, that
//   - the outcome does not depend on the split (error text included) and
//     nothing panics;
//   - the scanner accepts exactly the bodies encoding/json finds valid;
//   - when encoding/json decodes the body as an object, the scanner reports
//     the usage member that encoding/json sees (the last, matched exactly),
//     and its counts agree with an encoding/json decoding of that member.
func FuzzJSONScanner(f *testing.F) {
	for _, dir := range []string{upstreamFixtures(f), "testdata"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		require.NoError(f, err)
		require.NotEmpty(f, files)
		for _, file := range files {
			body, err := os.ReadFile(file)
			require.NoError(f, err)
			f.Add(body, uint64(len(body)))
		}
	}
	for i, c := range scanCases {
		f.Add([]byte(c.body), uint64(i))
	}

	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		whole := scanWhole(body)
		require.Equal(t, whole, scanBytewise(body), "byte by byte")
		require.Equal(t, whole, scanRandom(body, seed), "random split, seed %d", seed)

		if errors.Is(whole.err, ErrUsageTooLarge) {
			return // encoding/json has no such bound
		}
		if json.Valid(body) {
			if whole.err != nil {
				require.ErrorIs(t, whole.err, ErrUsage, "a valid body is only rejected for its usage")
			}
		} else {
			require.Error(t, whole.err, "an invalid body is accepted")
			require.False(t, errors.Is(whole.err, ErrUsage), "an invalid body is rejected for its usage: %v", whole.err)
		}

		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) != nil || top == nil {
			return // invalid, or valid but not an object
		}
		raw, ok := top["usage"]
		if !ok || string(raw) == "null" {
			assert.NoError(t, whole.err)
			assert.False(t, whole.Found)
			return
		}
		u, d, err := ParseUsageDetails(raw)
		want := outcome{Usage: u, Details: d, Found: err == nil}
		if err != nil {
			want.Err, want.err = err.Error(), err
		}
		require.Equal(t, want, whole, "the scanner's usage differs from the member encoding/json sees: %s", raw)

		ou, od, ook := oracleUsage(raw)
		require.Equal(t, ook, whole.Found, "ParseUsageObject and the encoding/json oracle disagree on %s: %v", raw, whole.err)
		if ook {
			assert.Equal(t, ou, whole.Usage)
			assert.Equal(t, od, whole.Details)
		}
	})
}

// oracleUsage decodes a usage member with encoding/json alone, following the
// package's rules, as an independent check of ParseUsageDetails.
func oracleUsage(raw json.RawMessage) (pricing.Usage, Details, bool) {
	obj := func(raw json.RawMessage) (map[string]json.RawMessage, bool) {
		raw = bytes.TrimSpace(raw)
		if len(raw) == 0 || string(raw) == "null" {
			return nil, true
		}
		var m map[string]json.RawMessage
		return m, raw[0] == '{' && json.Unmarshal(raw, &m) == nil
	}
	num := func(m map[string]json.RawMessage, key string) (int64, bool, bool) {
		raw, present := m[key]
		if !present || string(raw) == "null" {
			return 0, false, true
		}
		var n json.Number // a number (or a string holding one: refused below)
		t := bytes.TrimSpace(raw)
		if json.Unmarshal(t, &n) != nil || t[0] < '0' || t[0] > '9' || bytes.ContainsAny(t, "-.eE") {
			return 0, false, false // not a plain non-negative integer
		}
		b, _ := new(big.Int).SetString(n.String(), 10)
		if !b.IsInt64() {
			return math.MaxInt64, true, true // saturates
		}
		return b.Int64(), true, true
	}
	pick := func(a map[string]json.RawMessage, ka string, b map[string]json.RawMessage, kb string) (int64, bool, bool) {
		va, hasA, okA := num(a, ka)
		vb, hasB, okB := num(b, kb)
		if !okA || !okB || (hasA && hasB && va != vb) {
			return 0, false, false
		}
		if hasA {
			return va, true, true
		}
		return vb, hasB, true
	}

	top, ok := obj(raw)
	if !ok || top == nil {
		return pricing.Usage{}, Details{}, false
	}
	pd, ok1 := obj(top["prompt_tokens_details"])
	id, ok2 := obj(top["input_tokens_details"])
	cd, ok3 := obj(top["completion_tokens_details"])
	od, ok4 := obj(top["output_tokens_details"])
	prompt, hasPrompt, ok5 := pick(top, "prompt_tokens", top, "input_tokens")
	completion, _, ok6 := pick(top, "completion_tokens", top, "output_tokens")
	_, _, ok7 := num(top, "total_tokens")
	cacheRead, _, ok10 := num(top, "cache_read_input_tokens")
	cacheCreation, _, ok11 := num(top, "cache_creation_input_tokens")
	var typ string
	var seconds int64
	duration, okSeconds := false, true
	if json.Unmarshal(top["type"], &typ) == nil && typ == "duration" {
		var has bool
		seconds, has, okSeconds = num(top, "seconds")
		duration, okSeconds = true, okSeconds && has
	}
	if !(ok1 && ok2 && ok3 && ok4 && ok5 && ok6 && ok7 && ok10 && ok11 && okSeconds && (hasPrompt || duration)) {
		return pricing.Usage{}, Details{}, false
	}
	cached, _, ok8 := pick(pd, "cached_tokens", id, "cached_tokens")
	reasoning, _, ok9 := pick(cd, "reasoning_tokens", od, "reasoning_tokens")
	if !ok8 || !ok9 || cached > prompt {
		return pricing.Usage{}, Details{}, false
	}
	sum := func(a, b int64) int64 {
		s, _ := new(big.Int).SetString(new(big.Int).Add(big.NewInt(a), big.NewInt(b)).String(), 10)
		if !s.IsInt64() {
			return math.MaxInt64
		}
		return s.Int64()
	}
	u := pricing.Usage{
		Prompt:       sum(sum(prompt, cacheRead), cacheCreation),
		CachedPrompt: sum(cached, cacheRead),
		Completion:   completion,
		Seconds:      seconds,
	}
	return u, Details{Reasoning: reasoning}, true
}
