package processor

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestAnthropicErrorTypes: each status spendguard can answer on
// /v1/messages carries the error type Anthropic's API uses for it, so the
// SDKs' typed errors match what the real API would raise.
func TestAnthropicErrorTypes(t *testing.T) {
	for status, want := range map[int]string{
		400: "invalid_request_error", 401: "authentication_error", 402: "billing_error",
		403: "permission_error", 404: "not_found_error", 413: "request_too_large",
		429: "rate_limit_error", 500: "api_error", 503: "overloaded_error",
	} {
		e := &apiError{status: status, code: "some_code", message: "why"}
		var body struct {
			Type  string `json:"type"`
			Error struct {
				Type    string `json:"type"`
				Message string `json:"message"`
			} `json:"error"`
		}
		require.NoError(t, json.Unmarshal(e.anthropicBody(), &body))
		assert.Equal(t, "error", body.Type, "%d", status)
		assert.Equal(t, want, body.Error.Type, "%d", status)
		assert.Equal(t, "why (some_code)", body.Error.Message, "%d", status)
	}
}
