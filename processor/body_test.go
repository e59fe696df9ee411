package processor

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

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
		{`{"model":"m","stream_options":{"include_usage":false,"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, usageInject},
		{`{"model":"m","stream_options":{ }}`, `{"model":"m","stream_options":{"include_usage":true }}`, usageAsked},
		{`{"model":"m","stream_options":{"continuous_usage_stats":true}}`, `{"model":"m","stream_options":{"include_usage":true,"continuous_usage_stats":true}}`, usageAsked},
		{`{"model":"m","stream_options":{"include_usage":true}}`, `{"model":"m","stream_options":{"include_usage":true}}`, usageAsked},
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
