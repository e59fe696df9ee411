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
// # FULL_DUPLEX_STREAMED response bodies
//
// A response_body_mode of FULL_DUPLEX_STREAMED (with response_trailer_mode
// SEND, which Envoy requires; the request body stays BUFFERED) follows what
// Envoy's ext_proc filter does since 1.37 (ext_proc.cc, processor_state.cc;
// see duplex.go):
//   - No waiting: response_headers is sent and the headers are held, but
//     each body data callback is sent at once as a response_body message,
//     also while the headers answer is awaited (onData sends in the
//     HeadersCallback state for this mode), and the data itself is drained:
//     nothing reaches the client except what the processor injects.
//   - The response_headers answer must come first: a body answer before it
//     is spurious. Its header mutation applies to the held headers, with
//     content-length changes ignored: content-length is stripped at header
//     time (shouldRemoveContentLength includes this mode), so HTTP/1.1
//     clients get a chunked response. After the answer the headers go
//     downstream, unless the whole body had already been sent to the
//     processor: then they are held until a body answer with end_of_stream
//     (or the trailers answer), together with the bytes injected meanwhile.
//   - Body answers must carry body_mutation.streamed_response; any other
//     body answer is spurious. Envoy injects each body as is, in any number
//     and sizes (not 1:1 with the chunks sent). end_of_stream true ends the
//     client's response cleanly; the stream is then closed and, if the
//     upstream had not finished, its request is reset (envoysim cancels
//     it: the upstream handler's request context ends). Later upstream data
//     and later answers are ignored.
//   - Last chunk: without trailers the last body message has end_of_stream
//     true; with trailers it has end_of_stream false and a
//     response_trailers message follows (sent even while body answers are
//     outstanding). The trailers answer (accepted at any time in this mode)
//     ends the response with the mutated trailers; a streamed_response with
//     end_of_stream true ends it instead, without trailers.
//   - mode_override is ignored altogether, in both directions, when either
//     configured body mode is FULL_DUPLEX_STREAMED: a processor that asks
//     for NONE still receives (and must answer) the response body.
//   - No message timeout: Envoy arms no timer for calls in a direction
//     whose body mode is FULL_DUPLEX_STREAMED, headers included.
//   - failure_mode_allow is forced off once body data of the direction
//     has been seen (Filter::failureModeAllow). A gRPC error or a spurious
//     answer then gives status_on_error as a local reply before the
//     headers went downstream, or a reset (truncated body) after. Before any
//     response data, failure_mode_allow still lets the response pass
//     unprocessed.
//   - The processor closing the stream with OK mid-response: processing
//     ends, held headers go downstream, data not yet sent to the processor
//     passes unmodified, and the chunks it had received but not answered
//     are lost (there is no queue to re-inject from).
//   - An ImmediateResponse mid-response resets the response (its headers
//     are already out), as in STREAMED mode.
//   - The client aborting, or the upstream failing, behaves as in the other
//     modes (stream half-closed then reset; upstream cancelled; client reset).
//
// Deliberate differences from Envoy, all documented where they apply:
//   - GRPC body mode, FULL_DUPLEX_STREAMED for the request body, and
//     request trailer mode SEND are rejected by New (a mode_override is
//     ignored when it asks for a mode envoysim does not reproduce); response
//     trailer mode SEND is accepted only with a FULL_DUPLEX_STREAMED
//     response body. Request trailers are neither sent nor forwarded.
//   - In FULL_DUPLEX_STREAMED mode a CONTINUE_AND_REPLACE response_headers
//     answer ends the stream at once; a response_trailers answer when the
//     response had no trailers is treated as spurious.
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
