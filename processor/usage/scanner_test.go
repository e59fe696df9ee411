package usage

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

const okUsage = `{"prompt_tokens":3,"completion_tokens":4}`

var three4 = pricing.Usage{Prompt: 3, Completion: 4}

type scanCase struct {
	name  string
	body  string
	found bool
	usage pricing.Usage
	err   error // sentinel the error wraps; nil: no error
}

var scanCases = []scanCase{
	// Which usage member counts.
	{name: "top-level usage", body: `{"usage":` + okUsage + `}`, found: true, usage: three4},
	{name: "usage first then more members", body: `{"usage":` + okUsage + `,"choices":[{"a":1}],"x":"y"}`, found: true, usage: three4},
	{name: "no usage", body: `{"id":"x","choices":[]}`},
	{name: "empty object", body: `{}`},
	{name: "usage null", body: `{"usage":null}`},
	{name: "nested usage in choices only", body: `{"choices":[{"usage":` + okUsage + `}]}`},
	{name: "nested usage in message and tool call arguments",
		body:  `{"choices":[{"message":{"usage":{"prompt_tokens":9},"tool_calls":[{"function":{"arguments":{"usage":{"prompt_tokens":8}}}}]}}],"usage":` + okUsage + `}`,
		found: true, usage: three4},
	{name: "usage text inside a string value", body: `{"content":"\"usage\":{\"prompt_tokens\":9}"}`},
	{name: "usage as a string value", body: `{"note":"usage","x":` + okUsage + `}`},
	{name: "key with escaped quote before usage", body: `{"\"usage":` + okUsage + `}`},
	{name: "key with escaped backslash", body: `{"usage\\":` + okUsage + `}`},
	{name: "escaped key", body: `{"us\u0061ge":` + okUsage + `}`, found: true, usage: three4},
	{name: "fully escaped key", body: `{"\u0075\u0073\u0041ge":` + okUsage + `,"\u0075\u0073\u0061\u0067\u0065":` + okUsage + `}`, found: true, usage: three4},
	{name: "escaped key then extra char", body: `{"usag\u0065s":` + okUsage + `}`},
	{name: "prefix key", body: `{"usag":` + okUsage + `}`},
	{name: "longer key", body: `{"usages":` + okUsage + `}`},
	{name: "capitalised key", body: `{"Usage":` + okUsage + `}`},
	{name: "non-ASCII escape in key", body: `{"us\u00e1ge":` + okUsage + `}`},
	{name: "last usage wins", body: `{"usage":{"prompt_tokens":1},"usage":` + okUsage + `}`, found: true, usage: three4},
	{name: "later null wins", body: `{"usage":` + okUsage + `,"usage":null}`},
	{name: "later object wins over null", body: `{"usage":null,"usage":` + okUsage + `}`, found: true, usage: three4},
	{name: "later object wins over bad", body: `{"usage":{"prompt_tokens":-1},"usage":` + okUsage + `}`, found: true, usage: three4},
	{name: "later bad wins", body: `{"usage":` + okUsage + `,"usage":[1]}`, err: ErrUsage},
	{name: "whitespace everywhere",
		body:  " \r\n\t{ \n\"usage\" \t:\r\n { \"prompt_tokens\" : 3 ,\n\"prompt_tokens_details\" : { \"cached_tokens\" : 2 } , \"completion_tokens\":4 } , \"a\" : [ 1 , 2.5e-3 , true , null ] } \n\t ",
		found: true, usage: pricing.Usage{Prompt: 3, CachedPrompt: 2, Completion: 4}},
	{name: "unicode and escapes around", body: `{"c":"é😀\ud83d\ude00\"\\\/\b\f\n\r\t","usage":` + okUsage + `,"d":"日本語"}`, found: true, usage: three4},
	{name: "error body", body: `{"error":{"message":"m","type":"BadRequestError","param":null,"code":400}}`},

	// Valid JSON that is not an object.
	{name: "top-level array", body: `[{"usage":` + okUsage + `}]`},
	{name: "top-level string", body: `"usage"`},
	{name: "top-level number", body: ` -12.5E+3 `},
	{name: "top-level zero", body: `0`},
	{name: "top-level null", body: `null`},
	{name: "top-level true", body: `true`},

	// Usage present but undecodable.
	{name: "usage number", body: `{"usage":12}`, err: ErrUsage},
	{name: "usage string", body: `{"usage":"x"}`, err: ErrUsage},
	{name: "usage array", body: `{"usage":[]}`, err: ErrUsage},
	{name: "usage false", body: `{"usage":false}`, err: ErrUsage},
	{name: "usage empty object", body: `{"usage":{}}`, err: ErrUsage},
	{name: "negative count", body: `{"usage":{"prompt_tokens":-3}}`, err: ErrUsage},
	{name: "fractional count", body: `{"usage":{"prompt_tokens":3.5}}`, err: ErrUsage},
	{name: "integral float count", body: `{"usage":{"prompt_tokens":3.0}}`, err: ErrUsage},
	{name: "exponent count", body: `{"usage":{"prompt_tokens":3e1}}`, err: ErrUsage},
	{name: "string count", body: `{"usage":{"prompt_tokens":"3"}}`, err: ErrUsage},
	{name: "cached exceeds prompt", body: `{"usage":{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":4}}}`, err: ErrUsage},

	// Truncated bodies.
	{name: "empty", body: ``, err: ErrTruncated},
	{name: "only whitespace", body: " \n\t", err: ErrTruncated},
	{name: "open object", body: `{`, err: ErrTruncated},
	{name: "after key", body: `{"usage"`, err: ErrTruncated},
	{name: "inside key", body: `{"usa`, err: ErrTruncated},
	{name: "inside usage", body: `{"usage":{"prompt_tokens":3`, err: ErrTruncated},
	{name: "after complete usage", body: `{"usage":` + okUsage, err: ErrTruncated},
	{name: "inside string", body: `{"a":"abc`, err: ErrTruncated},
	{name: "inside escape", body: `{"a":"ab\`, err: ErrTruncated},
	{name: "inside hex escape", body: `{"a":"\u00`, err: ErrTruncated},
	{name: "inside literal", body: `{"a":nul`, err: ErrTruncated},
	{name: "top-level literal cut", body: `tr`, err: ErrTruncated},
	{name: "top-level number cut after minus", body: `-`, err: ErrTruncated},
	{name: "top-level number cut after dot", body: `1.`, err: ErrTruncated},
	{name: "top-level number cut after exponent", body: `1e+`, err: ErrTruncated},

	// Malformed bodies.
	{name: "trailing garbage", body: `{"usage":` + okUsage + `}x`, err: ErrMalformed},
	{name: "two values", body: `{} {}`, err: ErrMalformed},
	{name: "trailing comma in object", body: `{"a":1,}`, err: ErrMalformed},
	{name: "trailing comma in array", body: `{"a":[1,]}`, err: ErrMalformed},
	{name: "leading comma", body: `{,"a":1}`, err: ErrMalformed},
	{name: "missing colon", body: `{"a" 1}`, err: ErrMalformed},
	{name: "missing comma", body: `{"a":1 "b":2}`, err: ErrMalformed},
	{name: "unquoted key", body: `{usage:{}}`, err: ErrMalformed},
	{name: "single quotes", body: `{'usage':{}}`, err: ErrMalformed},
	{name: "mismatched close", body: `{"a":[}`, err: ErrMalformed},
	{name: "extra close", body: `{}}`, err: ErrMalformed},
	{name: "leading zero", body: `{"a":01}`, err: ErrMalformed},
	{name: "plus sign", body: `{"a":+1}`, err: ErrMalformed},
	{name: "bare dot", body: `{"a":.5}`, err: ErrMalformed},
	{name: "dot without digits", body: `{"a":1.}`, err: ErrMalformed},
	{name: "exponent without digits", body: `{"a":1e}`, err: ErrMalformed},
	{name: "bad literal", body: `{"a":nulL}`, err: ErrMalformed},
	{name: "control char in string", body: "{\"a\":\"x\ny\"}", err: ErrMalformed},
	{name: "control char in key", body: "{\"us\tage\":1}", err: ErrMalformed},
	{name: "bad escape", body: `{"a":"\x"}`, err: ErrMalformed},
	{name: "bad hex escape", body: `{"a":"\u12g4"}`, err: ErrMalformed},
	{name: "byte order mark", body: "\xef\xbb\xbf{}", err: ErrMalformed},
	{name: "malformed inside usage", body: `{"usage":{"prompt_tokens":3,}}`, err: ErrMalformed},
	{name: "malformed after usage", body: `{"usage":` + okUsage + `,]`, err: ErrMalformed},
}

func TestJSONScanner(t *testing.T) {
	seed := baseSeed(t)
	for _, c := range scanCases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(c.body)
			got := scanWhole(body)
			if c.err != nil {
				require.Error(t, got.err)
				assert.ErrorIs(t, got.err, c.err)
				assert.Zero(t, got.Usage)
				assert.False(t, got.Found)
			} else {
				require.NoError(t, got.err)
				assert.Equal(t, c.found, got.Found)
				assert.Equal(t, c.usage, got.Usage)
			}
			// encoding/json agrees on validity.
			if c.err == nil || c.err == ErrUsage {
				assert.True(t, json.Valid(body), "encoding/json rejects a body the scanner accepts")
			} else {
				assert.False(t, json.Valid(body), "encoding/json accepts a body the scanner rejects")
			}
			// Any split gives the same outcome, error text included.
			assert.Equal(t, got, scanBytewise(body), "byte by byte")
			for k := range uint64(50) {
				if !assert.Equal(t, got, scanRandom(body, seed+k), "random split, -usage.seed=%d", seed+k) {
					return
				}
			}
		})
	}
}

func TestJSONScannerErrorOffset(t *testing.T) {
	err := scanBytewise([]byte(`{"a": [1, 2 x]}`)).err
	require.ErrorIs(t, err, ErrMalformed)
	assert.Contains(t, err.Error(), "offset 12")
}

func TestJSONScannerDepthLimit(t *testing.T) {
	for _, depth := range []int{maxDepth, maxDepth + 1} {
		body := []byte(`{"a":` + strings.Repeat("[", depth-1) + strings.Repeat("]", depth-1) + `,"usage":` + okUsage + `}`)
		got := scanRandom(body, 1)
		if json.Valid(body) {
			require.NoError(t, got.err, "depth %d", depth)
			assert.Equal(t, three4, got.Usage)
		} else {
			assert.ErrorIs(t, got.err, ErrMalformed, "depth %d", depth)
		}
	}
}

func TestJSONScannerUsageTooLarge(t *testing.T) {
	big := `{"prompt_tokens":3,"pad":"` + strings.Repeat("x", MaxUsageBytes) + `"}`
	tests := []struct {
		name  string
		body  string
		found bool
	}{
		{name: "too large", body: `{"usage":` + big + `}`},
		{name: "too large, later one wins", body: `{"usage":` + big + `,"usage":` + okUsage + `}`, found: true},
		{name: "just fits", body: `{"usage":` + big[:MaxUsageBytes-2] + `"}}`, found: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for _, got := range []outcome{scanWhole([]byte(tt.body)), scanRandom([]byte(tt.body), 7)} {
				if tt.found {
					require.NoError(t, got.err)
					assert.True(t, got.Found)
					continue
				}
				assert.ErrorIs(t, got.err, ErrUsageTooLarge)
				assert.ErrorIs(t, got.err, ErrUsage)
				assert.False(t, got.Found)
			}
		})
	}
}

func TestJSONScannerReuseAndResult(t *testing.T) {
	var s JSONScanner // the zero value is usable
	s.Write([]byte(`{"usage":{"prompt_tokens":5,`))
	_, _, err := s.Result()
	assert.ErrorIs(t, err, ErrTruncated, "Result mid-body reports a truncated body")
	s.Write([]byte(`"completion_tokens":6,"completion_tokens_details":{"reasoning_tokens":2}}}`))
	for range 2 { // Result does not change the scanner.
		u, found, err := s.Result()
		require.NoError(t, err)
		assert.True(t, found)
		assert.Equal(t, pricing.Usage{Prompt: 5, Completion: 6}, u)
		assert.Equal(t, Details{Reasoning: 2}, s.Details())
	}

	s.Write([]byte(`x`))
	_, _, err = s.Result()
	require.ErrorIs(t, err, ErrMalformed)
	s.Write([]byte(`{"usage":` + okUsage + `}`))
	_, _, err2 := s.Result()
	assert.Equal(t, err, err2, "chunks after an error are ignored")
	assert.Zero(t, s.Details())

	s.Reset()
	s.Write([]byte(`{"usage":` + okUsage + `}`))
	u, found, err := s.Result()
	require.NoError(t, err)
	assert.True(t, found)
	assert.Equal(t, three4, u)
}
