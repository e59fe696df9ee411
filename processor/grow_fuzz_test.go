package processor_test

import (
	"bytes"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
)

// FuzzGrowingStream: a growing chat stream of any length, its bytes split
// at any offsets, against a cap with room for 47 output tokens (growConfig).
// Whatever the splits: the client gets whole events only, followed by the
// error event and [DONE] when the stream is cut; the charge is exactly the
// usage of what the client got, never past the cap; nothing stays
// reserved.
func FuzzGrowingStream(f *testing.F) {
	f.Add(uint8(10), []byte{1})
	f.Add(uint8(47), []byte{200, 3})
	f.Add(uint8(48), []byte{7, 7, 7})
	f.Add(uint8(200), []byte{1, 2, 3, 4, 5, 250})
	f.Add(uint8(120), []byte{0})
	f.Fuzz(func(t *testing.T, n uint8, cuts []byte) {
		h := newHarness(t, growConfig) // a fresh store and cap each time
		tenant := "acme"
		events := chatStream(int(n))
		body := bytes.Join(events, nil)
		s, cancel := h.open()
		defer cancel()
		require.NotNil(t, h.roundTrip(s, duplexModes(reqHeaders("/v1/chat/completions", "x-tenant-id", tenant))).GetRequestHeaders())
		require.NotNil(t, h.roundTrip(s, reqBody(`{"model":"Hunyuan","stream":true,"messages":[{"role":"user","content":"Hi"}]}`)).GetRequestBody())
		h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
			ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", "200", "content-type", "text/event-stream")}}})
		var client []byte
		cut, k := false, 0
		for rest := body; len(rest) > 0 && !cut; k++ {
			size := len(rest)
			if len(cuts) > 0 {
				size = min(int(cuts[k%len(cuts)])+1, len(rest))
			}
			piece := rest[:size]
			rest = rest[size:]
			r := h.roundTrip(s, respBody(piece, len(rest) == 0))
			sr := r.GetResponseBody().GetResponse().GetBodyMutation().GetStreamedResponse()
			require.NotNil(t, sr)
			client = append(client, sr.GetBody()...)
			if sr.GetEndOfStream() && len(rest) > 0 {
				cut = true
			}
		}
		cancel()
		text := string(client)
		delivered := int64(strings.Count(text, `" tok"`))
		require.Equal(t, int(n) > 47, cut || strings.Contains(text, "budget_exceeded"), "cut exactly when the stream outgrows the cap (n=%d)", n)
		if strings.Contains(text, "budget_exceeded") {
			require.True(t, strings.HasSuffix(text, "data: [DONE]\n\n"))
			i := strings.LastIndex(text, `data: {"error"`)
			require.True(t, i == 0 || strings.HasSuffix(text[:i], "\n\n"), "the error event follows a whole event")
		} else {
			require.Equal(t, int64(n), delivered)
		}
		require.LessOrEqual(t, delivered, int64(47))
		require.NotContains(t, text, `"usage"`)
		h.eventually(func() bool { return h.spend(tenant).Reserved == 0 })
		c := h.spend(tenant)
		require.Equal(t, money.Nano(growPrompt*1000+delivered*2000), c.Committed, "charged exactly what was delivered")
		require.LessOrEqual(t, c.Committed, money.Nano(100_000))
	})
}
