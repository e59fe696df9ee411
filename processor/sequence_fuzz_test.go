package processor_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"testing"
	"time"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/processor"
	"github.com/spendguard/spendguard/test/fixtures"
)

const fuzzConfig = `
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
    hard_usd: 1000
`

// Operations of FuzzStreamSequences, one byte each (the low three bits
// pick the message, the rest are its parameter p):
//
//	opCostHeaders   request headers on a cost path; p&1: end_of_stream,
//	                p>>1&15: protocol_config (fuzzModes)
//	opFreeHeaders   request headers on a free path; p&1: POST
//	                /v1/responses/{id}/cancel, whose answer is watched for
//	                a parked background response (none is parked here);
//	                p&2: protocol_config with a FULL_DUPLEX_STREAMED
//	                response body
//	opRequestBody   the request body; p&1: not JSON, p&2: "stream": true,
//	                p&4: no end_of_stream
//	opRespHeaders   response headers; p&7: :status (fuzzStatuses),
//	                p>>3&3: content-type (fuzzTypes)
//	opRespBody      the next n bytes of the response body, n the next
//	                input byte; p&1: end_of_stream
//	opReqTrailers   request trailers
//	opRespTrailers  response trailers
//	opEmpty         a message with no request set
//
// The first input byte picks the upstream body: even JSON, odd SSE (both
// carry usage).
const (
	opCostHeaders = iota
	opFreeHeaders
	opRequestBody
	opRespHeaders
	opRespBody
	opReqTrailers
	opRespTrailers
	opEmpty
)

var (
	fuzzStatuses = [8]string{"200", "", "abc", "500", "101", "404", "2000", "204"}
	fuzzTypes    = [4]string{"application/json", "text/event-stream", "", "text/plain"}
	fuzzModes    = [16]*extprocv3.ProtocolConfiguration{
		nil,
		{RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocfilterv3.ProcessingMode_STREAMED},
		{RequestBodyMode: extprocfilterv3.ProcessingMode_NONE, ResponseBodyMode: extprocfilterv3.ProcessingMode_STREAMED},
		{RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocfilterv3.ProcessingMode_NONE},
		{RequestBodyMode: extprocfilterv3.ProcessingMode_STREAMED, ResponseBodyMode: extprocfilterv3.ProcessingMode_STREAMED},
		{RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocfilterv3.ProcessingMode_BUFFERED},
		{RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL},
		{RequestBodyMode: extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED, ResponseBodyMode: extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED},
		fuzzDuplex, fuzzDuplex, fuzzDuplex, fuzzDuplex, fuzzDuplex, fuzzDuplex, fuzzDuplex, fuzzDuplex,
	}
	// fuzzDuplex is spendguard's modes: every response chunk must be
	// answered with a streamed_response.
	fuzzDuplex = &extprocv3.ProtocolConfiguration{RequestBodyMode: extprocfilterv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED}
)

// op builds one operation byte.
func op(kind, p byte) byte { return kind | p<<3 }

// fuzzSeeds are issue 16's sequences and their siblings.
var fuzzSeeds = [][]byte{
	// a whole ordinary lifecycle, JSON then SSE
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opRespHeaders, 0), op(opRespBody, 1), 255, op(opRespBody, 1), 255},
	{1, op(opCostHeaders, 2), op(opRequestBody, 2), op(opRespHeaders, 8), op(opRespBody, 0), 40, op(opRespBody, 0), 255, op(opRespBody, 1), 255, op(opRespBody, 1), 255},
	// response_header_mode SKIP: the body straight after the request
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opRespBody, 0), 7, op(opRespBody, 1), 255, op(opRespBody, 1), 255},
	{1, op(opCostHeaders, 0), op(opRequestBody, 2), op(opRespBody, 0), 1, op(opRespBody, 1), 255, op(opRespBody, 1), 255, op(opRespBody, 1), 255, op(opRespBody, 1), 255, op(opRespBody, 1), 255},
	// a watched cancel answer, JSON then SSE, then out of order
	{0, op(opFreeHeaders, 1), op(opRespHeaders, 0), op(opRespBody, 0), 9, op(opRespBody, 1), 255},
	{1, op(opFreeHeaders, 1), op(opRespHeaders, 8), op(opRespBody, 0), 40, op(opRespTrailers, 0)},
	{0, op(opFreeHeaders, 1), op(opRespBody, 0), 3, op(opRespHeaders, 0), op(opRequestBody, 0), op(opRespBody, 1), 255, op(opRespBody, 1), 9},
	// response headers before the request body, then a body
	{0, op(opCostHeaders, 0), op(opRespHeaders, 0), op(opRequestBody, 0), op(opRespBody, 1), 255},
	// a second request body; a second request headers naming a free path
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opRequestBody, 0), op(opRespHeaders, 0), op(opRespBody, 1), 255},
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opFreeHeaders, 0), op(opRespHeaders, 0), op(opRespBody, 1), 255},
	// no :status, a garbage one, 200 then 500
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opRespHeaders, 1), op(opRespBody, 1), 255, op(opRespBody, 1), 255},
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opRespHeaders, 2), op(opRespBody, 1), 255, op(opRespBody, 1), 255},
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opRespHeaders, 0), op(opRespBody, 0), 255, op(opRespHeaders, 3), op(opRespBody, 1), 255},
	// trailers, a missing end_of_stream, an empty message
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opReqTrailers, 0), op(opRespHeaders, 0), op(opRespBody, 0), 255, op(opRespBody, 0), 255, op(opRespTrailers, 0)},
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opRespHeaders, 0), op(opRespBody, 0), 100},
	{0, op(opCostHeaders, 0), op(opRequestBody, 0), op(opEmpty, 0)},
	// body modes spendguard cannot meter under
	{0, op(opCostHeaders, 4), op(opRequestBody, 0), op(opRespHeaders, 0), op(opRespBody, 1), 255},
	{0, op(opCostHeaders, 6), op(opRequestBody, 0), op(opRespHeaders, 0)},
	// a free path with everything after it, and request_header_mode SKIP
	{0, op(opFreeHeaders, 0), op(opRequestBody, 0), op(opRespHeaders, 0), op(opRespBody, 1), 255, op(opRespTrailers, 0)},
	{0, op(opRequestBody, 0), op(opRespHeaders, 0), op(opRespBody, 1), 255},
	// FULL_DUPLEX_STREAMED: JSON, SSE with trailers, a free path, a watched cancel
	{0, op(opCostHeaders, 16), op(opRequestBody, 0), op(opRespHeaders, 0), op(opRespBody, 0), 3, op(opRespBody, 1), 255},
	{1, op(opCostHeaders, 18), op(opRequestBody, 2), op(opRespHeaders, 8), op(opRespBody, 0), 1, op(opRespBody, 0), 255, op(opRespTrailers, 0)},
	{0, op(opFreeHeaders, 2), op(opRespHeaders, 0), op(opRespBody, 0), 9, op(opRespBody, 1), 255},
	{1, op(opFreeHeaders, 3), op(opRespHeaders, 8), op(opRespBody, 0), 40, op(opRespBody, 1), 255},
}

// countingBudgets counts the reservations a stream asks for.
type countingBudgets struct {
	processor.Budgets
	admits atomic.Int64
}

func (c *countingBudgets) Admit(ctx context.Context, claim budget.Claim, d budget.Downgrader) (budget.Admission, error) {
	c.admits.Add(1)
	return c.Budgets.Admit(ctx, claim, d)
}

// FuzzStreamSequences drives random message sequences (any order,
// duplicates, missing end_of_stream, bodies split anywhere, responses with
// and without a status, SKIP-mode shapes) through the real gRPC server
// with the memory store, one stream each, and checks after every stream:
// no panic was recovered (the state machine, not the recover, kept the
// process up), no reservation outlives its stream, a stream reserves at
// most once, and a request that was admitted and whose upstream began to
// answer with a status that is not an error is charged more than 0.
func FuzzStreamSequences(f *testing.F) { fuzzStreamSequences(f, nil) }

// fuzzStreamSequences is FuzzStreamSequences on a server that setup, when
// given, prepares (FuzzStreamSequencesCounted gives it a tokenizer).
func fuzzStreamSequences(f *testing.F, setup func(*processor.Server)) {
	for _, s := range fuzzSeeds {
		f.Add(s)
	}
	cfg, err := config.Parse([]byte(fuzzConfig))
	require.NoError(f, err)
	store := memstore.New()
	engine := budget.NewEngine(store, time.Now)
	budgets := &countingBudgets{Budgets: engine}
	srv := processor.New(cfg.Snapshot, processor.Options{Budgets: budgets, Parking: store})
	if setup != nil {
		setup(srv)
	}
	lis, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(f, err)
	gs := grpc.NewServer(grpc.ForceServerCodecV2(processor.Codec()))
	extprocv3.RegisterExternalProcessorServer(gs, srv)
	go func() { _ = gs.Serve(lis) }()
	f.Cleanup(gs.Stop)
	conn, err := grpc.NewClient(lis.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(f, err)
	f.Cleanup(func() { conn.Close() })
	client := extprocv3.NewExternalProcessorClient(conn)
	bodies := [2][]byte{fixtures.Read(f, "vllm-chat.json"), fixtures.Read(f, "openai-chat-stream-usage.sse")}
	var tenants atomic.Int64

	f.Fuzz(func(t *testing.T, in []byte) {
		if len(in) == 0 || len(in) > 64 {
			return
		}
		tenant := fmt.Sprintf("t%d", tenants.Add(1))
		admitsBefore := budgets.admits.Load()
		r := playFuzz(t, client, tenant, bodies[in[0]&1], in[1:])

		require.Zero(t, srv.Panics(), "a panic was recovered")
		_, reservations := store.Len()
		require.Zero(t, reservations, "a reservation outlived its stream")
		require.LessOrEqual(t, budgets.admits.Load()-admitsBefore, int64(1), "a stream reserved twice")
		if r.admitted && r.served {
			scopes := cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": tenant, "model": "Hunyuan"})
			states, err := engine.Status(context.Background(), scopes)
			require.NoError(t, err)
			require.Positive(t, states[0].Committed, "an admitted request whose upstream answered was charged 0")
		}
	})
}

// fuzzRun is what the client side of one fuzzed stream saw.
type fuzzRun struct {
	admitted bool // the request body got a body answer (not a local reply)
	served   bool // then a response message was answered, the response not failed (4xx, 5xx)
}

// playFuzz plays ops on a new stream and waits for the server to end it.
func playFuzz(t *testing.T, client extprocv3.ExternalProcessorClient, tenant string, body, ops []byte) fuzzRun {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	s, err := client.Process(ctx)
	require.NoError(t, err)
	var (
		run    fuzzRun
		cost   bool // request headers on a cost path were answered
		sent   int  // response body bytes sent
		failed bool // the first response headers had a failure status
		headed bool
		duplex bool // the last protocol_config sent asks for a FULL_DUPLEX_STREAMED response body
	)
	for i := 0; i < len(ops); i++ {
		kind, p := ops[i]&7, ops[i]>>3
		var req *extprocv3.ProcessingRequest
		switch kind {
		case opCostHeaders:
			req = reqHeaders("/v1/chat/completions", "x-tenant-id", tenant)
			req.GetRequestHeaders().EndOfStream = p&1 != 0
			req.ProtocolConfig = fuzzModes[p>>1&15]
		case opFreeHeaders:
			req = reqHeaders("/v1/models")
			if p&1 != 0 {
				req = reqHeaders("/v1/responses/resp_1/cancel")
			}
			if p&2 != 0 {
				req.ProtocolConfig = fuzzDuplex
			}
		case opRequestBody:
			b := `{"model":"Hunyuan","max_tokens":100,"messages":[{"role":"user","content":"hi"}]`
			if p&2 != 0 {
				b += `,"stream":true`
			}
			b += "}"
			if p&1 != 0 {
				b = b[:len(b)/2]
			}
			req = reqBody(b)
			req.GetRequestBody().EndOfStream = p&4 == 0
		case opRespHeaders:
			req = respHeaders(fuzzStatuses[p&7])
			h := req.GetResponseHeaders().GetHeaders()
			h.Headers = nil
			if st := fuzzStatuses[p&7]; st != "" {
				h.Headers = append(h.Headers, hdrs(":status", st).Headers...)
			}
			if ct := fuzzTypes[p>>3&3]; ct != "" {
				h.Headers = append(h.Headers, hdrs("content-type", ct).Headers...)
			}
		case opRespBody:
			n := 0
			if i+1 < len(ops) {
				i++
				n = int(ops[i])
			}
			end := min(sent+n, len(body))
			req = respBody(body[sent:end], p&1 != 0)
			sent = end
		case opReqTrailers:
			req = reqTrailers()
		case opRespTrailers:
			req = respTrailers()
		default:
			req = &extprocv3.ProcessingRequest{}
		}
		if pc := req.GetProtocolConfig(); pc != nil {
			duplex = pc.GetResponseBodyMode() == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
		}
		if s.Send(req) != nil {
			break
		}
		resp, err := s.Recv()
		if err != nil {
			break
		}
		if resp.GetImmediateResponse() != nil {
			break
		}
		if rb := resp.GetResponseBody(); rb != nil && duplex {
			// Envoy injects only streamed_response bodies: anything else
			// would leave the client without the chunk (or fail the stream).
			sr := rb.GetResponse().GetBodyMutation().GetStreamedResponse()
			require.NotNil(t, sr, "a FULL_DUPLEX_STREAMED chunk answered without streamed_response")
			require.Equal(t, req.GetResponseBody().GetEndOfStream(), sr.GetEndOfStream(), "end_of_stream not carried")
		}
		switch {
		case kind == opCostHeaders && resp.GetRequestHeaders() != nil:
			cost = true
		case kind == opRequestBody && cost && resp.GetRequestBody() != nil:
			run.admitted = true
		case run.admitted && (kind == opRespHeaders || kind == opRespBody || kind == opRespTrailers):
			if kind == opRespHeaders && !headed && !run.served {
				headed = true
				if st := parseFuzzStatus(fuzzStatuses[p&7]); st >= 400 && st <= 599 {
					failed = true
				}
			}
			run.served = !failed
		}
	}
	require.NoError(t, s.CloseSend())
	for {
		if _, err := s.Recv(); err != nil {
			if !errors.Is(err, io.EOF) {
				require.NotEqual(t, context.DeadlineExceeded, ctx.Err(), "the stream did not end")
			}
			return run
		}
	}
}

func parseFuzzStatus(s string) int {
	n := 0
	if len(s) != 3 {
		return 0
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return 0
		}
		n = n*10 + int(c-'0')
	}
	return n
}
