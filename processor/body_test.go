package processor

import (
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
