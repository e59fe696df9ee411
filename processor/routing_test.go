package processor_test

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"mime/multipart"
	"net/textproto"
	"testing"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// routingConfig is testConfig with an audio model, a free path and a path
// mapped to a kind.
const routingConfig = `
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
    - match: whisper
      input: 0.60
      output: 0.80
      per_second: 0.0001
  default_max_output_tokens: 1000
  free_paths: [/sleep, /admin/*]
  paths: {/my/chat: chat}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1
limits:
  max_request_usd: 0.5
`

func TestUnknownPostIsRefused(t *testing.T) {
	h := newHarness(t, routingConfig)
	for _, path := range []string{"/v1/chat/completions/", "/v1/unknown?x=1", "/sleep/now"} {
		s, cancel := h.open()
		ir := h.roundTrip(s, reqHeaders(path, "x-tenant-id", "acme")).GetImmediateResponse()
		cancel()
		require.NotNil(t, ir, path)
		assert.EqualValues(t, 403, ir.GetStatus().GetCode())
		var body struct {
			Error struct{ Message, Type, Code string }
		}
		require.NoError(t, json.Unmarshal(ir.GetBody(), &body))
		assert.Equal(t, "unpriced_path", body.Error.Code)
		assert.Contains(t, body.Error.Message, "pricing.free_paths")
		assert.Contains(t, body.Error.Message, "pricing.paths")
		assert.NotContains(t, body.Error.Message, "x=1", "the query string is not echoed")
		rep := <-h.reports
		assert.Equal(t, spendguardv1.Decision_DECISION_REJECTED, rep.GetDecision())
		assert.Empty(t, rep.GetEndpoint())
		assert.Contains(t, rep.GetRejectReason(), "is not metered")
	}
	assert.Equal(t, budget.Counter{}, h.spend("acme"))
}

func TestConfiguredFreePathPasses(t *testing.T) {
	h := newHarness(t, routingConfig)
	for _, path := range []string{"/sleep", "/admin/reset", "/v1/models", "/tokenize"} {
		s, cancel := h.open()
		resp := h.roundTrip(s, reqHeaders(path))
		cancel()
		require.Nil(t, resp.GetImmediateResponse(), path)
		require.NotNil(t, resp.GetRequestHeaders(), path)
		assert.Equal(t, extprocfilterv3.ProcessingMode_NONE, resp.GetModeOverride().GetRequestBodyMode(), path)
	}
}

func TestConfiguredPathIsCharged(t *testing.T) {
	h := newHarness(t, routingConfig)
	s, cancel := h.open()
	h.roundTrip(s, reqHeaders("/my/chat", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("200"))
	h.roundTrip(s, respBody([]byte(`{"usage":{"prompt_tokens":10,"completion_tokens":100}}`), true))
	cancel()
	rep := <-h.reports
	assert.Equal(t, "/v1/chat/completions", rep.GetEndpoint())
	// 10 × 0.60/M + 100 × 0.80/M
	assert.Equal(t, money.Nano(6_000+80_000), h.spend("acme").Committed)
}

// exhaust spends tenant acme's whole dollar.
func exhaust(h *harness) {
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("200"))
	h.roundTrip(s, respBody([]byte(`{"usage":{"prompt_tokens":0,"completion_tokens":1250000}}`), true))
	<-h.reports
}

func TestMessagesRefusalsInAnthropicShape(t *testing.T) {
	h := newHarness(t, routingConfig)
	type anthropicError struct {
		Type  string
		Error struct{ Type, Message string }
	}
	decode := func(ir *extprocv3.ImmediateResponse) anthropicError {
		var e anthropicError
		require.NoError(t, json.Unmarshal(ir.GetBody(), &e), "%s", ir.GetBody())
		var raw map[string]json.RawMessage
		require.NoError(t, json.Unmarshal(ir.GetBody(), &raw))
		assert.Len(t, raw, 2, "only type and error: %s", ir.GetBody())
		return e
	}

	s, cancel := h.open()
	h.roundTrip(s, reqHeaders("/v1/messages", "x-tenant-id", "acme"))
	ir := h.roundTrip(s, reqBody(`{"model":"Hunyuan","messages":[{"role":"user","content":"hi"}]}`)).GetImmediateResponse()
	cancel()
	require.NotNil(t, ir)
	assert.EqualValues(t, 400, ir.GetStatus().GetCode())
	e := decode(ir)
	assert.Equal(t, "error", e.Type)
	assert.Equal(t, "invalid_request_error", e.Error.Type)
	assert.Contains(t, e.Error.Message, "max_tokens: missing")
	<-h.reports

	s, cancel = h.open()
	ir = h.roundTrip(s, reqHeaders("/v1/messages")).GetImmediateResponse()
	cancel()
	require.NotNil(t, ir)
	assert.EqualValues(t, 401, ir.GetStatus().GetCode())
	assert.Equal(t, "authentication_error", decode(ir).Error.Type)
	<-h.reports

	exhaust(h)
	s, cancel = h.open()
	defer cancel()
	ir = h.roundTrip(s, reqHeaders("/v1/messages", "x-tenant-id", "acme")).GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, 402, ir.GetStatus().GetCode())
	e = decode(ir)
	assert.Equal(t, "billing_error", e.Error.Type)
	assert.Contains(t, e.Error.Message, "budget tenant-daily exhausted for tenant=acme")
	got := setHeaders(ir)
	assert.Equal(t, "application/json", got["content-type"])
	assert.Equal(t, "tenant-daily", got["x-spendguard-budget"])
	assert.NotEmpty(t, got["retry-after"])

	// The same refusal on an OpenAI path keeps OpenAI's shape.
	s2, cancel2 := h.open()
	defer cancel2()
	ir = h.roundTrip(s2, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")).GetImmediateResponse()
	require.NotNil(t, ir)
	assert.Contains(t, string(ir.GetBody()), `{"error":{"message":"budget tenant-daily exhausted`)
}

func TestMessagesIsCharged(t *testing.T) {
	h := newHarness(t, routingConfig)
	s, cancel := h.open()
	h.roundTrip(s, reqHeaders("/v1/messages", "x-tenant-id", "acme"))
	resp := h.roundTrip(s, reqBody(`{"model":"Hunyuan","max_tokens":200,"system":"Be brief.","messages":[{"role":"user","content":"hi"}]}`))
	require.Nil(t, resp.GetImmediateResponse())
	// Prompt ≤ 9 + 2 + len("user") quoted + 4×2 messages + 8 tokens at
	// 600 nano-USD; output 200 at 800.
	assert.Equal(t, money.Nano((9+2+6+8+8)*600+200*800), h.spend("acme").Reserved)
	h.roundTrip(s, respHeaders("500"))
	cancel()
	<-h.reports
}

func TestInvocationsChargedAsTheRoutedKind(t *testing.T) {
	h := newHarness(t, routingConfig)
	s, cancel := h.open()
	h.roundTrip(s, reqHeaders("/invocations", "x-tenant-id", "acme"))
	// An embeddings body: no output reserved.
	resp := h.roundTrip(s, reqBody(`{"model":"Hunyuan","input":"abcdefgh"}`))
	require.Nil(t, resp.GetImmediateResponse())
	assert.Equal(t, money.Nano((8+8)*600), h.spend("acme").Reserved)
	h.roundTrip(s, respHeaders("200"))
	h.roundTrip(s, respBody([]byte(`{"object":"list","data":[],"usage":{"prompt_tokens":3,"total_tokens":3,"completion_tokens":0,"prompt_tokens_details":null}}`), true))
	cancel()
	rep := <-h.reports
	assert.Equal(t, "/v1/embeddings", rep.GetEndpoint())
	assert.EqualValues(t, 3, rep.GetPromptTokens())

	s, cancel = h.open()
	h.roundTrip(s, reqHeaders("/invocations", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("200"))
	h.roundTrip(s, respBody([]byte(`{"usage":{"prompt_tokens":10,"completion_tokens":20}}`), true))
	cancel()
	rep = <-h.reports
	assert.Equal(t, "/v1/chat/completions", rep.GetEndpoint())
	assert.Equal(t, money.Nano(3*600+10*600+20*800), h.spend("acme").Committed)

	s, cancel = h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/invocations", "x-tenant-id", "acme"))
	ir := h.roundTrip(s, reqBody(`{"model":"Hunyuan","nothing":1}`)).GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, 400, ir.GetStatus().GetCode())
	assert.Contains(t, string(ir.GetBody()), "no endpoint takes this body")
}

// testWAV is a mono 16-bit PCM WAV of the given whole and hundredths of
// seconds at 8 kHz.
func testWAV(hundredths int) []byte {
	data := make([]byte, 8000*2*hundredths/100)
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(36 + len(data)))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(1))
	le(uint32(8000))
	le(uint32(16000))
	le(uint16(2))
	le(uint16(16))
	b.WriteString("data")
	le(uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

func TestAudioReservedFromWAVLength(t *testing.T) {
	h := newHarness(t, routingConfig)
	var body bytes.Buffer
	w := multipart.NewWriter(&body)
	require.NoError(t, w.WriteField("model", "whisper"))
	require.NoError(t, w.WriteField("response_format", "json"))
	hdr := textproto.MIMEHeader{}
	hdr.Set("Content-Disposition", `form-data; name="file"; filename="a.wav"`)
	part, err := w.CreatePart(hdr)
	require.NoError(t, err)
	_, _ = part.Write(testWAV(1225)) // 12.25 s: 13 seconds
	require.NoError(t, w.Close())

	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/audio/transcriptions", "x-tenant-id", "acme", "content-type", w.FormDataContentType()))
	resp := h.roundTrip(s, reqBody(body.String()))
	require.Nil(t, resp.GetImmediateResponse(), "%v", resp)
	// Prompt 8 + 50×13 = 658 tokens at 600 nano-USD, output 1000 at 800,
	// 13 s at 100,000.
	assert.Equal(t, money.Nano(658*600+1000*800+13*100_000), h.spend("acme").Reserved)
	h.roundTrip(s, respHeaders("500"))
	cancel()
	<-h.reports
	h.eventually(func() bool { return h.spend("acme") == budget.Counter{} })

	s, cancel = h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/audio/translations", "x-tenant-id", "acme", "content-type", "application/json"))
	ir := h.roundTrip(s, reqBody(`{"model":"whisper"}`)).GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, 400, ir.GetStatus().GetCode())
	assert.Contains(t, string(ir.GetBody()), "multipart/form-data")
}

// TestUpgradeIsRefusedUnlessFreed: a WebSocket (vLLM's /v1/realtime
// transcribes audio over one) is a GET whose traffic spendguard cannot
// meter; it is refused before the upstream unless the operator freed its
// path, whatever the path and however the upgrade is asked.
func TestUpgradeIsRefusedUnlessFreed(t *testing.T) {
	h := newHarness(t, routingConfig)
	refused := []*extprocv3.ProcessingRequest{
		reqHeadersMethod("GET", "/v1/realtime", "upgrade", "websocket", "connection", "Upgrade"),
		reqHeadersMethod("GET", "/v1/realtime?model=whisper", "upgrade", "WebSocket"),
		reqHeadersMethod("GET", "/v1/chat/completions", "upgrade", "websocket"),
		reqHeadersMethod("CONNECT", "/v1/realtime", ":protocol", "websocket"),
		reqHeadersMethod("POST", "/v1/chat/completions", "upgrade", "h2c", "x-tenant-id", "acme"),
	}
	for i, req := range refused {
		s, cancel := h.open()
		ir := h.roundTrip(s, req).GetImmediateResponse()
		cancel()
		require.NotNil(t, ir, "case %d", i)
		assert.EqualValues(t, 403, ir.GetStatus().GetCode(), "case %d", i)
		var body struct {
			Error struct{ Message, Code string }
		}
		require.NoError(t, json.Unmarshal(ir.GetBody(), &body))
		assert.Equal(t, "unmetered_upgrade", body.Error.Code, "case %d", i)
		assert.Contains(t, body.Error.Message, "pricing.free_paths", "case %d", i)
		<-h.reports
	}
	// A freed path (routingConfig frees /admin/*) passes untouched.
	s, cancel := h.open()
	resp := h.roundTrip(s, reqHeadersMethod("GET", "/admin/ws", "upgrade", "websocket"))
	cancel()
	require.Nil(t, resp.GetImmediateResponse())
	assert.Equal(t, extprocfilterv3.ProcessingMode_NONE, resp.GetModeOverride().GetRequestBodyMode())
	// A plain GET stays free.
	s, cancel = h.open()
	resp = h.roundTrip(s, reqHeadersMethod("GET", "/v1/models"))
	cancel()
	require.Nil(t, resp.GetImmediateResponse())
}

func reqHeadersMethod(method, path string, kv ...string) *extprocv3.ProcessingRequest {
	req := reqHeaders(path, kv...)
	for _, h := range req.GetRequestHeaders().GetHeaders().GetHeaders() {
		if h.GetKey() == ":method" {
			h.RawValue = []byte(method)
		}
	}
	return req
}
