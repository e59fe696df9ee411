package processor_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/spendguard/spendguard/test/fixtures"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/processor"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

const testConfig = `
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
  default_max_output_tokens: 1000
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1
limits:
  max_request_usd: 0.5
`

// harness is a real gRPC server running the processor, a client connection
// to it, and the budget engine behind it.
type harness struct {
	t       *testing.T
	cfg     *config.Compiled
	engine  *budget.Engine
	client  extprocv3.ExternalProcessorClient
	reports chan *spendguardv1.CostReport
	srv     *processor.Server
}

type chanReporter chan *spendguardv1.CostReport

func (c chanReporter) Report(ev *sink.Event) { c <- ev.Report }

func newHarness(t *testing.T, yaml string) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	require.NoError(t, err)
	return serveHarness(t, cfg, cfg.Snapshot, memstore.New())
}

// serveHarness runs the processor with snap on store behind a real gRPC
// server and connects a client to it; with, when given, adjusts the
// processor's options.
func serveHarness(t *testing.T, cfg *config.Compiled, snap *processor.Snapshot, store budget.Store, with ...func(*processor.Options)) *harness {
	t.Helper()
	h := &harness{t: t, cfg: cfg, reports: make(chan *spendguardv1.CostReport, 100)}
	h.engine = budget.NewEngine(store, time.Now)
	opts := processor.Options{Budgets: h.engine, Reporter: chanReporter(h.reports)}
	for _, f := range with {
		f(&opts)
	}
	h.srv = processor.New(snap, opts)
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	gs := grpc.NewServer(grpc.ForceServerCodecV2(processor.Codec())) // as spendguard serve runs it
	extprocv3.RegisterExternalProcessorServer(gs, h.srv)
	go func() { _ = gs.Serve(lis) }()
	t.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	h.client = extprocv3.NewExternalProcessorClient(conn)
	return h
}

func (h *harness) open() (extprocv3.ExternalProcessor_ProcessClient, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	s, err := h.client.Process(ctx)
	require.NoError(h.t, err)
	return s, cancel
}

func hdrs(kv ...string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{}
	for i := 0; i+1 < len(kv); i += 2 {
		m.Headers = append(m.Headers, &corev3.HeaderValue{Key: kv[i], RawValue: []byte(kv[i+1])})
	}
	return m
}

func (h *harness) roundTrip(s extprocv3.ExternalProcessor_ProcessClient, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	h.t.Helper()
	require.NoError(h.t, s.Send(req))
	resp, err := s.Recv()
	require.NoError(h.t, err)
	return resp
}

func reqHeaders(path string, kv ...string) *extprocv3.ProcessingRequest {
	all := append([]string{":method", "POST", ":path", path, ":authority", "vllm", ":scheme", "http", "x-request-id", "rid-1"}, kv...)
	return &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{Headers: hdrs(all...)}},
	}
}

func reqBody(body string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{
		RequestBody: &extprocv3.HttpBody{Body: []byte(body), EndOfStream: true}}}
}

func respHeaders(status string) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", status, "content-type", "application/json")}}}
}

func respBody(chunk []byte, eos bool) *extprocv3.ProcessingRequest {
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{
		ResponseBody: &extprocv3.HttpBody{Body: chunk, EndOfStream: eos}}}
}

// spend returns committed and reserved of tenant's budget.
func (h *harness) spend(tenant string) budget.Counter {
	h.t.Helper()
	scopes := h.cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": tenant, "model": "Hunyuan"})
	require.Len(h.t, scopes, 1)
	st, err := h.engine.Status(context.Background(), scopes)
	require.NoError(h.t, err)
	return st[0].Counter
}

// eventually waits for the processor to settle a stream that the client
// has closed (the server sees the close asynchronously).
func (h *harness) eventually(cond func() bool) {
	h.t.Helper()
	require.Eventually(h.t, cond, 5*time.Second, 5*time.Millisecond)
}

func fixture(t *testing.T, name string) []byte {
	t.Helper()
	return fixtures.Read(t, name)
}

const chatBody = `{"model":"Hunyuan","max_tokens":100,"messages":[{"role":"user","content":"Write a short introduction to LLMs"}]}`

func TestFreePathGetsModeOverrideNone(t *testing.T) {
	h := newHarness(t, testConfig)
	s, cancel := h.open()
	defer cancel()
	resp := h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":method", "GET", ":path", "/v1/models"), EndOfStream: true}}})
	require.NotNil(t, resp.GetRequestHeaders())
	mo := resp.GetModeOverride()
	require.NotNil(t, mo)
	assert.Equal(t, extprocfilterv3.ProcessingMode_NONE, mo.GetRequestBodyMode())
	assert.Equal(t, extprocfilterv3.ProcessingMode_NONE, mo.GetResponseBodyMode())
}

func TestChargesExactUsageAndReleasesReservation(t *testing.T) {
	h := newHarness(t, testConfig)
	s, cancel := h.open()
	defer cancel()
	body := fixture(t, "vllm-chat.json") // prompt 12, completion 100

	resp := h.roundTrip(s, reqHeaders("/v1/chat/completions?x=1", "x-tenant-id", "acme"))
	require.NotNil(t, resp.GetRequestHeaders(), "%v", resp)
	resp = h.roundTrip(s, reqBody(chatBody))
	require.NotNil(t, resp.GetRequestBody(), "%v", resp)
	assert.Positive(t, h.spend("acme").Reserved)

	resp = h.roundTrip(s, respHeaders("200"))
	set := map[string]string{}
	for _, o := range resp.GetResponseHeaders().GetResponse().GetHeaderMutation().GetSetHeaders() {
		set[o.GetHeader().GetKey()] = string(o.GetHeader().GetRawValue())
	}
	assert.Equal(t, "tenant-daily", set["x-spendguard-budget"])
	assert.NotEmpty(t, set["x-spendguard-remaining-usd"])

	for i := 0; i < len(body); i += 7 {
		end := min(i+7, len(body))
		resp = h.roundTrip(s, respBody(body[i:end], end == len(body)))
		require.NotNil(t, resp.GetResponseBody())
		assert.Nil(t, resp.GetResponseBody().GetResponse().GetBodyMutation(), "chunks pass unchanged")
	}
	want := money.Nano(12*600 + 100*800) // nano-USD: tokens × USD/M × 1e9 / 1e6
	c := h.spend("acme")
	assert.Equal(t, want, c.Committed)
	assert.Zero(t, c.Reserved)

	rep := <-h.reports
	assert.Equal(t, int64(want), rep.GetCostNanoUsd())
	assert.Equal(t, int64(12), rep.GetPromptTokens())
	assert.Equal(t, int64(100), rep.GetCompletionTokens())
	assert.False(t, rep.GetEstimated())
	assert.Equal(t, "rid-1", rep.GetRequestId())
	assert.Equal(t, map[string]string{"tenant": "acme"}, rep.GetScope())
}

func TestRejectsInvalidRequestsWithoutCharging(t *testing.T) {
	cases := []struct {
		name, body, code string
	}{
		{"invalid json", `{"model":`, "invalid_json"},
		{"not an object", `[1]`, "invalid_json"},
		{"unknown model without default", `{"model":"gpt-9","messages":[]}`, "model_not_found"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, testConfig)
			s, cancel := h.open()
			defer cancel()
			h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
			resp := h.roundTrip(s, reqBody(tc.body))
			ir := resp.GetImmediateResponse()
			require.NotNil(t, ir)
			assert.EqualValues(t, 400, ir.GetStatus().GetCode())
			assert.Contains(t, string(ir.GetBody()), `"type":"invalid_request_error","param":null,"code":"`+tc.code+`"`)
			assert.Equal(t, budget.Counter{}, h.spend("acme"))
		})
	}
}

func TestMissingIdentityIs401(t *testing.T) {
	h := newHarness(t, testConfig)
	s, cancel := h.open()
	defer cancel()
	ir := h.roundTrip(s, reqHeaders("/v1/chat/completions")).GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, 401, ir.GetStatus().GetCode())
	assert.Contains(t, string(ir.GetBody()), `"type":"unauthorized"`)
}

func TestMaxRequestUSD(t *testing.T) {
	h := newHarness(t, testConfig)
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	// 1,000,000 output tokens at 0.80/M = 0.80 USD > 0.5
	ir := h.roundTrip(s, reqBody(`{"model":"Hunyuan","max_tokens":1000000,"messages":[]}`)).GetImmediateResponse()
	require.NotNil(t, ir)
	assert.EqualValues(t, 402, ir.GetStatus().GetCode())
	assert.Contains(t, string(ir.GetBody()), "limits.max_request_usd 0.50 USD")
	assert.Equal(t, budget.Counter{}, h.spend("acme"))
}

func TestUpstreamErrorReleasesReservation(t *testing.T) {
	h := newHarness(t, testConfig)
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("500"))
	h.roundTrip(s, respBody(fixture(t, "vllm-error-400.json"), true))
	assert.Equal(t, budget.Counter{}, h.spend("acme"))
}

func TestAbortBeforeUpstreamAnswerChargesNothing(t *testing.T) {
	h := newHarness(t, testConfig)
	s, cancel := h.open()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	require.Positive(t, h.spend("acme").Reserved)
	require.NoError(t, s.CloseSend()) // Envoy: half-close, then reset
	cancel()
	h.eventually(func() bool { return h.spend("acme") == budget.Counter{} })
}

func TestAbortMidResponseChargesEstimate(t *testing.T) {
	h := newHarness(t, testConfig)
	s, cancel := h.open()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("200"))
	body := fixture(t, "vllm-chat.json")
	h.roundTrip(s, respBody(body[:200], false))
	require.NoError(t, s.CloseSend())
	cancel()
	h.eventually(func() bool { c := h.spend("acme"); return c.Reserved == 0 && c.Committed > 0 })
	rep := <-h.reports
	assert.True(t, rep.GetEstimated())
	assert.True(t, rep.GetAborted())
	assert.Equal(t, int64(h.spend("acme").Committed), rep.GetCostNanoUsd())
}

func TestExhaustedBudgetRejectsAtRequestHeaders(t *testing.T) {
	h := newHarness(t, testConfig)
	// Spend the whole dollar: 1,250,000 output tokens at 0.80/M = 1.00 USD,
	// reported by the upstream (the reservation was smaller).
	s, cancel := h.open()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("200"))
	h.roundTrip(s, respBody([]byte(`{"usage":{"prompt_tokens":0,"completion_tokens":1250000}}`), true))
	cancel()
	require.Equal(t, money.PerUSD, h.spend("acme").Committed)

	s, cancel = h.open()
	defer cancel()
	ir := h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme")).GetImmediateResponse()
	require.NotNil(t, ir, "rejected from the headers answer, before the body")
	assert.EqualValues(t, 402, ir.GetStatus().GetCode())
	got := map[string]string{}
	for _, o := range ir.GetHeaders().GetSetHeaders() {
		got[o.GetHeader().GetKey()] = string(o.GetHeader().GetRawValue())
	}
	assert.Equal(t, "application/json", got["content-type"])
	assert.Equal(t, "tenant-daily", got["x-spendguard-budget"])
	assert.Equal(t, "tenant=acme", got["x-spendguard-scope"])
	assert.NotEmpty(t, got["retry-after"])
	assert.Regexp(t, `^\{"error":\{"message":"budget tenant-daily exhausted for tenant=acme: spent 1\.00 of 1\.00 USD today; resets \d{4}-\d\d-\d\dT00:00:00Z","type":"budget_exceeded","param":null,"code":"budget_exceeded"\}\}$`, string(ir.GetBody()))
}

func TestStreamDeadlineSettlesReservation(t *testing.T) {
	h := newHarness(t, testConfig)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	s, err := h.client.Process(ctx)
	require.NoError(t, err)
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(chatBody))
	h.roundTrip(s, respHeaders("200"))
	require.Positive(t, h.spend("acme").Reserved)
	// No more messages: the gRPC deadline ends the stream mid-response.
	h.eventually(func() bool { c := h.spend("acme"); return c.Reserved == 0 && c.Committed > 0 })
	rep := <-h.reports
	assert.True(t, rep.GetAborted())
	assert.True(t, rep.GetEstimated())
}
