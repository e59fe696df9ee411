package processor

import (
	"bytes"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"google.golang.org/protobuf/types/known/structpb"
)

// jwtNamespace and jwtKey are where Envoy's jwt_authn filter, with
// payload_in_metadata: jwt and the namespace forwarded to ext_proc, puts the
// verified claims.
const (
	jwtNamespace = "envoy.filters.http.jwt_authn"
	jwtKey       = "jwt"
)

// findHeader returns the first header named name (lower case) in an
// ext_proc HeaderMap, nil when there is none. Requests carry few headers:
// a scan beats building a map.
func findHeader(m *corev3.HeaderMap, name string) *corev3.HeaderValue {
	for _, h := range m.GetHeaders() {
		if h.GetKey() == name {
			return h
		}
	}
	return nil
}

// headerOccurrence returns the value of the n-th (from 0) header named
// name (lower case) and true, or false past the last one: Envoy sends each
// occurrence of a repeated header as its own entry.
func headerOccurrence(m *corev3.HeaderMap, name string, n int) (string, bool) {
	for _, h := range m.GetHeaders() {
		if h.GetKey() != name {
			continue
		}
		if n > 0 {
			n--
			continue
		}
		if raw := h.GetRawValue(); len(raw) > 0 {
			return string(raw), true
		}
		return h.GetValue(), true
	}
	return "", false
}

// headerBytes is the value of a header without copying it. Envoy sends
// values in raw_value; value is read only when raw_value is empty.
func headerBytes(h *corev3.HeaderValue) []byte {
	if raw := h.GetRawValue(); len(raw) > 0 {
		return raw
	}
	return []byte(h.GetValue())
}

// headerString is the value of the first header named name, "" when
// absent; it copies the value, for values that are kept.
func headerString(m *corev3.HeaderMap, name string) string {
	h := findHeader(m, name)
	if raw := h.GetRawValue(); len(raw) > 0 {
		return string(raw)
	}
	return h.GetValue()
}

// hasPrefixFold reports whether b starts with the lower-case ASCII prefix,
// ignoring the case of b.
func hasPrefixFold(b []byte, prefix string) bool {
	return len(b) >= len(prefix) && bytes.EqualFold(b[:len(prefix)], []byte(prefix))
}

// claimGetter looks up a dotted claim path ("org.id") in the JWT payload
// forwarded in the metadata context. Numbers and booleans are formatted;
// objects, lists and nulls yield "".
func claimGetter(md *corev3.Metadata) func(string) string {
	payload := md.GetFilterMetadata()[jwtNamespace].GetFields()[jwtKey].GetStructValue()
	if payload == nil {
		return nil
	}
	return func(path string) string {
		var v *structpb.Value
		fields := payload.GetFields()
		for _, part := range strings.Split(path, ".") {
			if fields == nil {
				return ""
			}
			v = fields[part]
			fields = v.GetStructValue().GetFields()
		}
		switch k := v.GetKind().(type) {
		case *structpb.Value_StringValue:
			return k.StringValue
		case *structpb.Value_NumberValue:
			return strconv.FormatFloat(k.NumberValue, 'f', -1, 64)
		case *structpb.Value_BoolValue:
			if k.BoolValue {
				return "true"
			}
			return "false"
		}
		return ""
	}
}

// isUpgrade reports whether a request asks to leave HTTP for another
// protocol on its connection: an Upgrade header (WebSocket over HTTP/1.1,
// as Envoy also presents an HTTP/2 or HTTP/3 extended CONNECT to its
// filters), or a CONNECT.
func isUpgrade(m *corev3.HeaderMap, method string) bool {
	if method == "CONNECT" {
		return true
	}
	for _, h := range m.GetHeaders() {
		if k := h.GetKey(); k == "upgrade" || k == ":protocol" {
			return true
		}
	}
	return false
}
