package processor

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/pricing"
)

// parsed reads a chat body as the body phase does.
func parsed(body []byte) (*pricing.Body, error) {
	b := new(pricing.Body)
	return b, pricing.ParseBody(b, pricing.ChatCompletions, body)
}

// replaceModel is the body after a downgrade to model.
func replaceModel(body []byte, model string) ([]byte, error) {
	b, err := parsed(body)
	if err != nil {
		return nil, err
	}
	return applyEdits(body, []edit{modelEdit(&b.Layout, model)}), nil
}

// planUsage decides whether a streaming request needs include_usage
// (and, with continuous, continuous_usage_stats).
func planUsage(body []byte, continuous bool) (usagePlan, error) {
	b, err := parsed(body)
	if err != nil {
		return usagePlan{}, err
	}
	plan, _, err := includeUsage(body, &b.Layout, continuous)
	return plan, err
}

// injectIncludeUsage is body with stream_options.include_usage true (and,
// with continuous, continuous_usage_stats true).
func injectIncludeUsage(body []byte, continuous bool) ([]byte, error) {
	b, err := parsed(body)
	if err != nil {
		return nil, err
	}
	_, e, err := includeUsage(body, &b.Layout, continuous)
	if err != nil {
		return nil, err
	}
	return applyEdits(body, []edit{e}), nil
}

func TestReplaceModelKeepsEveryOtherByte(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"model":"a","x":1}`, `{"model":"b/c","x":1}`},
		{"{ \"messages\" : [ {\"model\":\"inner\"} ] ,\n  \"model\" :\t\"a\"  }", "{ \"messages\" : [ {\"model\":\"inner\"} ] ,\n  \"model\" :\t\"b/c\"  }"},
		{`{"model":"a","model":"\u0061"}`, `{"model":"a","model":"b/c"}`},
		{`{"stream":true,"model":"a\"q"}`, `{"stream":true,"model":"b/c"}`},
	}
	for _, tt := range tests {
		got, err := replaceModel([]byte(tt.in), "b/c")
		require.NoError(t, err)
		assert.Equal(t, tt.want, string(got))
	}
	_, err := replaceModel([]byte(`{"x":1}`), "b")
	assert.Error(t, err)
}

// The plans of includeUsage.
var (
	asked = usagePlan{}
	drop  = usagePlan{dropUsageEvent: true}
	strip = usagePlan{stripChunkUsage: true}
	both  = usagePlan{dropUsageEvent: true, stripChunkUsage: true}
)

func TestInjectIncludeUsage(t *testing.T) {
	tests := []struct {
		in, want string
		plan     usagePlan
	}{
		{`{"model":"m","stream":true}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, drop},
		{"{\"model\":\"m\" ,\"stream\":true }\n", "{\"model\":\"m\" ,\"stream\":true ,\"stream_options\":{\"include_usage\":true}}\n", drop},
		{`{"model":"m","stream_options":null}`, `{"model":"m","stream_options":{"include_usage":true}}`, drop},
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":false}}`, drop},
		// include_usage null is no usage in vLLM: injected.
		{`{"model":"m","stream_options":{"include_usage":null}}`, `{"model":"m","stream_options":{"include_usage":true}}`, drop},
		{"{\"model\":\"m\",\"stream_options\":{ \"continuous_usage_stats\" : true ,\n \"include_usage\" : null }}",
			"{\"model\":\"m\",\"stream_options\":{ \"continuous_usage_stats\" : false ,\n \"include_usage\" : true }}", drop},
		// Every spelling and duplicate of continuous_usage_stats that vLLM
		// could read as true is turned off; false and null stay.
		{`{"model":"m","stream_options":{"continuous_usage_stats":1,"include_usage":false,"continuous\u005fusage_stats":"yes","x":true}}`,
			`{"model":"m","stream_options":{"continuous_usage_stats":false,"include_usage":true,"continuous\u005fusage_stats":false,"x":true}}`, drop},
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":false}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":false}}`, drop},
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":null}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":null}}`, drop},
		// Usage asked for (vLLM: an object without include_usage turns it
		// on): the body goes as the client sent it.
		{`{"model":"m","stream_options":{ }}`, `{"model":"m","stream_options":{ }}`, asked},
		{`{"model":"m","stream_options":{}}`, `{"model":"m","stream_options":{}}`, asked},
		{`{"model":"m","stream_options":{"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"continuous_usage_stats":true}}`, asked},
		{`{"model":"m","stream_options":{"include_usage":true}}`, `{"model":"m","stream_options":{"include_usage":true}}`, asked},
		{`{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, asked},
	}
	for _, tt := range tests {
		plan, err := planUsage([]byte(tt.in), false)
		require.NoError(t, err)
		assert.Equal(t, tt.plan, plan, tt.in)
		got, err := injectIncludeUsage([]byte(tt.in), false)
		require.NoError(t, err)
		assert.Equal(t, tt.want, string(got))
		assert.True(t, json.Valid(got))
	}
}

// TestDowngradeAndUsageInOneCopy: a downgraded streaming request gets both
// edits, in either order of the members, each placed as if alone.
func TestDowngradeAndUsageInOneCopy(t *testing.T) {
	tests := []struct{ in, want string }{
		{`{"model":"big","stream":true}`, `{"model":"small","stream":true,"stream_options":{"include_usage":true}}`},
		{`{"stream_options":{"include_usage":false},"model":"big"}`, `{"stream_options":{"include_usage":true},"model":"small"}`},
		{`{"model":"big","stream_options":null,"model":"big"}`, `{"model":"big","stream_options":{"include_usage":true},"model":"small"}`},
	}
	for _, tt := range tests {
		b, err := parsed([]byte(tt.in))
		require.NoError(t, err)
		_, usage, err := includeUsage([]byte(tt.in), &b.Layout, false)
		require.NoError(t, err)
		got := applyEdits([]byte(tt.in), []edit{modelEdit(&b.Layout, "small"), usage})
		assert.Equal(t, tt.want, string(got))
	}
}

// TestInjectContinuousUsage: with continuous, the forwarded body asks for
// include_usage and continuous_usage_stats, every other byte kept, and
// the plan says what the client did not ask for.
func TestInjectContinuousUsage(t *testing.T) {
	const both2 = `{"include_usage":true,"continuous_usage_stats":true}`
	tests := []struct {
		in, want string
		plan     usagePlan
	}{
		// Absent or null: both added, both hidden from the client.
		{`{"model":"m","stream":true}`, `{"model":"m","stream":true,"stream_options":` + both2 + `}`, both},
		{"{\"model\":\"m\" ,\"stream\":true }\n", "{\"model\":\"m\" ,\"stream\":true ,\"stream_options\":" + both2 + "}\n", both},
		{`{"model":"m"}`, `{"model":"m","stream_options":` + both2 + `}`, both},
		{`{"model":"m","stream_options":null}`, `{"model":"m","stream_options":` + both2 + `}`, both},
		// An empty object turns usage on (vLLM's default): continuous added.
		{`{"model":"m","stream_options":{}}`, `{"model":"m","stream_options":{"continuous_usage_stats":true}}`, strip},
		{`{"model":"m","stream_options":{ }}`, `{"model":"m","stream_options":{ "continuous_usage_stats":true}}`, strip},
		// include_usage true, false or null; continuous absent.
		{`{"model":"m","stream_options":{"include_usage":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, strip},
		{`{"model":"m","stream_options":{"include_usage":false}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, both},
		{`{"model":"m","stream_options":{"include_usage":null}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, both},
		// continuous_usage_stats false or null: set true.
		{`{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":false}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, strip},
		{`{"model":"m","stream_options":{"continuous_usage_stats":null}}`, `{"model":"m","stream_options":{"continuous_usage_stats":true}}`, strip},
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":null}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, both},
		// continuous asked but usage off: vLLM sends no usage at all.
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, both},
		{"{\"model\":\"m\",\"stream_options\":{ \"continuous_usage_stats\" : true ,\n \"include_usage\" : null }}",
			"{\"model\":\"m\",\"stream_options\":{ \"continuous_usage_stats\" : true ,\n \"include_usage\" : true }}", both},
		// Duplicates: the last of each counts; only it is rewritten.
		{`{"model":"m","stream_options":{"continuous_usage_stats":true,"continuous\u005fusage_stats":false,"x":1}}`,
			`{"model":"m","stream_options":{"continuous_usage_stats":true,"continuous\u005fusage_stats":true,"x":1}}`, strip},
		{`{"model":"m","stream_options":{"continuous_usage_stats":false,"continuous_usage_stats":true}}`,
			`{"model":"m","stream_options":{"continuous_usage_stats":false,"continuous_usage_stats":true}}`, asked},
		{`{"model":"m","stream_options":{"include_usage":true,"include_usage":false,"continuous_usage_stats":true}}`,
			`{"model":"m","stream_options":{"include_usage":true,"include_usage":true,"continuous_usage_stats":true}}`, both},
		// Both asked for: untouched.
		{`{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, asked},
		{`{"model":"m","stream_options":{"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"continuous_usage_stats":true}}`, asked},
		{`{"stream_options":{"continuous_usage_stats":true},"model":"m","stream_options":{"include_usage":true}}`,
			`{"stream_options":{"continuous_usage_stats":true},"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, strip},
	}
	for _, tt := range tests {
		plan, err := planUsage([]byte(tt.in), true)
		require.NoError(t, err)
		assert.Equal(t, tt.plan, plan, tt.in)
		assert.Equal(t, tt.plan != asked, plan.rewrites(), tt.in)
		got, err := injectIncludeUsage([]byte(tt.in), true)
		require.NoError(t, err)
		assert.Equal(t, tt.want, string(got), tt.in)
		assert.True(t, json.Valid(got))
	}
	for _, bad := range []string{`{"model":"m","stream_options":true}`, `{"model":"m","stream_options":[]}`, `{"model":"m","stream_options":"x"}`} {
		for _, continuous := range []bool{false, true} {
			_, err := planUsage([]byte(bad), continuous)
			assert.Error(t, err, bad)
		}
	}
}
