package usage

import (
	"encoding/json"
	"errors"
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// pathCases are bodies scanned for the usage at response.usage, as in the
// events of a Responses API stream.
var pathCases = []scanCase{
	{name: "completed event",
		body:  `{"type":"response.completed","sequence_number":9,"response":{"id":"resp_1","output":[{"type":"message","content":[{"type":"output_text","text":"hi"}]}],"usage":` + okUsage + `,"user":null}}`,
		found: true, usage: three4},
	{name: "usage null", body: `{"type":"response.created","response":{"id":"r","usage":null}}`},
	{name: "top-level usage does not count", body: `{"usage":` + okUsage + `,"response":{"id":"r"}}`},
	{name: "deeper usage does not count", body: `{"response":{"output":[{"usage":` + okUsage + `}],"metadata":{"usage":` + okUsage + `}}}`},
	{name: "usage key elsewhere at depth two", body: `{"item":{"usage":` + okUsage + `},"response":{}}`},
	{name: "response not an object", body: `{"response":"usage"}`},
	{name: "escaped keys", body: `{"r\u0065sponse":{"us\u0061ge":` + okUsage + `}}`, found: true, usage: three4},
	{name: "usage after nested objects", body: `{"response":{"a":{"b":{"usage":1}},"c":[{"d":{}}],"usage":` + okUsage + `},"z":1}`, found: true, usage: three4},
	{name: "later response wins", body: `{"response":{"usage":{"prompt_tokens":1}},"response":{"usage":` + okUsage + `}}`, found: true, usage: three4},
	{name: "later response without usage hides", body: `{"response":{"usage":` + okUsage + `},"response":{"id":"r"}}`},
	{name: "later null response hides", body: `{"response":{"usage":` + okUsage + `},"response":null}`},
	{name: "later usage in the same response wins", body: `{"response":{"usage":{"prompt_tokens":1},"usage":` + okUsage + `}}`, found: true, usage: three4},
	{name: "bad usage", body: `{"response":{"usage":[1]}}`, err: ErrUsage},
	{name: "responses vocabulary",
		body:  `{"response":{"usage":{"input_tokens":10,"input_tokens_details":{"cached_tokens":4},"output_tokens":7,"output_tokens_details":{"reasoning_tokens":2},"total_tokens":17}}}`,
		found: true, usage: pricing.Usage{Prompt: 10, CachedPrompt: 4, Completion: 7}},
	{name: "malformed", body: `{"response":{"usage":` + okUsage + `}`, err: ErrTruncated},
}

func TestJSONScannerPath(t *testing.T) {
	seed := baseSeed(t)
	for _, c := range pathCases {
		t.Run(c.name, func(t *testing.T) {
			body := []byte(c.body)
			got := scanPath(body, responsesUsagePath, func(rest int) int { return rest })
			if c.err != nil {
				require.Error(t, got.err)
				assert.ErrorIs(t, got.err, c.err)
				assert.False(t, got.Found)
			} else {
				require.NoError(t, got.err)
				assert.Equal(t, c.found, got.Found)
				assert.Equal(t, c.usage, got.Usage)
				assert.Equal(t, oraclePathOutcome(body), got, "encoding/json sees another response.usage")
			}
			assert.Equal(t, got, scanPath(body, responsesUsagePath, func(int) int { return 1 }), "byte by byte")
			for k := range uint64(20) {
				assert.Equal(t, got, scanPath(body, responsesUsagePath, randomSplits(seed+k)), "-usage.seed=%d", seed+k)
			}
		})
	}
}

// TestJSONScannerPathReset: Reset returns a path scanner to the top-level
// usage.
func TestJSONScannerPathReset(t *testing.T) {
	s := NewJSONScanner()
	s.resetPath(responsesUsagePath)
	s.Write([]byte(`{"response":{"usage":` + okUsage + `}}`))
	_, found, err := s.Result()
	require.NoError(t, err)
	require.True(t, found)

	s.Reset()
	s.Write([]byte(`{"response":{"usage":` + okUsage + `}}`))
	_, found, err = s.Result()
	require.NoError(t, err)
	assert.False(t, found)
}

// oraclePathOutcome decodes response.usage of a valid JSON body with
// encoding/json.
func oraclePathOutcome(body []byte) outcome {
	var m map[string]json.RawMessage
	if json.Unmarshal(body, &m) != nil || m == nil {
		return outcome{}
	}
	var resp map[string]json.RawMessage
	if json.Unmarshal(m["response"], &resp) != nil || resp == nil {
		return outcome{}
	}
	raw, ok := resp["usage"]
	if !ok || string(raw) == "null" {
		return outcome{}
	}
	u, d, err := ParseUsageDetails(raw)
	o := outcome{Usage: u, Details: d, Found: err == nil, err: err}
	if err != nil {
		o.Err = err.Error()
	}
	return o
}

// FuzzJSONScannerPath: for any body and split, the response.usage the
// scanner reports does not depend on the split, and equals what
// encoding/json finds there when the body is a valid object.
func FuzzJSONScannerPath(f *testing.F) {
	for _, c := range pathCases {
		f.Add([]byte(c.body), uint64(len(c.body)))
	}
	for _, c := range scanCases {
		f.Add([]byte(`{"response":`+c.body+`}`), uint64(len(c.body)))
	}
	f.Fuzz(func(t *testing.T, body []byte, seed uint64) {
		whole := scanPath(body, responsesUsagePath, func(rest int) int { return rest })
		require.Equal(t, whole, scanPath(body, responsesUsagePath, randomSplits(seed)), "random split, seed %d", seed)
		if !json.Valid(body) {
			require.Error(t, whole.err, "an invalid body is accepted")
			return
		}
		if errors.Is(whole.err, ErrUsageTooLarge) {
			return // encoding/json has no such bound
		}
		require.Equal(t, oraclePathOutcome(body), whole)
	})
}
