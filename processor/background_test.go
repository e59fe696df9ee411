package processor_test

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/processor"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/redistest"
)

const (
	bgRequest = `{"model":"Hunyuan","input":"Write a short introduction to LLMs","max_output_tokens":100,"background":true}`
	bgQueued  = `{"id":"resp_1","created_at":1765000000,"object":"response","model":"Hunyuan","output":[],"status":"queued","usage":null}`
	bgRunning = `{"id":"resp_1","created_at":1765000000,"object":"response","model":"Hunyuan","output":[],"status":"in_progress","usage":null}`
	bgDone    = `{"id":"resp_1","created_at":1765000000,"object":"response","model":"Hunyuan","output":[{"id":"msg_1","type":"message","status":"completed","content":[{"type":"output_text","text":"LLMs are..."}]}],"status":"completed","usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":100,"output_tokens_details":{"reasoning_tokens":0,"tool_output_tokens":0},"total_tokens":112}}`
	// bgExact is bgDone's cost: 12 prompt tokens at 0.60/M, 100 at 0.80/M.
	bgExact = money.Nano(12*600 + 100*800)
)

// parkingHarness runs the processor with store as its budget store and
// parking.
func parkingHarness(t *testing.T, yaml string, store interface {
	budget.Store
	processor.Parking
}, with ...func(*processor.Options)) *harness {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	require.NoError(t, err)
	with = append([]func(*processor.Options){func(o *processor.Options) { o.Parking = store }}, with...)
	return serveHarness(t, cfg, cfg.Snapshot, store, with...)
}

// postBackground sends a background POST that vLLM answers with body,
// status 200.
func (h *harness) postBackground(body string) {
	h.t.Helper()
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/responses", "x-tenant-id", "acme"))
	require.NotNil(h.t, h.roundTrip(s, reqBody(bgRequest)).GetRequestBody())
	h.roundTrip(s, respHeaders("200"))
	h.sendBody(s, []byte(body), 5)
	require.NoError(h.t, s.CloseSend())
}

// lookup sends method path through the processor and answers it with
// status and body (JSON), in chunks of n bytes.
func (h *harness) lookup(method, path, status, body string, n int) {
	h.t.Helper()
	s, cancel := h.open()
	defer cancel()
	resp := h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":method", method, ":path", path, "x-request-id", "rid-get"), EndOfStream: true}}})
	require.NotNil(h.t, resp.GetRequestHeaders())
	assert.Nil(h.t, resp.GetModeOverride(), "the answer is watched: Envoy must send it")
	h.roundTrip(s, respHeaders(status))
	h.sendBody(s, []byte(body), n)
	require.NoError(h.t, s.CloseSend())
}

func (h *harness) sendBody(s extprocv3.ExternalProcessor_ProcessClient, body []byte, n int) {
	h.t.Helper()
	for i := 0; i < len(body); i += n {
		end := min(i+n, len(body))
		resp := h.roundTrip(s, respBody(body[i:end], end == len(body)))
		require.NotNil(h.t, resp.GetResponseBody())
		assert.Nil(h.t, resp.GetResponseBody().GetResponse().GetBodyMutation(), "chunks pass unchanged")
	}
}

func (h *harness) noReport() {
	h.t.Helper()
	select {
	case rep := <-h.reports:
		h.t.Fatalf("unexpected report: %v", rep)
	case <-time.After(50 * time.Millisecond):
	}
}

func (h *harness) report() *spendguardv1.CostReport {
	h.t.Helper()
	select {
	case rep := <-h.reports:
		return rep
	case <-time.After(5 * time.Second):
		h.t.Fatal("no report")
	}
	return nil
}

func TestBackgroundResponseSettledByLaterGet(t *testing.T) {
	h := parkingHarness(t, testConfig, memstore.New())
	h.postBackground(bgQueued)
	worst := h.spend("acme").Reserved
	require.Positive(t, worst, "the reservation stays open while vLLM works")
	assert.Zero(t, h.spend("acme").Committed)
	h.noReport()

	h.lookup("GET", "/v1/responses/resp_1", "200", bgRunning, 7)
	assert.Equal(t, budget.Counter{Reserved: worst}, h.spend("acme"), "in_progress: still parked")
	h.noReport()

	for _, n := range []int{1, 13} { // the completed answer, split anywhere
		if n == 13 {
			h.lookup("GET", "/v1/responses/resp_1?stream=false", "200", bgDone, n)
			break
		}
		h.lookup("GET", "/v1/responses/other", "200", bgDone, n) // another id: not this one
		assert.Equal(t, budget.Counter{Reserved: worst}, h.spend("acme"))
	}
	assert.Equal(t, budget.Counter{Committed: bgExact}, h.spend("acme"), "exact, and the reservation is gone")
	rep := h.report()
	assert.Equal(t, "rid-1", rep.GetRequestId(), "reported as the POST")
	assert.Equal(t, "/v1/responses", rep.GetEndpoint())
	assert.Equal(t, int64(bgExact), rep.GetCostNanoUsd())
	assert.Equal(t, int64(12), rep.GetPromptTokens())
	assert.Equal(t, int64(100), rep.GetCompletionTokens())
	assert.False(t, rep.GetEstimated())
	assert.Equal(t, spendguardv1.UsageSource_USAGE_SOURCE_REPORTED, rep.GetUsageSource(), "the later answer's usage")
	assert.Equal(t, spendguardv1.Decision_DECISION_ALLOWED, rep.GetDecision())
	assert.Equal(t, map[string]string{"tenant": "acme"}, rep.GetScope())
	assert.Equal(t, "Hunyuan", rep.GetResponseModel())

	h.lookup("GET", "/v1/responses/resp_1", "200", bgDone, 50)
	assert.Equal(t, budget.Counter{Committed: bgExact}, h.spend("acme"), "a second GET charges nothing more")
	h.noReport()
}

func TestBackgroundResponseSettledOnAnotherReplica(t *testing.T) {
	c, prefix := redistest.Shared(t)
	newStore := func() *redisstore.Store {
		return redisstore.New(c, redisstore.Options{KeyPrefix: prefix, Timeout: 5 * time.Second})
	}
	a := parkingHarness(t, testConfig, newStore())
	b := parkingHarness(t, testConfig, newStore())
	a.postBackground(bgQueued)
	require.Positive(t, b.spend("acme").Reserved, "the other replica sees the held reservation")

	b.lookup("GET", "/v1/responses/resp_1", "200", bgDone, 9)
	assert.Equal(t, budget.Counter{Committed: bgExact}, a.spend("acme"))
	assert.Equal(t, int64(bgExact), b.report().GetCostNanoUsd(), "the replica that saw the result reports it")
	a.noReport()

	a.lookup("GET", "/v1/responses/resp_1", "200", bgDone, 9)
	assert.Equal(t, budget.Counter{Committed: bgExact}, a.spend("acme"), "settled once")
	n, err := a.srv.SweepParked(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestBackgroundResponseChargedAtTTL(t *testing.T) {
	var skew atomic.Int64
	clock := func(o *processor.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	}
	h := parkingHarness(t, testConfig+"  background_ttl: 30s\n", memstore.New(), clock)
	h.postBackground(bgQueued)
	worst := h.spend("acme").Reserved
	require.Positive(t, worst)

	n, err := h.srv.SweepParked(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n, "not due yet")
	skew.Store(int64(31 * time.Second))
	n, err = h.srv.SweepParked(context.Background())
	require.NoError(t, err)
	assert.Equal(t, 1, n)
	assert.Equal(t, budget.Counter{Committed: worst}, h.spend("acme"), "the whole reservation is charged")
	rep := h.report()
	assert.True(t, rep.GetEstimated())
	assert.Equal(t, int64(worst), rep.GetCostNanoUsd())
	assert.Equal(t, "rid-1", rep.GetRequestId())

	h.lookup("GET", "/v1/responses/resp_1", "200", bgDone, 64)
	assert.Equal(t, budget.Counter{Committed: worst}, h.spend("acme"), "a result after the TTL changes nothing")
	n, err = h.srv.SweepParked(context.Background())
	require.NoError(t, err)
	assert.Zero(t, n)
}

func TestBackgroundReservationOutlivesParking(t *testing.T) {
	h := parkingHarness(t, testConfig+"  reservation_ttl: 1s\n  background_ttl: 1h\n", memstore.New())
	h.postBackground(bgQueued)
	st, err := h.engine.Status(context.Background(), h.cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": "acme", "model": "Hunyuan"}))
	require.NoError(t, err)
	worst := st[0].Counter.Reserved
	require.Positive(t, worst)
	time.Sleep(1100 * time.Millisecond) // past reservation_ttl alone
	assert.Equal(t, worst, h.spend("acme").Reserved, "the claim was made with background_ttl + reservation_ttl")
}

func TestBackgroundCancelFailedAndErrors(t *testing.T) {
	cancelled := `{"id":"resp_1","object":"response","model":"Hunyuan","output":[],"status":"cancelled","usage":null}`
	failed := `{"id":"resp_1","object":"response","model":"Hunyuan","output":[],"status":"failed","usage":null}`
	t.Run("cancel charges the typical prompt", func(t *testing.T) {
		h := parkingHarness(t, testConfig, memstore.New())
		h.postBackground(bgQueued)
		h.lookup("POST", "/v1/responses/resp_1/cancel", "200", cancelled, 10)
		c := h.spend("acme")
		assert.Zero(t, c.Reserved)
		// "Write a short introduction to LLMs" and the message overhead, /4.
		assert.Positive(t, c.Committed)
		rep := h.report()
		assert.True(t, rep.GetEstimated())
		assert.True(t, rep.GetAborted())
		assert.Zero(t, rep.GetCompletionTokens())
		assert.Equal(t, int64(c.Committed), rep.GetCostNanoUsd())
	})
	t.Run("failed is released", func(t *testing.T) {
		h := parkingHarness(t, testConfig, memstore.New())
		h.postBackground(bgQueued)
		h.lookup("GET", "/v1/responses/resp_1", "200", failed, 10)
		assert.Equal(t, budget.Counter{}, h.spend("acme"))
		assert.Zero(t, h.report().GetCostNanoUsd())
	})
	t.Run("an error answer or an unknown id settles nothing", func(t *testing.T) {
		h := parkingHarness(t, testConfig, memstore.New())
		h.postBackground(bgQueued)
		worst := h.spend("acme").Reserved
		h.lookup("GET", "/v1/responses/resp_1", "404", `{"error":{"message":"Response with id 'resp_1' not found.","type":"invalid_request_error","param":"response_id","code":404}}`, 10)
		h.lookup("GET", "/v1/responses/resp_2", "200", bgDone, 10)
		h.lookup("GET", "/v1/responses/resp_1", "200", `{"id":"resp_1","status":"completed","usage":{"input_tokens":1`, 10)
		assert.Equal(t, budget.Counter{Reserved: worst}, h.spend("acme"))
		h.noReport()
	})
}

func TestBackgroundStreamedGetSettles(t *testing.T) {
	h := parkingHarness(t, testConfig, memstore.New())
	h.postBackground(bgQueued)
	sse := "event: response.created\ndata: {\"type\":\"response.created\",\"sequence_number\":0,\"response\":{\"id\":\"resp_1\",\"model\":\"Hunyuan\",\"status\":\"queued\",\"usage\":null}}\n\n" +
		"event: response.output_text.delta\ndata: {\"type\":\"response.output_text.delta\",\"sequence_number\":1,\"delta\":\"LLMs\"}\n\n" +
		"event: response.completed\ndata: {\"type\":\"response.completed\",\"sequence_number\":2,\"response\":{\"id\":\"resp_1\",\"model\":\"Hunyuan\",\"status\":\"completed\",\"usage\":" +
		`{"input_tokens":12,"input_tokens_details":{"cached_tokens":0},"output_tokens":100,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":112}` + "}}\n\n"
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{
		RequestHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":method", "GET", ":path", "/v1/responses/resp_1?stream=true&starting_after=0"), EndOfStream: true}}})
	h.roundTrip(s, &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{
		ResponseHeaders: &extprocv3.HttpHeaders{Headers: hdrs(":status", "200", "content-type", "text/event-stream; charset=utf-8")}}})
	var got []byte
	for i := 0; i < len(sse); i += 11 {
		end := min(i+11, len(sse))
		resp := h.roundTrip(s, respBody([]byte(sse[i:end]), end == len(sse)))
		if m := resp.GetResponseBody().GetResponse().GetBodyMutation(); m != nil {
			got = append(got, m.GetBody()...)
		} else {
			got = append(got, sse[i:end]...)
		}
	}
	assert.Equal(t, sse, string(got), "the client's stream is what vLLM sent")
	assert.Equal(t, budget.Counter{Committed: bgExact}, h.spend("acme"))
}

func TestBackgroundWithoutParkingIsChargedAtOnce(t *testing.T) {
	h := newHarness(t, testConfig)
	h.postBackground(bgQueued)
	c := h.spend("acme")
	assert.Zero(t, c.Reserved)
	assert.Positive(t, c.Committed, "the queued answer has no usage: the worst case")
	assert.True(t, h.report().GetEstimated())
}

func TestForegroundResponsesAreNotParked(t *testing.T) {
	h := parkingHarness(t, testConfig, memstore.New())
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/responses", "x-tenant-id", "acme"))
	h.roundTrip(s, reqBody(`{"model":"Hunyuan","input":"hi","max_output_tokens":100,"background":false}`))
	h.roundTrip(s, respHeaders("200"))
	h.sendBody(s, []byte(bgDone), 10)
	assert.Equal(t, budget.Counter{Committed: bgExact}, h.spend("acme"))
	// A queued-looking answer to a request that did not ask for background.
	s2, cancel2 := h.open()
	defer cancel2()
	h.roundTrip(s2, reqHeaders("/v1/responses", "x-tenant-id", "acme"))
	h.roundTrip(s2, reqBody(`{"model":"Hunyuan","input":"hi","max_output_tokens":100}`))
	h.roundTrip(s2, respHeaders("200"))
	h.sendBody(s2, []byte(bgQueued), 10)
	assert.Zero(t, h.spend("acme").Reserved, "settled at once, not parked")
}

func TestBackgroundSweptOnceByRacingReplicas(t *testing.T) {
	c, prefix := redistest.Shared(t)
	var skew atomic.Int64
	clock := func(o *processor.Options) {
		o.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	}
	yaml := testConfig + "  background_ttl: 30s\n"
	var replicas []*harness
	for range 3 {
		replicas = append(replicas, parkingHarness(t, yaml, redisstore.New(c, redisstore.Options{KeyPrefix: prefix, Timeout: 5 * time.Second}), clock))
	}
	for i := range 5 {
		replicas[i%3].postBackground(strings.ReplaceAll(bgQueued, "resp_1", fmt.Sprint("resp_", i)))
	}
	worst := replicas[0].spend("acme").Reserved
	require.Positive(t, worst)
	skew.Store(int64(time.Minute))
	var total atomic.Int64
	done := make(chan struct{})
	for _, r := range replicas {
		go func() {
			defer func() { done <- struct{}{} }()
			n, err := r.srv.SweepParked(context.Background())
			assert.NoError(t, err)
			total.Add(int64(n))
		}()
	}
	for range replicas {
		<-done
	}
	assert.EqualValues(t, 5, total.Load(), "each parked response is charged by one replica")
	assert.Equal(t, budget.Counter{Committed: worst}, replicas[0].spend("acme"))
}

func TestBackgroundParkRefusedIsChargedAtOnce(t *testing.T) {
	h := parkingHarness(t, testConfig, memstore.New())
	h.postBackground(bgQueued)
	worst := h.spend("acme").Reserved
	h.postBackground(bgQueued) // the same response id: the store refuses to park it twice
	assert.Equal(t, budget.Counter{Committed: worst, Reserved: worst}, h.spend("acme"),
		"the second is charged its worst case at once; the first stays parked")
	assert.True(t, h.report().GetEstimated())
	h.lookup("GET", "/v1/responses/resp_1", "200", bgDone, 32)
	assert.Equal(t, budget.Counter{Committed: worst + bgExact}, h.spend("acme"))
}
