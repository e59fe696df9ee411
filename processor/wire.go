package processor

import (
	"sync"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// The wire is how answers reach Envoy and messages come from it, and the
// one place that knows the tricks that make this cheap. The rest of the
// processor builds and returns plain *extprocv3.ProcessingResponse values
// and hands each to wire.send; what it sees is the same whether or not a
// trick applies. The tricks, each of which Envoy cannot observe:
//
//   - the answers every stream shares (respond.go) are sent by Codec as
//     bytes encoded once at start-up (codec.go);
//   - the answer to the response headers is built in a pooled block
//     (headersAnswer) that wire.headers lends and wire.send takes back, and
//     Codec encodes it directly instead of through protobuf's generic
//     marshaller (codec.go);
//   - the answer that replaces a response chunk is made once and reused,
//     by the stream's later chunks and by the streams after it
//     (wire.chunkAnswer), and so is the streamed_response answer of a
//     FULL_DUPLEX_STREAMED response (wire.streamed, duplex.go);
//   - headers and body messages are decoded with fewer allocations
//     (decode.go);
//   - the stream's goroutine gets its stack while it is still shallow
//     (growStack, stack.go, called first thing in Process).

// wire is one stream's side of the seam: the answer block it lent, until
// send, and the stream's reusable answer to a response chunk. Its zero
// value is ready; it is used by the stream's goroutine only.
type wire struct {
	lent *headersAnswer
	// chunk replaces a response chunk with chunkBody's bytes. Made on first
	// use, it outlives the stream (reuse): a pooled stream brings it along.
	chunk     *extprocv3.ProcessingResponse
	chunkBody *extprocv3.BodyMutation_Body
	// dup answers a FULL_DUPLEX_STREAMED chunk with dupBody; made on first
	// use and reused like chunk.
	dup     *extprocv3.ProcessingResponse
	dupBody *extprocv3.StreamedBodyResponse
}

// reuse returns the wire for the pooled stream's next request: the chunk
// answers, without the last body they carried, and nothing lent.
func (w *wire) reuse() wire {
	if w.chunkBody != nil {
		w.chunkBody.Body = nil
	}
	if w.dupBody != nil {
		w.dupBody.Body = nil
	}
	return wire{chunk: w.chunk, chunkBody: w.chunkBody, dup: w.dup, dupBody: w.dupBody}
}

// streamed returns a response_body answer whose streamed_response carries
// body (possibly empty) and end_of_stream eos. Like chunkAnswer it is the
// same answer each time: send it before asking for the next.
func (w *wire) streamed(body []byte, eos bool) *extprocv3.ProcessingResponse {
	if w.dup == nil {
		w.dupBody = &extprocv3.StreamedBodyResponse{}
		w.dup = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
				BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_StreamedResponse{StreamedResponse: w.dupBody}},
			}},
		}}
	}
	w.dupBody.Body, w.dupBody.EndOfStream = body, eos
	return w.dup
}

// chunkAnswer returns an answer that replaces a response chunk with out
// (not empty). It is the same answer for every chunk of the stream, so each
// must be sent before the next is asked for, as the stream's answers are.
func (w *wire) chunkAnswer(out []byte) *extprocv3.ProcessingResponse {
	if w.chunk == nil {
		w.chunkBody = &extprocv3.BodyMutation_Body{}
		w.chunk = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
				BodyMutation: &extprocv3.BodyMutation{Mutation: w.chunkBody},
			}},
		}}
	}
	w.chunkBody.Body = out
	return w.chunk
}

// headers lends an empty answer to the response headers. The stream
// returns &a.resp as its answer; the next send takes the block back, so
// it must not be used after that.
func (w *wire) headers() *headersAnswer {
	a := newHeadersAnswer()
	w.lent = a
	return a
}

// send writes resp to Envoy and takes back a block lent for it. resp may be
// a shared answer or the lent block's answer; either way it is marshalled
// before send returns, and it is neither kept nor modified. The block goes
// back even when the send fails.
func (w *wire) send(s extprocv3.ExternalProcessor_ProcessServer, resp *extprocv3.ProcessingResponse) error {
	a := w.lent
	if a == nil {
		return s.Send(resp)
	}
	w.lent = nil
	var err error
	if resp == &a.resp {
		err = s.SendMsg(a) // the same message, which Codec encodes directly
	} else {
		err = s.Send(resp)
	}
	putHeadersAnswer(a) // marshalled: back to its pool, and resp with it
	return err
}

// headersAnswer is an answer to the response headers that sets a few
// headers, in one block: the answer, its header options and their values
// (spendguard sets at most three). Blocks are pooled: wire.headers lends
// one and wire.send puts it back once gRPC has marshalled the answer.
type headersAnswer struct {
	resp   extprocv3.ProcessingResponse
	oneof  extprocv3.ProcessingResponse_ResponseHeaders
	hr     extprocv3.HeadersResponse
	common extprocv3.CommonResponse
	mut    extprocv3.HeaderMutation
	opts   [4]corev3.HeaderValueOption
	vals   [4]corev3.HeaderValue
	ptrs   [4]*corev3.HeaderValueOption
	buf    [96]byte // the values, while they fit
	used   int
}

var headersAnswers = sync.Pool{New: func() any { return new(headersAnswer) }}

// ProtoReflect makes the block a proto.Message, its answer: any codec can
// send it, and Codec recognises it and encodes it directly.
func (a *headersAnswer) ProtoReflect() protoreflect.Message { return a.resp.ProtoReflect() }

// newHeadersAnswer returns an empty answer from the pool.
func newHeadersAnswer() *headersAnswer {
	a := headersAnswers.Get().(*headersAnswer)
	a.mut.SetHeaders = a.ptrs[:0]
	a.common.HeaderMutation = &a.mut
	a.hr.Response = &a.common
	a.oneof.ResponseHeaders = &a.hr
	a.resp.Response = &a.oneof
	return a
}

// putHeadersAnswer returns a to the pool, cleared (protobuf messages keep
// internal state, such as their cached size, that must not carry over).
func putHeadersAnswer(a *headersAnswer) {
	*a = headersAnswer{}
	headersAnswers.Put(a)
}

// set adds an overwriting header; value appends the value to its
// argument.
func (a *headersAnswer) set(key string, value func([]byte) []byte) {
	v := value(a.buf[a.used:a.used:len(a.buf)])
	scrubHeaderValue(v)
	if cap(v) == len(a.buf)-a.used { // it fit in buf
		a.used += len(v)
	}
	i := len(a.mut.SetHeaders)
	if i == len(a.opts) {
		a.mut.SetHeaders = append(a.mut.SetHeaders, header(key, string(v)))
		return
	}
	a.vals[i] = corev3.HeaderValue{Key: key, RawValue: v}
	a.opts[i] = corev3.HeaderValueOption{Header: &a.vals[i], AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD}
	a.mut.SetHeaders = append(a.mut.SetHeaders, &a.opts[i])
}

func (a *headersAnswer) setString(key, value string) {
	a.set(key, func(b []byte) []byte { return append(b, value...) })
}
