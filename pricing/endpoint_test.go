package pricing

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

func TestEndpointForPath(t *testing.T) {
	tests := []struct {
		path string
		want Endpoint
		ok   bool
	}{
		{"/v1/chat/completions", ChatCompletions, true},
		{"/v1/completions", Completions, true},
		{"/v1/embeddings", Embeddings, true},
		{"/v1/responses", Responses, true},
		{"/v1/chat/completions?api-version=1&x=/v1/models", ChatCompletions, true},
		{"/v1/embeddings?", Embeddings, true},
		{"/v1/chat%2Fcompletions", ChatCompletions, true}, // the server decodes before routing
		{"/v1/%63ompletions", Completions, true},
		{"/v1/chat/completions/", 0, false},
		{"//v1/chat/completions", 0, false},
		{"/V1/chat/completions", 0, false},
		{"/v1/chat/completions%zz", 0, false},
		{"/v1/chat/completions%3Fa=b", 0, false}, // an encoded "?" is part of the path
		{"/v1/models", 0, false},
		{"/health", 0, false},
		{"/tokenize", 0, false},
		{"/v1/responses/resp_123", 0, false},
		{"", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.path, func(t *testing.T) {
			got, ok := EndpointForPath(tt.path)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
}

func TestEndpointString(t *testing.T) {
	for _, e := range []Endpoint{ChatCompletions, Completions, Embeddings, Responses} {
		got, ok := EndpointForPath(e.String())
		assert.True(t, ok)
		assert.Equal(t, e, got)
	}
	assert.Equal(t, "Endpoint(0)", Endpoint(0).String())
	assert.Equal(t, "Endpoint(13)", (LastEndpoint + 1).String())
}
