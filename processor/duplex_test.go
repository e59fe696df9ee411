package processor_test

import (
	"bytes"
	"testing"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// duplexModes marks a stream's first message with spendguard's modes:
// request body BUFFERED, response body FULL_DUPLEX_STREAMED.
func duplexModes(req *extprocv3.ProcessingRequest) *extprocv3.ProcessingRequest {
	return withModes(req, extprocfilterv3.ProcessingMode_BUFFERED, extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED)
}

// duplexBody checks that r answers a response chunk as Envoy requires in
// FULL_DUPLEX_STREAMED mode (a streamed_response carrying the chunk's
// end_of_stream) and returns the bytes the client gets.
func duplexBody(t *testing.T, r *extprocv3.ProcessingResponse, eos bool) []byte {
	t.Helper()
	sr := r.GetResponseBody().GetResponse().GetBodyMutation().GetStreamedResponse()
	require.NotNil(t, sr, "every chunk is answered with a streamed_response: %v", r)
	assert.Equal(t, eos, sr.GetEndOfStream(), "end_of_stream is the chunk's")
	return bytes.Clone(sr.GetBody())
}

// duplexExchange is exchange (usage_e2e_test.go) with the response body
// FULL_DUPLEX_STREAMED; it returns what the client gets and how many
// chunks were answered with no bytes.
func duplexExchange(t *testing.T, h *harness, body string, stream []byte, chunk int) (client []byte, empty int) {
	t.Helper()
	s, cancel := h.open()
	defer cancel()
	require.NotNil(t, h.roundTrip(s, duplexModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))).GetRequestHeaders())
	require.NotNil(t, h.roundTrip(s, reqBody(body)).GetRequestBody())
	h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", "200", "content-type", "text/event-stream; charset=utf-8")}}})
	for i := 0; i < len(stream); i += chunk {
		end := min(i+chunk, len(stream))
		got := duplexBody(t, h.roundTrip(s, respBody(stream[i:end], end == len(stream))), end == len(stream))
		if len(got) == 0 {
			empty++
		}
		client = append(client, got...)
	}
	return client, empty
}

// TestFullDuplexCarriesWhatStreamedForwards: in FULL_DUPLEX_STREAMED mode
// the client gets, chunk by chunk, exactly the bytes STREAMED mode forwards
// (chunks kept, replaced, or cleared: here the usage chunk spendguard asked
// for is removed), and the request is charged the same.
func TestFullDuplexCarriesWhatStreamedForwards(t *testing.T) {
	upstream := streamFixture(t, "vllm-chat-stream-usage.sse")
	body := `{"model":"Hunyuan","stream":true,"messages":[{"role":"user","content":"Hi"}]}`
	for _, chunk := range splits {
		h := newHarness(t, usageConfig)
		_, want := exchange(t, h, body, upstream, chunk, false)
		wantRep := report(t, h)

		h = newHarness(t, usageConfig)
		got, empty := duplexExchange(t, h, body, upstream, chunk)
		assert.Equal(t, string(want), string(got), "chunk %d", chunk)
		assert.NotContains(t, string(got), `"usage"`)
		if chunk == 1 {
			assert.Positive(t, empty, "a cleared chunk is answered with an empty body")
		}
		rep := report(t, h)
		assert.Equal(t, wantRep.GetPromptTokens(), rep.GetPromptTokens())
		assert.Equal(t, wantRep.GetCompletionTokens(), rep.GetCompletionTokens())
		assert.False(t, rep.GetEstimated())
	}
}

// TestFullDuplexJSONEchoedAndCharged: an unchanged JSON response comes back
// chunk for chunk, end_of_stream on the last, and is charged exactly.
func TestFullDuplexJSONEchoedAndCharged(t *testing.T) {
	json := fixture(t, "vllm-chat.json")
	h := newHarness(t, testConfig)
	answers, err := h.play(seq(duplexModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")), reqBody(chatBody), respHeaders("200"), chunks(json, 100, true))...)
	require.NoError(t, err)
	require.Len(t, answers, 3+(len(json)+99)/100)
	var got []byte
	for i, a := range answers[3:] {
		got = append(got, duplexBody(t, a, i == len(answers)-4)...)
	}
	assert.Equal(t, string(json), string(got))
	assert.Equal(t, exactCost, h.spend("acme").Committed)
}

// TestFullDuplexFreePathsAnswered: Envoy ignores mode_override in this
// mode, so a free path's response still comes, and every chunk is echoed;
// trailers get a trailers answer. The same holds for a response that ends
// with trailers on a cost path.
func TestFullDuplexFreePathsAnswered(t *testing.T) {
	h := newHarness(t, testConfig)
	answers, err := h.play(duplexModes(reqHeaders("/v1/models")), respHeaders("200"),
		respBody([]byte(`{"data":`), false), respBody(nil, false), respBody([]byte(`[]}`), false), respTrailers())
	require.NoError(t, err)
	require.Len(t, answers, 6)
	assert.NotNil(t, answers[0].GetModeOverride(), "the override Envoy ignores is still sent")
	assert.NotNil(t, answers[1].GetResponseHeaders())
	assert.Equal(t, `{"data":`, string(duplexBody(t, answers[2], false)))
	assert.Empty(t, duplexBody(t, answers[3], false))
	assert.Equal(t, `[]}`, string(duplexBody(t, answers[4], false)))
	assert.NotNil(t, answers[5].GetResponseTrailers())

	json := fixture(t, "vllm-chat.json")
	answers, err = h.play(seq(duplexModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")), reqBody(chatBody), respHeaders("200"), chunks(json, 100, false), respTrailers())...)
	require.NoError(t, err)
	assert.NotNil(t, answers[len(answers)-1].GetResponseTrailers())
	for _, a := range answers[3 : len(answers)-1] {
		duplexBody(t, a, false)
	}
	assert.Equal(t, exactCost, h.spend("acme").Committed)
}

// TestFullDuplexOtherModesRefused: the request body must still be BUFFERED.
func TestFullDuplexOtherModesRefused(t *testing.T) {
	h := newHarness(t, testConfig)
	answers, err := h.play(withModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"), extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED, extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED))
	require.NoError(t, err)
	require.Len(t, answers, 1)
	assert.EqualValues(t, 500, answers[0].GetImmediateResponse().GetStatus().GetCode())
	assert.Contains(t, string(answers[0].GetImmediateResponse().GetBody()), "request_body_mode is FULL_DUPLEX_STREAMED")

	// A violation still ends the stream, duplex or not.
	_, err = h.play(duplexModes(reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")), respHeaders("200"), reqBody(chatBody))
	assert.Equal(t, codes.InvalidArgument, status.Code(err))
}
