package processor_test

import (
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestReportCarriesTheResponseModel: the CostReport's response_model is the
// model the upstream named in its response, JSON or SSE, whatever the
// request asked for; "" when the upstream named none.
func TestReportCarriesTheResponseModel(t *testing.T) {
	sse := "data: {\"object\":\"chat.completion.chunk\",\"model\":\"served-name\",\"choices\":[{\"index\":0,\"delta\":{\"content\":\"Hi\"}}]}\n\n" +
		"data: {\"object\":\"chat.completion.chunk\",\"model\":\"served-name\",\"choices\":[],\"usage\":{\"prompt_tokens\":3,\"completion_tokens\":1}}\n\n" +
		"data: [DONE]\n\n"
	for _, c := range []struct {
		name, contentType, body, want string
	}{
		{"JSON", "application/json", string(fixture(t, "vllm-chat.json")), "Hunyuan"},
		{"JSON naming another model", "application/json", `{"model":"vllm-alias","usage":{"prompt_tokens":3,"completion_tokens":1}}`, "vllm-alias"},
		{"JSON naming none", "application/json", `{"usage":{"prompt_tokens":3,"completion_tokens":1}}`, ""},
		{"SSE", "text/event-stream", sse, "served-name"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t, testConfig)
			s, cancel := h.open()
			defer cancel()
			require.NotNil(t, h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")).GetRequestHeaders())
			require.NotNil(t, h.roundTrip(s, reqBody(chatBody)).GetRequestBody())
			h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
				ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", "200", "content-type", c.contentType)}}})
			body := []byte(c.body)
			for i := 0; i < len(body); i += 9 {
				end := min(i+9, len(body))
				h.roundTrip(s, respBody(body[i:end], end == len(body)))
			}
			rep := <-h.reports
			assert.Equal(t, "Hunyuan", rep.GetRequestedModel())
			assert.Equal(t, c.want, rep.GetResponseModel())
		})
	}
}
