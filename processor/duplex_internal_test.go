package processor

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
)

func TestEndResponse(t *testing.T) {
	st := &stream{duplex: true}
	sr := st.endResponse([]byte("data: [DONE]\n\n")).GetResponseBody().GetResponse().GetBodyMutation().GetStreamedResponse()
	assert.Equal(t, "data: [DONE]\n\n", string(sr.GetBody()))
	assert.True(t, sr.GetEndOfStream())
	// duplexAnswer leaves an answer that already is a streamed_response alone.
	req := &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte("x")}}}
	end := st.endResponse([]byte("tail"))
	assert.Same(t, end, st.duplexAnswer(req, end))
	assert.True(t, end.GetResponseBody().GetResponse().GetBodyMutation().GetStreamedResponse().GetEndOfStream())
}

func TestDuplexAnswerConverts(t *testing.T) {
	st := &stream{duplex: true}
	req := func(b string, eos bool) *extprocv3.ProcessingRequest {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: &extprocv3.HttpBody{Body: []byte(b), EndOfStream: eos}}}
	}
	streamed := func(r *extprocv3.ProcessingResponse) (string, bool) {
		sr := r.GetResponseBody().GetResponse().GetBodyMutation().GetStreamedResponse()
		return string(sr.GetBody()), sr.GetEndOfStream()
	}
	b, eos := streamed(st.duplexAnswer(req("abc", false), answerResponseBody))
	assert.Equal(t, "abc", b, "an unchanged chunk is echoed")
	assert.False(t, eos)
	b, eos = streamed(st.duplexAnswer(req("abc", true), answerClearChunk))
	assert.Empty(t, b, "a cleared chunk gives an empty body")
	assert.True(t, eos)
	b, _ = streamed(st.duplexAnswer(req("abc", false), st.replaceChunk([]byte("xyz"))))
	assert.Equal(t, "xyz", b, "a replaced chunk gives its replacement")
	assert.Same(t, answerResponseHeaders, st.duplexAnswer(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{}}, answerResponseHeaders))
	assert.Same(t, answerResponseTrailers, st.duplexAnswer(&extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseTrailers{}}, answerResponseTrailers))

	r := req("chunk", false)
	allocs := testing.AllocsPerRun(100, func() { st.duplexAnswer(r, answerResponseBody) })
	assert.Zero(t, allocs, "the hot path reuses the stream's answer")
}
