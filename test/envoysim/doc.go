// Package envoysim is spendguard's stand-in for Envoy in end-to-end tests: an
// http.Handler that behaves like Envoy's HTTP connection manager with the
// ext_proc filter followed by the router, as Envoy's ext_proc filter
// documentation and source describe it.
//
// Every HTTP request that reaches a Proxy opens one bidirectional
// envoy.service.ext_proc.v3.ExternalProcessor/Process stream to the processor
// (at the first message the processing mode asks for), exchanges headers and
// body messages with it following Envoy's rules — held headers in BUFFERED
// mode, pipelined in-order answers in STREAMED mode, Envoy's default header
// mutation rules, content-length handling, ImmediateResponse local replies,
// message timeouts, failure_mode_allow — and forwards the possibly mutated
// request to a real HTTP upstream with net/http. A BUFFERED request body over
// the buffer limit gets Envoy's own 413, and every reply envoysim makes
// itself passes the connection manager's local_reply_config (Config.LocalReply)
// first, its mappers' filters read, as Envoy's, from the status and the
// request headers as the filter chain holds them. Config.ApplyBootstrapYAML reads the buffer limit, the
// local_reply_config and the ext_proc settings from an Envoy bootstrap such
// as envoy/envoy.yaml. Like Envoy's gRPC client, it accepts answers of any
// size. The response is streamed back
// through the processor and to the client chunk by chunk, never buffered whole
// unless the response body mode is BUFFERED.
//
// Stream shutdown follows Envoy too: when the exchange ends (completed,
// answered locally, or aborted by the client or the upstream) the stream is
// half-closed first and reset afterwards, so the processor sees io.EOF on
// Recv and then the cancellation of its stream context.
//
// Deliberate differences from Envoy, all documented where they apply:
//   - FULL_DUPLEX_STREAMED and GRPC body modes, and trailer mode SEND, are
//     rejected by New (a mode_override asking for them is ignored);
//     trailers are neither sent to the processor nor forwarded.
//   - The message timeout is tracked per message (each unanswered message has
//     its own deadline), which is at least as strict as Envoy's single
//     re-armed timer: a processor that meets envoysim's deadlines meets
//     Envoy's.
//   - In STREAMED request mode the response phase starts only once the whole
//     request body has been processed, and request data is read only after
//     the headers answer (Envoy may coalesce data that arrived earlier into
//     the first chunk). Response data is coalesced as Envoy does.
//   - An answer the processor sends while nothing is awaited is detected as
//     spurious at the next wait rather than at once.
//   - Regular headers are presented sorted by name (Go does not keep the wire
//     order); pseudo-headers come first.
//   - Upgrade (WebSocket) requests are not supported.
package envoysim
