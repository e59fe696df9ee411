package processor_test

import (
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The output limit a reservation covers, written into the forwarded body
// of a request that states none, over real gRPC.

// limitConfig reserves 1000 output tokens per sequence for a request that
// states no limit; Small is Hunyuan's soft-cap downgrade once soft_usd is
// passed (pastSoft).
const limitConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - match: Hunyuan
      input: 0.60
      output: 0.80
    - match: Small
      input: 0.10
      output: 0.20
  default_max_output_tokens: 1000
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    soft_usd: 100
    hard_usd: 200
    on_soft:
      downgrade: {Hunyuan: Small}
`

// limitExchange sends body to path and answers it with a 200; it returns
// the forwarded body (nil: as sent) and the headers spendguard set on the
// response.
func limitExchange(t *testing.T, h *harness, path, body string) (forwarded []byte, set map[string]string) {
	t.Helper()
	s, cancel := h.open()
	defer cancel()
	require.NotNil(t, h.roundTrip(s, reqHeaders(path, "x-tenant-id", "acme")).GetRequestHeaders())
	resp := h.roundTrip(s, reqBody(body))
	require.Nil(t, resp.GetImmediateResponse(), "%s: admitted", body)
	rb := resp.GetRequestBody()
	require.NotNil(t, rb)
	if m := rb.GetResponse().GetBodyMutation(); m != nil {
		forwarded = m.GetBody()
		require.NotNil(t, forwarded)
		assertContentLength(t, rb.GetResponse(), len(forwarded))
	}
	rh := h.roundTrip(s, respHeaders("200")).GetResponseHeaders()
	require.NotNil(t, rh)
	set = map[string]string{}
	for _, o := range rh.GetResponse().GetHeaderMutation().GetSetHeaders() {
		set[o.GetHeader().GetKey()] = string(o.GetHeader().GetRawValue())
	}
	return forwarded, set
}

// assertContentLength checks that a body mutation comes with its
// content-length.
func assertContentLength(t *testing.T, r *extprocv3.CommonResponse, n int) {
	t.Helper()
	for _, o := range r.GetHeaderMutation().GetSetHeaders() {
		if strings.EqualFold(o.GetHeader().GetKey(), "content-length") {
			assert.Equal(t, strconv.Itoa(n), string(o.GetHeader().GetRawValue()))
			return
		}
	}
	assert.Fail(t, "no content-length with the body mutation")
}

// TestOutputLimitWritten: a request that states no output limit is
// forwarded with the limit its reservation covers added as the endpoint
// names it (the client's body plus one member, every other byte kept) and
// the response says so; a stated limit, even 0, is forwarded untouched.
func TestOutputLimitWritten(t *testing.T) {
	const msgs = `"messages":[{"role":"user","content":"Hi"}]`
	for _, tc := range []struct {
		name, path, body string
		member           string // the member written, "" when the body goes as sent
	}{
		{"chat without a limit", "/v1/chat/completions", `{"model":"Hunyuan",` + msgs + `}`, "max_completion_tokens"},
		{"chat with max_tokens", "/v1/chat/completions", `{"model":"Hunyuan","max_tokens":50,` + msgs + `}`, ""},
		{"chat with max_completion_tokens", "/v1/chat/completions", `{"model":"Hunyuan","max_completion_tokens":50,` + msgs + `}`, ""},
		{"chat with max_tokens 0", "/v1/chat/completions", `{"model":"Hunyuan","max_tokens":0,` + msgs + `}`, ""},
		{"chat with a null limit", "/v1/chat/completions", `{"model":"Hunyuan","max_tokens":null,"max_completion_tokens":null,` + msgs + `}`, "max_completion_tokens"},
		{"chat, n=3: the limit is per sequence", "/v1/chat/completions", `{"model":"Hunyuan","n":3,` + msgs + `}`, "max_completion_tokens"},
		{"chat, spaced and a trailing newline", "/v1/chat/completions", "{ \"model\" : \"Hunyuan\" ,\n \"messages\": [] \n}\n", "max_completion_tokens"},
		{"chat, duplicate keys: the last limit is null", "/v1/chat/completions", `{"model":"x","max_tokens":7,"model":"Hunyuan","max_tokens":null,` + msgs + `}`, "max_completion_tokens"},
		{"chat, duplicate keys: the last limit is stated", "/v1/chat/completions", `{"model":"Hunyuan","max_tokens":null,"max_tokens":7,` + msgs + `}`, ""},
		{"completions without a limit", "/v1/completions", `{"model":"Hunyuan","prompt":"Hi"}`, "max_tokens"},
		{"completions with a limit", "/v1/completions", `{"model":"Hunyuan","prompt":"Hi","max_tokens":16}`, ""},
		{"completions, best_of 2", "/v1/completions", `{"model":"Hunyuan","prompt":["a","b"],"best_of":2}`, "max_tokens"},
		{"responses without a limit", "/v1/responses", `{"model":"Hunyuan","input":"Hi"}`, "max_output_tokens"},
		{"responses with a limit", "/v1/responses", `{"model":"Hunyuan","input":"Hi","max_output_tokens":64}`, ""},
		{"messages always state one", "/v1/messages", `{"model":"Hunyuan","max_tokens":64,` + msgs + `}`, ""},
		{"embeddings generate nothing", "/v1/embeddings", `{"model":"Hunyuan","input":"Hi"}`, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, limitConfig)
			fwd, set := limitExchange(t, h, tc.path, tc.body)
			if tc.member == "" {
				assert.Nil(t, fwd, "the body goes as the client sent it")
				assert.NotContains(t, set, "x-spendguard-max-tokens")
				return
			}
			end := strings.LastIndexByte(tc.body, '}')
			want := tc.body[:end] + `,"` + tc.member + `":1000` + tc.body[end:]
			assert.Equal(t, want, string(fwd))
			assert.Equal(t, "1000", set["x-spendguard-max-tokens"])
			assert.NotEmpty(t, set["x-spendguard-remaining-usd"], "announced alongside the remaining budget")
		})
	}
}

// TestOutputLimitStreaming: a streaming chat request without usage asked
// and without a limit gets both include_usage and the limit, in one copy.
func TestOutputLimitStreaming(t *testing.T) {
	h := newHarness(t, limitConfig)
	body := `{"model":"Hunyuan","stream":true,"messages":[]}`
	fwd, set := limitExchange(t, h, "/v1/chat/completions", body)
	assert.Equal(t, `{"model":"Hunyuan","stream":true,"messages":[],"stream_options":{"include_usage":true},"max_completion_tokens":1000}`, string(fwd))
	assert.Equal(t, "1000", set["x-spendguard-max-tokens"])
}

// TestOutputLimitWithDowngrade: past the soft cap the model is rewritten
// and the limit added, two edits in one copy, both announced.
func TestOutputLimitWithDowngrade(t *testing.T) {
	h := newHarness(t, strings.Replace(limitConfig, "soft_usd: 100", "soft_usd: 0", 1))
	body := `{"model":"Hunyuan","user":"u",  "messages":[{"role":"user","content":"Hi"}]}`
	fwd, set := limitExchange(t, h, "/v1/chat/completions", body)
	assert.Equal(t, `{"model":"Small","user":"u",  "messages":[{"role":"user","content":"Hi"}],"max_completion_tokens":1000}`, string(fwd))
	assert.Equal(t, "Hunyuan", set["x-spendguard-downgraded-from"])
	assert.Equal(t, "1000", set["x-spendguard-max-tokens"])

	stated := `{"model":"Hunyuan","max_tokens":9,"messages":[]}`
	fwd, set = limitExchange(t, h, "/v1/chat/completions", stated)
	assert.Equal(t, `{"model":"Small","max_tokens":9,"messages":[]}`, string(fwd), "only the model changes")
	assert.NotContains(t, set, "x-spendguard-max-tokens")
}

// TestOutputLimitGenerate: /inference/v1/generate states its limit in
// sampling_params.max_tokens, which spendguard adds there (sampling_params
// absent, null, empty, or with other members), every other byte kept.
func TestOutputLimitGenerate(t *testing.T) {
	const ids = `"token_ids":[1,2,3]`
	for _, tc := range []struct{ body, want string }{
		{`{"model":"Hunyuan",` + ids + `}`, `{"model":"Hunyuan",` + ids + `,"sampling_params":{"max_tokens":1000}}`},
		{`{"model":"Hunyuan",` + ids + `,"sampling_params":null}`, `{"model":"Hunyuan",` + ids + `,"sampling_params":{"max_tokens":1000}}`},
		{`{"model":"Hunyuan","sampling_params":{ },` + ids + `}`, `{"model":"Hunyuan","sampling_params":{ "max_tokens":1000},` + ids + `}`},
		{`{"model":"Hunyuan","sampling_params":{"n":2,"max_tokens":null} ,` + ids + `}`, `{"model":"Hunyuan","sampling_params":{"n":2,"max_tokens":null,"max_tokens":1000} ,` + ids + `}`},
		{`{"model":"Hunyuan","sampling_params":{"max_tokens":5},` + ids + `}`, ""},
	} {
		h := newHarness(t, limitConfig)
		fwd, set := limitExchange(t, h, "/inference/v1/generate", tc.body)
		if tc.want == "" {
			assert.Nil(t, fwd, "%s: a stated limit is kept", tc.body)
			assert.NotContains(t, set, "x-spendguard-max-tokens")
			continue
		}
		assert.Equal(t, tc.want, string(fwd))
		assert.Equal(t, "1000", set["x-spendguard-max-tokens"], tc.body)
	}
}
