package processor

import (
	"fmt"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/encoding"
	grpcproto "google.golang.org/grpc/encoding/proto"
	"google.golang.org/grpc/mem"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Codec is gRPC's protobuf codec, except for spendguard's own answers:
// the answers every stream shares (answerRequestHeaders and the like) are
// sent as bytes encoded once at start-up instead of being marshalled again
// for every message, and the answer to the response headers, which sets
// the x-spendguard-* headers, is encoded directly rather than through
// protobuf's generic marshaller. Between them they are nearly every answer
// of a lifecycle. The bytes are the ones proto.Marshal produces, so Envoy
// cannot tell the difference. Received headers and body messages are
// decoded with fewer allocations (decodeRequest); every other message
// goes through the protobuf codec.
//
// Install it with grpc.ForceServerCodecV2(processor.Codec()). A server
// without it works the same, a little slower.
func Codec() encoding.CodecV2 { return sharedCodec }

var sharedCodec = newCodec()

type codec struct {
	proto encoding.CodecV2
	// answers are the shared answers and their encodings.
	answers []encodedAnswer
}

type encodedAnswer struct {
	resp *extprocv3.ProcessingResponse
	// data is never freed or written to: a mem.SliceBuffer's Free does
	// nothing and gRPC only reads what a codec returns.
	data mem.BufferSlice
}

func newCodec() *codec {
	c := &codec{proto: encoding.GetCodecV2(grpcproto.Name)}
	for _, r := range []*extprocv3.ProcessingResponse{
		// The most frequent first: a token chunk's answer, then one per request.
		answerResponseBody, answerRequestHeaders, answerRequestBody, answerResponseHeaders,
		answerClearChunk, answerFreePath, answerRequestTrailers, answerResponseTrailers,
	} {
		b, err := proto.MarshalOptions{Deterministic: true}.Marshal(r)
		if err != nil {
			panic(fmt.Sprintf("processor: encoding a shared answer: %v", err))
		}
		c.answers = append(c.answers, encodedAnswer{resp: r, data: mem.BufferSlice{mem.SliceBuffer(b)}})
	}
	return c
}

// Marshal returns a shared answer's encoding, or what the protobuf codec
// makes of v.
func (c *codec) Marshal(v any) (mem.BufferSlice, error) {
	switch m := v.(type) {
	case *extprocv3.ProcessingResponse:
		for i := range c.answers {
			if c.answers[i].resp == m {
				return c.answers[i].data, nil
			}
		}
	case *headersAnswer:
		if b, ok := m.encode(); ok {
			return mem.BufferSlice{mem.SliceBuffer(b)}, nil
		}
	}
	return c.proto.Marshal(v)
}

// Unmarshal decodes headers and body messages with decodeRequest and
// everything else with the protobuf codec.
func (c *codec) Unmarshal(data mem.BufferSlice, v any) error {
	m, ok := v.(*extprocv3.ProcessingRequest)
	if !ok {
		return c.proto.Unmarshal(data, v)
	}
	buf := data.MaterializeToBuffer(mem.DefaultBufferPool())
	defer buf.Free()
	if decodeRequest(buf.ReadOnlyData(), m) {
		return nil
	}
	return proto.Unmarshal(buf.ReadOnlyData(), m)
}

// Name is the protobuf codec's, so that content-subtype negotiation is
// unchanged.
func (c *codec) Name() string { return grpcproto.Name }

// The field numbers of the one answer encoded by hand, the answer to the
// response headers (headersAnswer), read from the generated descriptors.
var (
	fieldResponseHeaders = fieldNumber(&extprocv3.ProcessingResponse{}, "response_headers")
	fieldHeadersResponse = fieldNumber(&extprocv3.HeadersResponse{}, "response")
	fieldHeaderMutation  = fieldNumber(&extprocv3.CommonResponse{}, "header_mutation")
	fieldSetHeaders      = fieldNumber(&extprocv3.HeaderMutation{}, "set_headers")
	fieldHeader          = fieldNumber(&corev3.HeaderValueOption{}, "header")
	fieldAppendAction    = fieldNumber(&corev3.HeaderValueOption{}, "append_action")
	fieldKey             = fieldNumber(&corev3.HeaderValue{}, "key")
	fieldValue           = fieldNumber(&corev3.HeaderValue{}, "value")
	fieldRawValue        = fieldNumber(&corev3.HeaderValue{}, "raw_value")
)

func fieldNumber(m proto.Message, name protoreflect.Name) protowire.Number {
	f := m.ProtoReflect().Descriptor().Fields().ByName(name)
	if f == nil {
		panic(fmt.Sprintf("processor: %s has no field %s", m.ProtoReflect().Descriptor().FullName(), name))
	}
	return f.Number()
}

// encode returns the answer's protobuf encoding, the bytes proto.Marshal
// makes of a.resp, in a new buffer (gRPC writes it after Send returns,
// when the block is back in its pool). ok is false when the answer holds
// something the encoder does not write; the protobuf codec then does.
func (a *headersAnswer) encode() (b []byte, ok bool) {
	c := &a.common
	if c.Status != 0 || c.BodyMutation != nil || c.Trailers != nil || c.ClearRouteCache ||
		len(a.mut.RemoveHeaders) > 0 || a.hr.Response != c || a.resp.ModeOverride != nil ||
		a.resp.DynamicMetadata != nil || a.resp.OverrideMessageTimeout != nil {
		return nil, false
	}
	set := 0
	for _, o := range a.mut.SetHeaders {
		if o.Append != nil || o.KeepEmptyValue || o.Header == nil {
			return nil, false
		}
		n := optionSize(o)
		set += protowire.SizeTag(fieldSetHeaders) + protowire.SizeBytes(n)
	}
	common := protowire.SizeTag(fieldHeaderMutation) + protowire.SizeBytes(set)
	hr := protowire.SizeTag(fieldHeadersResponse) + protowire.SizeBytes(common)
	b = make([]byte, 0, protowire.SizeTag(fieldResponseHeaders)+protowire.SizeBytes(hr))
	b = appendLen(b, fieldResponseHeaders, hr)
	b = appendLen(b, fieldHeadersResponse, common)
	b = appendLen(b, fieldHeaderMutation, set)
	for _, o := range a.mut.SetHeaders {
		b = appendLen(b, fieldSetHeaders, optionSize(o))
		h := o.Header
		b = appendLen(b, fieldHeader, valueSize(h))
		b = appendString(b, fieldKey, h.Key)
		b = appendString(b, fieldValue, h.Value)
		if len(h.RawValue) > 0 {
			b = protowire.AppendTag(b, fieldRawValue, protowire.BytesType)
			b = protowire.AppendBytes(b, h.RawValue)
		}
		if o.AppendAction != 0 {
			b = protowire.AppendTag(b, fieldAppendAction, protowire.VarintType)
			b = protowire.AppendVarint(b, uint64(o.AppendAction))
		}
	}
	return b, true
}

// optionSize is the encoded size of a HeaderValueOption with a header and
// an append action.
func optionSize(o *corev3.HeaderValueOption) int {
	n := protowire.SizeTag(fieldHeader) + protowire.SizeBytes(valueSize(o.Header))
	if o.AppendAction != 0 {
		n += protowire.SizeTag(fieldAppendAction) + protowire.SizeVarint(uint64(o.AppendAction))
	}
	return n
}

// valueSize is the encoded size of a HeaderValue.
func valueSize(h *corev3.HeaderValue) int {
	n := 0
	if h.Key != "" {
		n += protowire.SizeTag(fieldKey) + protowire.SizeBytes(len(h.Key))
	}
	if h.Value != "" {
		n += protowire.SizeTag(fieldValue) + protowire.SizeBytes(len(h.Value))
	}
	if len(h.RawValue) > 0 {
		n += protowire.SizeTag(fieldRawValue) + protowire.SizeBytes(len(h.RawValue))
	}
	return n
}

// appendLen appends the tag and length of an embedded message of n bytes.
func appendLen(b []byte, f protowire.Number, n int) []byte {
	b = protowire.AppendTag(b, f, protowire.BytesType)
	return protowire.AppendVarint(b, uint64(n))
}

func appendString(b []byte, f protowire.Number, s string) []byte {
	if s == "" {
		return b
	}
	b = protowire.AppendTag(b, f, protowire.BytesType)
	return protowire.AppendString(b, s)
}
