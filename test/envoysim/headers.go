package envoysim

import (
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// header is one entry of a header map: a lower-cased name and one value.
type header struct{ key, value string }

// headerList is an Envoy-style header map: ordered entries, lower-cased
// names, pseudo-headers first, one entry per value.
type headerList []header

// get returns the first value of key.
func (h headerList) get(key string) (string, bool) {
	for _, e := range h {
		if e.key == key {
			return e.value, true
		}
	}
	return "", false
}

// set gives key exactly one value, keeping the position of its first entry.
func (h *headerList) set(key, value string) {
	out := (*h)[:0]
	found := false
	for _, e := range *h {
		if e.key != key {
			out = append(out, e)
		} else if !found {
			found = true
			out = append(out, header{key, value})
		}
	}
	if !found {
		out = append(out, header{key, value})
	}
	*h = out
}

// add appends one more value for key.
func (h *headerList) add(key, value string) { *h = append(*h, header{key, value}) }

// del removes every value of key.
func (h *headerList) del(key string) {
	*h = slices.DeleteFunc(*h, func(e header) bool { return e.key == key })
}

// clone returns an independent copy.
func (h headerList) clone() headerList { return slices.Clone(h) }

// proto renders h as Envoy sends it: every entry, values in raw_value only.
func (h headerList) proto() *corev3.HeaderMap {
	out := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, 0, len(h))}
	for _, e := range h {
		out.Headers = append(out.Headers, &corev3.HeaderValue{Key: e.key, RawValue: []byte(e.value)})
	}
	return out
}

// copyTo adds every regular (non-pseudo) entry of h to dst, except the names
// in skip.
func (h headerList) copyTo(dst http.Header, skip ...string) {
	for _, e := range h {
		if strings.HasPrefix(e.key, ":") || slices.Contains(skip, e.key) {
			continue
		}
		dst.Add(e.key, e.value)
	}
}

// hopByHop lists the connection-specific headers Envoy's HTTP/1 codec and
// connection manager consume instead of passing them to filters.
var hopByHop = []string{"connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade"}

// regularHeaders converts a Go header map into sorted lower-cased entries,
// dropping hop-by-hop headers and those named by Connection.
func regularHeaders(src http.Header) headerList {
	drop := slices.Clone(hopByHop)
	for _, v := range src.Values("Connection") {
		for tok := range strings.SplitSeq(v, ",") {
			drop = append(drop, strings.ToLower(strings.TrimSpace(tok)))
		}
	}
	names := make([]string, 0, len(src))
	for k := range src {
		names = append(names, k)
	}
	slices.SortFunc(names, func(a, b string) int { return strings.Compare(strings.ToLower(a), strings.ToLower(b)) })
	var out headerList
	for _, k := range names {
		lk := strings.ToLower(k)
		if slices.Contains(drop, lk) || lk == "host" {
			continue
		}
		for _, v := range src[k] {
			out.add(lk, v)
		}
	}
	return out
}

// requestHeaders builds what the ext_proc filter sees for r: pseudo-headers,
// the client's headers, and what Envoy's connection manager adds before the
// filter chain runs (x-forwarded-proto and x-request-id when absent).
func requestHeaders(r *http.Request) headerList {
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	path := r.RequestURI
	if !strings.HasPrefix(path, "/") {
		path = r.URL.RequestURI()
	}
	h := headerList{{":authority", r.Host}, {":path", path}, {":method", r.Method}, {":scheme", scheme}}
	for _, e := range regularHeaders(r.Header) {
		if e.key == "expect" && strings.EqualFold(e.value, "100-continue") {
			continue // Envoy answers 100-continue itself and drops the header
		}
		h.add(e.key, e.value)
	}
	if _, ok := h.get("content-length"); !ok && r.ContentLength > 0 {
		h.add("content-length", strconv.FormatInt(r.ContentLength, 10))
	}
	if _, ok := h.get("x-forwarded-proto"); !ok {
		h.add("x-forwarded-proto", scheme)
	}
	if _, ok := h.get("x-request-id"); !ok {
		h.add("x-request-id", newRequestID())
	}
	return h
}

// responseHeaders builds what the ext_proc filter sees for an upstream
// response: :status first, then the upstream's headers.
func responseHeaders(resp *http.Response) headerList {
	h := headerList{{":status", strconv.Itoa(resp.StatusCode)}}
	return append(h, regularHeaders(resp.Header)...)
}

// newRequestID returns a random UUIDv4 string, as Envoy's default request-ID
// extension generates.
func newRequestID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// errInvalidMutation marks a malformed header mutation; Envoy answers it with
// a 500 local reply.
var errInvalidMutation = errors.New("invalid header mutation")

// mutationRules selects which Envoy rule set applies to a mutation.
type mutationRules struct {
	// replacing is true for CONTINUE_AND_REPLACE, which may change :method.
	replacing bool
	// skipContentLength drops attempts to set content-length, as Envoy does
	// when the body mode makes content-length unreliable.
	skipContentLength bool
	// localReply applies to ImmediateResponse headers: no pseudo-header may
	// be touched.
	localReply bool
}

// applyMutation applies m to h under Envoy's default HeaderMutationRules: it
// ignores (and counts) changes to host, :authority, :method, :scheme and
// x-envoy-*, removal of any pseudo-header, appends to pseudo-headers, and
// invalid :scheme or :status values. Only the boolean append counts; values
// are read from raw_value. A malformed mutation (bad name or value, or both
// value and raw_value set) returns an error wrapping errInvalidMutation.
func (h *headerList) applyMutation(m *extprocv3.HeaderMutation, rules mutationRules) (ignored int, err error) {
	for _, name := range m.GetRemoveHeaders() {
		if !validHeaderName(name) {
			return ignored, fmt.Errorf("%w: remove_headers %q", errInvalidMutation, name)
		}
		key := strings.ToLower(name)
		if !rules.allows(opRemove, key, "") {
			ignored++
			continue
		}
		h.del(key)
	}
	for _, opt := range m.GetSetHeaders() {
		hv := opt.GetHeader()
		if hv == nil {
			continue
		}
		if hv.GetValue() != "" && len(hv.GetRawValue()) > 0 {
			return ignored, fmt.Errorf("%w: %q has both value and raw_value", errInvalidMutation, hv.GetKey())
		}
		key, value := strings.ToLower(hv.GetKey()), string(hv.GetRawValue())
		if !validHeaderName(hv.GetKey()) || !validHeaderValue(value) {
			return ignored, fmt.Errorf("%w: set_headers %q", errInvalidMutation, hv.GetKey())
		}
		if rules.skipContentLength && key == "content-length" {
			continue
		}
		_, exists := h.get(key)
		appendValue := opt.GetAppend().GetValue()
		op := opSet
		if appendValue && exists {
			op = opAppend
		}
		if !rules.allows(op, key, value) {
			ignored++
			continue
		}
		if appendValue {
			h.add(key, value)
		} else {
			h.set(key, value)
		}
	}
	return ignored, nil
}

type mutationOp int

const (
	opSet mutationOp = iota
	opAppend
	opRemove
)

// allows is Envoy's mutation-rules checker with default HeaderMutationRules.
func (r mutationRules) allows(op mutationOp, key, value string) bool {
	pseudo := strings.HasPrefix(key, ":")
	switch {
	case r.localReply && pseudo:
		return false
	case r.replacing && key == ":method" && op != opRemove:
		return true
	case op == opRemove && (pseudo || key == "host"):
		return false
	case key == "host" || key == ":authority" || key == ":method" || key == ":scheme":
		return false
	case pseudo && op == opAppend:
		return false
	case strings.HasPrefix(key, "x-envoy"):
		return false
	case key == ":status":
		code, err := strconv.Atoi(value)
		return err == nil && code >= 200 && code <= 999
	}
	return true
}

// validHeaderName reports whether name is an RFC 9110 token, optionally
// prefixed by ':' (a pseudo-header).
func validHeaderName(name string) bool {
	name = strings.TrimPrefix(name, ":")
	if name == "" {
		return false
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' ||
			strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0 {
			continue
		}
		return false
	}
	return true
}

// validHeaderValue applies Envoy's check: no NUL, CR or LF.
func validHeaderValue(v string) bool { return !strings.ContainsAny(v, "\x00\r\n") }
