package workload

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestMessagesAreEnvoys pins the shape of a lifecycle: protocol_config on
// the first message only, values in raw_value, end_of_stream on the last
// body message of each direction only, and the empty chunk that ends a
// chunked stream.
func TestMessagesAreEnvoys(t *testing.T) {
	for _, kind := range []Kind{JSON, SSE} {
		msgs := Messages(kind)
		require.NotNil(t, msgs[0].GetProtocolConfig())
		for _, m := range msgs[1:] {
			assert.Nil(t, m.GetProtocolConfig())
		}
		for _, h := range msgs[0].GetRequestHeaders().GetHeaders().GetHeaders() {
			assert.NotEmpty(t, h.GetRawValue(), h.GetKey())
			assert.Empty(t, h.GetValue(), h.GetKey())
		}
		assert.False(t, msgs[0].GetRequestHeaders().GetEndOfStream())
		assert.True(t, msgs[1].GetRequestBody().GetEndOfStream())
		assert.InDelta(t, 1024, len(msgs[1].GetRequestBody().GetBody()), 200, "a 1 KiB request")
		assert.False(t, msgs[2].GetResponseHeaders().GetEndOfStream())
		body := msgs[3:]
		for _, m := range body[:len(body)-1] {
			assert.False(t, m.GetResponseBody().GetEndOfStream())
		}
		last := body[len(body)-1].GetResponseBody()
		assert.True(t, last.GetEndOfStream())
		if kind == SSE {
			assert.Len(t, body, TokenEvents+3, "token events, usage, [DONE], the empty end")
			assert.Empty(t, last.GetBody())
		}
	}
}
