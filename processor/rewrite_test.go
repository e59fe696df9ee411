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

// planUsage decides whether a streaming request needs include_usage.
func planUsage(body []byte) (usageInjection, error) {
	b, err := parsed(body)
	if err != nil {
		return 0, err
	}
	plan, _, err := includeUsage(body, &b.Layout)
	return plan, err
}

// injectIncludeUsage is body with stream_options.include_usage true.
func injectIncludeUsage(body []byte) ([]byte, error) {
	b, err := parsed(body)
	if err != nil {
		return nil, err
	}
	_, e, err := includeUsage(body, &b.Layout)
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

func TestInjectIncludeUsage(t *testing.T) {
	tests := []struct {
		in, want string
		plan     usageInjection
	}{
		{`{"model":"m","stream":true}`, `{"model":"m","stream":true,"stream_options":{"include_usage":true}}`, usageInject},
		{"{\"model\":\"m\" ,\"stream\":true }\n", "{\"model\":\"m\" ,\"stream\":true ,\"stream_options\":{\"include_usage\":true}}\n", usageInject},
		{`{"model":"m","stream_options":null}`, `{"model":"m","stream_options":{"include_usage":true}}`, usageInject},
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":false}}`, usageInject},
		// include_usage null is no usage in vLLM: injected.
		{`{"model":"m","stream_options":{"include_usage":null}}`, `{"model":"m","stream_options":{"include_usage":true}}`, usageInject},
		{"{\"model\":\"m\",\"stream_options\":{ \"continuous_usage_stats\" : true ,\n \"include_usage\" : null }}",
			"{\"model\":\"m\",\"stream_options\":{ \"continuous_usage_stats\" : false ,\n \"include_usage\" : true }}", usageInject},
		// Every spelling and duplicate of continuous_usage_stats that vLLM
		// could read as true is turned off; false and null stay.
		{`{"model":"m","stream_options":{"continuous_usage_stats":1,"include_usage":false,"continuous\u005fusage_stats":"yes","x":true}}`,
			`{"model":"m","stream_options":{"continuous_usage_stats":false,"include_usage":true,"continuous\u005fusage_stats":false,"x":true}}`, usageInject},
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":false}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":false}}`, usageInject},
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":null}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":null}}`, usageInject},
		// Usage asked for (vLLM: an object without include_usage turns it
		// on): the body goes as the client sent it.
		{`{"model":"m","stream_options":{ }}`, `{"model":"m","stream_options":{ }}`, usageAsked},
		{`{"model":"m","stream_options":{}}`, `{"model":"m","stream_options":{}}`, usageAsked},
		{`{"model":"m","stream_options":{"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"continuous_usage_stats":true}}`, usageAsked},
		{`{"model":"m","stream_options":{"include_usage":true}}`, `{"model":"m","stream_options":{"include_usage":true}}`, usageAsked},
		{`{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, usageAsked},
	}
	for _, tt := range tests {
		plan, err := planUsage([]byte(tt.in))
		require.NoError(t, err)
		assert.Equal(t, tt.plan, plan, tt.in)
		got, err := injectIncludeUsage([]byte(tt.in))
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
		_, usage, err := includeUsage([]byte(tt.in), &b.Layout)
		require.NoError(t, err)
		got := applyEdits([]byte(tt.in), []edit{modelEdit(&b.Layout, "small"), usage})
		assert.Equal(t, tt.want, string(got))
	}
}
