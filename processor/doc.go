// Package processor is spendguard's Envoy external processor: an
// envoy.service.ext_proc.v3.ExternalProcessor whose Process stream follows
// one HTTP request through a small state machine.
//
// The phases, for the processing mode spendguard asks of Envoy (request
// headers SEND, request body BUFFERED, response headers SEND, response body
// FULL_DUPLEX_STREAMED with response trailers SEND; STREAMED, the mode
// before, still works but a stream then cannot be ended at a cap):
//
//  1. request headers: free paths are answered with a mode_override that
//     turns both bodies off, so Envoy sends nothing more and nothing is
//     charged (in FULL_DUPLEX_STREAMED Envoy ignores it and every chunk
//     is echoed back: duplex.go). On a cost path the identity is resolved (401 when a
//     dimension stays empty) and a budget that is already exhausted is
//     answered with 402 straight away, before the body is read.
//  2. request body (body.go): the JSON is parsed once (400 when invalid),
//     the model priced (400 when it has no price and there is no default),
//     the worst case estimated, and the request's budget.Claim decided by
//     one Budgets.Admit call: reserved on every applicable budget at once,
//     or 402, or a soft cap's cheaper model, which the stream prices when
//     the engine asks (Downgrade). The forwarded body is rewritten at the
//     offsets the parse found (rewrite.go).
//  3. response headers: the upstream status is noted; a status from 400 to
//     599 releases the reservation, any other, a missing or an unreadable
//     one counts as success. Informative x-spendguard-* headers are added.
//  4. response body: chunks are scanned for usage without holding the body;
//     at end of stream (or at the response trailers) the actual cost is
//     committed and the reservation released. A streamed response in
//     FULL_DUPLEX_STREAMED mode reserves its learned estimate, grows its
//     reservation while it streams and is ended at the cap with its API's
//     error event (grow.go, cutevent.go). Without response headers
//     (response_header_mode SKIP) the status is unknown and the body's
//     first bytes tell JSON from SSE.
//
// Background responses (background.go): a POST /v1/responses with
// background: true that vLLM answers "queued" keeps its reservation,
// parked in the budget store under the response id (Options.Parking); the
// answer to a later GET /v1/responses/{id} or cancel, on any replica,
// settles it from the upstream's usage, and SweepParked charges those
// left past limits.background_ttl.
//
// Any other order is decided explicitly (sequence.go; the table is in
// docs/design.md): a message Envoy never sends in that state — a second
// request body, a response before the request was admitted, a second
// response headers — ends the stream with InvalidArgument; a cost-path
// request under body modes that cannot be priced or metered gets a 500
// local reply naming the setting.
//
// A stream that ends early (client abort, upstream reset, Envoy cancelling
// the gRPC stream, an out-of-order message) is settled when Process
// returns: nothing is charged if no response message had arrived,
// otherwise the usage seen, or the usage the model server's /tokenize
// counted when a tokenizer is set (SetTokenizer; count.go), or an
// estimate, marked estimated. Every reservation is settled exactly once. A panic in one stream's work is
// recovered there (recover.go): the stream is settled the same way, the
// panic logged and counted, and the stream ended with Internal.
//
// Serve it with grpc.ForceServerCodecV2(Codec()): the codec sends the
// answers streams share from bytes encoded once, and the answer to the
// response headers encoded directly, the same bytes protobuf would make;
// it decodes headers and body messages into the same types as protobuf,
// with fewer allocations. Without it the server behaves the same, at a
// little more CPU per message. The codec and the processor's other ways of
// answering cheaply (pooled and reused answers, the stream's early stack)
// sit behind one seam, wire.go: the phase handlers only return answers.
package processor
