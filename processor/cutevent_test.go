package processor

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/pricing"
)

// sseEvents splits a well-formed event stream into (event type, data).
func sseEvents(t *testing.T, b []byte) [][2]string {
	t.Helper()
	require.True(t, bytes.HasSuffix(b, []byte("\n\n")), "ends with a blank line: %q", b)
	var out [][2]string
	for _, block := range strings.Split(strings.TrimSuffix(string(b), "\n\n"), "\n\n") {
		var ev [2]string
		for _, line := range strings.Split(block, "\n") {
			name, value, ok := strings.Cut(line, ": ")
			require.True(t, ok, "line %q", line)
			switch name {
			case "event":
				ev[0] = value
			case "data":
				ev[1] = value
			default:
				t.Fatalf("unexpected field %q", name)
			}
		}
		out = append(out, ev)
	}
	return out
}

func TestCutEventShapes(t *testing.T) {
	msg := cutMessage("acme-daily", 42)
	assert.Contains(t, msg, `"acme-daily"`)
	assert.Contains(t, msg, "42 output tokens")

	for _, ep := range []pricing.Endpoint{pricing.ChatCompletions, pricing.Completions} {
		evs := sseEvents(t, cutEvent(ep, msg, "m", "", 7, 0))
		require.Len(t, evs, 2, ep.String())
		var body errorBody
		require.NoError(t, json.Unmarshal([]byte(evs[0][1]), &body))
		assert.Equal(t, typeBudgetExceeded, body.Error.Type)
		assert.Equal(t, msg, body.Error.Message)
		assert.Equal(t, "[DONE]", evs[1][1])
	}

	evs := sseEvents(t, cutEvent(pricing.Messages, msg, "m", "", 7, 0))
	require.Len(t, evs, 1)
	assert.Equal(t, "error", evs[0][0])
	var ae anthropicError
	require.NoError(t, json.Unmarshal([]byte(evs[0][1]), &ae))
	assert.Equal(t, anthropicError{Type: "error", Error: anthropicFields{Type: "billing_error", Message: msg}}, ae)

	evs = sseEvents(t, cutEvent(pricing.Responses, msg, "m1", "resp_1", 7, 1700000000))
	require.Len(t, evs, 1)
	assert.Equal(t, "response.failed", evs[0][0])
	var fe map[string]any
	require.NoError(t, json.Unmarshal([]byte(evs[0][1]), &fe))
	assert.Equal(t, "response.failed", fe["type"])
	assert.EqualValues(t, 7, fe["sequence_number"])
	r := fe["response"].(map[string]any)
	assert.Equal(t, "failed", r["status"])
	assert.Equal(t, "resp_1", r["id"])
	assert.Equal(t, "m1", r["model"])
	assert.EqualValues(t, 1700000000, r["created_at"])
	assert.Equal(t, map[string]any{"code": typeBudgetExceeded, "message": msg}, r["error"])

	assert.Contains(t, cutMessage(maxRequestBudget, 3), "limits.max_request_usd")
}
