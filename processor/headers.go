package processor

import (
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

// headerValue returns the value of a header in an ext_proc HeaderMap. Envoy
// sends values in raw_value; value is read only when raw_value is empty.
func headerValue(h *corev3.HeaderValue) string {
	if len(h.GetRawValue()) > 0 {
		return string(h.GetRawValue())
	}
	return h.GetValue()
}

// headerGetter looks up lower-case header names in an ext_proc HeaderMap
// without building a map: requests carry few headers.
func headerGetter(m *corev3.HeaderMap) func(string) string {
	return func(name string) string {
		for _, h := range m.GetHeaders() {
			if h.GetKey() == name {
				return headerValue(h)
			}
		}
		return ""
	}
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

// splitPath returns the path without its query string.
func splitPath(p string) string {
	if i := strings.IndexByte(p, '?'); i >= 0 {
		return p[:i]
	}
	return p
}
