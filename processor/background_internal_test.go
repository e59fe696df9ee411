package processor

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestResponseLookup(t *testing.T) {
	tests := []struct {
		method, path, id string
		ok               bool
	}{
		{"GET", "/v1/responses/resp_1", "resp_1", true},
		{"GET", "/v1/responses/resp_1?stream=true&starting_after=3", "resp_1", true},
		{"GET", "/v1/responses/resp%5F1", "resp_1", true},
		{"POST", "/v1/responses/resp_1/cancel", "resp_1", true},
		{"POST", "/v1/responses/resp_1/cancel?x=1", "resp_1", true},
		{"POST", "/v1/responses/resp_1", "", false},
		{"POST", "/v1/responses", "", false},
		{"GET", "/v1/responses", "", false},
		{"GET", "/v1/responses/", "", false},
		{"GET", "/v1/responses/a/b", "", false},
		{"GET", "/v1/responses/resp_1/cancel", "", false},
		{"DELETE", "/v1/responses/resp_1", "", false},
		{"GET", "/v1/responses/%zz", "", false},
		{"GET", "/v2/responses/resp_1", "", false},
	}
	for _, tt := range tests {
		id, ok := responseLookup(tt.method, tt.path)
		assert.Equal(t, tt.ok, ok, "%s %s", tt.method, tt.path)
		assert.Equal(t, tt.id, id, "%s %s", tt.method, tt.path)
	}
}
