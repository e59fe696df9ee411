package processor

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// TestHeaderValuesNeverCarryControlCharacters checks the last line of
// defence: whatever value reaches a header-writing path, no CR, LF or other
// control byte is emitted.
func TestHeaderValuesNeverCarryControlCharacters(t *testing.T) {
	hostile := "acme\r\nx-spendguard-budget: none\x00\x7f"
	clean := func(t *testing.T, v []byte) {
		t.Helper()
		for _, c := range v {
			assert.False(t, c < 0x20 || c == 0x7f, "control byte %#x in %q", c, v)
		}
		assert.True(t, strings.HasPrefix(string(v), "acme  x-spendguard-budget: none"), "%q", v)
	}
	t.Run("local reply", func(t *testing.T) {
		e := &apiError{status: 402, headers: [][2]string{{hdrScope, hostile}}}
		for _, o := range e.immediate().GetImmediateResponse().GetHeaders().GetSetHeaders() {
			if o.GetHeader().GetKey() == hdrScope {
				clean(t, o.GetHeader().GetRawValue())
			}
		}
	})
	t.Run("response headers answer", func(t *testing.T) {
		a := newHeadersAnswer()
		defer putHeadersAnswer(a)
		for range 4 { // the fourth goes past the block's own options
			a.setString(hdrDowngradedFrom, hostile)
		}
		opts := a.resp.GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders()
		assert.Len(t, opts, 4)
		for _, o := range opts {
			clean(t, o.GetHeader().GetRawValue())
		}
	})
}
