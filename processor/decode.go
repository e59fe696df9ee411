package processor

import (
	"strings"
	"unicode/utf8"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"
)

// Decoding a headers message is most of what receiving costs: protobuf's
// generic decoder makes three objects per header (the HeaderValue, its key
// and its value), some sixty for a typical request. decodeRequest makes the
// same message with seven: every HeaderValue of the map in one array, every
// key and value in one string, every raw value in one byte slice. Body
// chunks, the other frequent message, it decodes without protobuf's
// generic walk, into the same objects. Whatever else a message holds is
// left to protobuf, and any message not in the plain shape Envoy sends is
// decoded by protobuf whole, so the result is always the message
// proto.Unmarshal would make (FuzzCodecDecode).

var (
	fieldRequestHeadersIn  = fieldNumber(&extprocv3.ProcessingRequest{}, "request_headers")
	fieldResponseHeadersIn = fieldNumber(&extprocv3.ProcessingRequest{}, "response_headers")
	fieldRequestBodyIn     = fieldNumber(&extprocv3.ProcessingRequest{}, "request_body")
	fieldResponseBodyIn    = fieldNumber(&extprocv3.ProcessingRequest{}, "response_body")
	fieldBody              = fieldNumber(&extprocv3.HttpBody{}, "body")
	fieldBodyEndOfStream   = fieldNumber(&extprocv3.HttpBody{}, "end_of_stream")
	fieldHTTPHeaders       = fieldNumber(&extprocv3.HttpHeaders{}, "headers")
	fieldEndOfStream       = fieldNumber(&extprocv3.HttpHeaders{}, "end_of_stream")
	fieldHeaderMapHeaders  = fieldNumber(&corev3.HeaderMap{}, "headers")
	// requestOneof has a bit set for each field of ProcessingRequest's
	// request oneof.
	requestOneof = func() (mask uint64) {
		fields := (&extprocv3.ProcessingRequest{}).ProtoReflect().Descriptor().Oneofs().ByName("request").Fields()
		for i := range fields.Len() {
			n := fields.Get(i).Number()
			if n >= 64 {
				panic("processor: a request oneof field numbered past 63")
			}
			mask |= 1 << n
		}
		return mask
	}()
)

// decodeRequest decodes b into m, which it resets, as proto.Unmarshal
// would. ok is false when b is not a headers or body message in the plain
// shape (or is not valid); m must then be decoded by protobuf.
func decodeRequest(b []byte, m *extprocv3.ProcessingRequest) (ok bool) {
	// Find the oneof field, and check that it is the message's only one.
	var (
		value      []byte
		which      protowire.Number
		start, end int // the oneof field, tag included
	)
	for off := 0; off < len(b); {
		num, typ, n := protowire.ConsumeTag(b[off:])
		if n < 0 {
			return false
		}
		vn := protowire.ConsumeFieldValue(num, typ, b[off+n:])
		if vn < 0 {
			return false
		}
		if num < 64 && requestOneof&(1<<num) != 0 {
			if which != 0 || typ != protowire.BytesType {
				return false
			}
			value, _ = protowire.ConsumeBytes(b[off+n:])
			which, start, end = num, off, off+n+vn
		}
		off += n + vn
	}
	var (
		headers *extprocv3.HttpHeaders
		body    *extprocv3.HttpBody
	)
	switch which {
	case fieldRequestHeadersIn, fieldResponseHeadersIn:
		headers = new(extprocv3.HttpHeaders)
		if !decodeHTTPHeaders(value, headers) {
			return false
		}
	case fieldRequestBodyIn, fieldResponseBodyIn:
		body = new(extprocv3.HttpBody)
		if !decodeHTTPBody(value, body) {
			return false
		}
	default:
		return false
	}
	m.Reset()
	// The fields around the oneof (protocol_config, metadata_context,
	// ...), protobuf decodes, merging: they are independent of it, so the
	// order they are set in does not matter.
	merge := proto.UnmarshalOptions{Merge: true}
	for _, other := range [][]byte{b[:start], b[end:]} {
		if len(other) > 0 {
			if err := merge.Unmarshal(other, m); err != nil {
				return false
			}
		}
	}
	switch which {
	case fieldRequestHeadersIn:
		m.Request = &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: headers}
	case fieldResponseHeadersIn:
		m.Request = &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: headers}
	case fieldRequestBodyIn:
		m.Request = &extprocv3.ProcessingRequest_RequestBody{RequestBody: body}
	case fieldResponseBodyIn:
		m.Request = &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: body}
	}
	return true
}

// decodeHTTPBody decodes an HttpBody that holds a body and perhaps
// end_of_stream, each at most once; ok is false for anything else.
func decodeHTTPBody(b []byte, body *extprocv3.HttpBody) (ok bool) {
	v, _, eos, ok := valueAndEndOfStream(b, fieldBody, fieldBodyEndOfStream)
	body.Body, body.EndOfStream = append([]byte(nil), v...), eos
	return ok
}

// decodeHTTPHeaders decodes an HttpHeaders that holds a header map and
// perhaps end_of_stream, each at most once; ok is false for anything else.
func decodeHTTPHeaders(b []byte, h *extprocv3.HttpHeaders) (ok bool) {
	headerMap, hasMap, eos, ok := valueAndEndOfStream(b, fieldHTTPHeaders, fieldEndOfStream)
	if !ok {
		return false
	}
	h.EndOfStream = eos
	if hasMap {
		h.Headers, ok = decodeHeaderMap(headerMap)
	}
	return ok
}

// valueAndEndOfStream reads a message that holds a length-delimited field
// value and a bool field eos, each at most once, and nothing else (the
// shape of HttpBody and HttpHeaders).
func valueAndEndOfStream(b []byte, value, eos protowire.Number) (v []byte, hasValue, end, ok bool) {
	seenEOS := false
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return nil, false, false, false
		}
		b = b[n:]
		switch {
		case num == value && typ == protowire.BytesType && !hasValue:
			x, xn := protowire.ConsumeBytes(b)
			if xn < 0 {
				return nil, false, false, false
			}
			v, hasValue, b = x, true, b[xn:]
		case num == eos && typ == protowire.VarintType && !seenEOS:
			x, xn := protowire.ConsumeVarint(b)
			if xn < 0 {
				return nil, false, false, false
			}
			end, seenEOS, b = x != 0, true, b[xn:]
		default:
			return nil, false, false, false
		}
	}
	return v, hasValue, end, true
}

// decodeHeaderMap decodes a HeaderMap whose entries hold a key, a value
// and a raw value at most once each, in one pass to size its blocks and
// one to fill them.
func decodeHeaderMap(b []byte) (*corev3.HeaderMap, bool) {
	count, textLen, rawLen := 0, 0, 0
	for rest := b; len(rest) > 0; {
		num, entry, next, ok := nextBytes(rest)
		if !ok || num != fieldHeaderMapHeaders {
			return nil, false
		}
		t, r, ok := measureHeader(entry)
		if !ok {
			return nil, false
		}
		count, textLen, rawLen = count+1, textLen+t, rawLen+r
		rest = next
	}
	hm := &corev3.HeaderMap{}
	if count == 0 {
		return hm, true
	}
	vals := make([]corev3.HeaderValue, count)
	hm.Headers = make([]*corev3.HeaderValue, count)
	// Keys and values are slices of one string. A Builder grown to the
	// total never moves or rewrites what it holds, so each String() seen
	// while filling stays valid.
	var text strings.Builder
	text.Grow(textLen)
	rawBuf := make([]byte, 0, rawLen)
	str := func(v []byte) string {
		at := text.Len()
		text.Write(v)
		return text.String()[at:]
	}
	for i, rest := 0, b; len(rest) > 0; i++ {
		_, entry, next, _ := nextBytes(rest) // checked by the first pass
		rest = next
		hv := &vals[i]
		hm.Headers[i] = hv
		for len(entry) > 0 {
			num, v, next, _ := nextBytes(entry)
			entry = next
			switch num {
			case fieldKey:
				hv.Key = str(v)
			case fieldValue:
				hv.Value = str(v)
			case fieldRawValue:
				at := len(rawBuf)
				rawBuf = append(rawBuf, v...)
				hv.RawValue = rawBuf[at:len(rawBuf):len(rawBuf)]
			}
		}
	}
	return hm, true
}

// measureHeader checks one HeaderValue entry: a key, a value and a raw
// value, each at most once, with valid UTF-8 in the strings. It returns
// the bytes of its strings and of its raw value.
func measureHeader(b []byte) (text, raw int, ok bool) {
	var seen [4]bool
	for len(b) > 0 {
		num, v, next, ok := nextBytes(b)
		if !ok || (num != fieldKey && num != fieldValue && num != fieldRawValue) || seen[num] {
			return 0, 0, false
		}
		seen[num] = true
		if num == fieldRawValue {
			raw += len(v)
		} else {
			if !utf8.Valid(v) {
				return 0, 0, false
			}
			text += len(v)
		}
		b = next
	}
	return text, raw, true
}

// nextBytes reads the length-delimited field at the start of b: its
// number, its value and what follows. ok is false for any other wire type
// or a truncated field. Tags and lengths under 128, one byte each, are read
// directly.
func nextBytes(b []byte) (num protowire.Number, v, rest []byte, ok bool) {
	if len(b) >= 2 && b[0] < 0x80 && b[1] < 0x80 {
		if protowire.Type(b[0]&7) != protowire.BytesType {
			return 0, nil, nil, false
		}
		end := 2 + int(b[1])
		if end > len(b) {
			return 0, nil, nil, false
		}
		return protowire.Number(b[0] >> 3), b[2:end], b[end:], true
	}
	num, typ, n := protowire.ConsumeTag(b)
	if n < 0 || typ != protowire.BytesType {
		return 0, nil, nil, false
	}
	v, vn := protowire.ConsumeBytes(b[n:])
	if vn < 0 {
		return 0, nil, nil, false
	}
	return num, v, b[n+vn:], true
}
