package identity

import (
	"crypto/sha256"
	"fmt"
	"strings"
)

// ResolveHeaders fills every dimension it can at request-headers time and
// leaves those that need the body pending. It guarantees:
//
//   - An Authorization header, when some dimension has an api_key or
//     jwt_claim source, is a credential: it must be a known API key or come
//     with claims Envoy verified, else Result.Err wraps ErrCredential and
//     nothing is resolved. It is never skipped over to a weaker source.
//     Without an Authorization header, an x-api-key header (how Anthropic
//     SDKs send the key) is the credential, under the same rules.
//   - When the request carries no credential, a header or body_field source
//     listed after an api_key or jwt_claim source of the same dimension is
//     read only if it opts in (without_credential); otherwise it is
//     skipped and resolution goes on (a default still applies).
//   - A dimension header sent more than once with different values (as
//     separate entries or joined with ",") sets Result.Err (ErrConflict),
//     whether or not that header decides a dimension.
//   - No value in Result.Values contains control characters: such a value
//     sets Result.Err (ErrInvalidValue).
func (r *Resolver) ResolveHeaders(req Request) Result {
	res := Result{Values: make(map[string]string, len(r.dims)+1)}
	keyValues, credential, err := r.credential(req)
	if err != nil {
		res.Err = err
		return res
	}
	var buf [8]string
	headers := buf[:0]
	for _, name := range r.headers {
		v, err := headerValue(req.Header, name)
		if err != nil {
			res.Err = err
			return res
		}
		headers = append(headers, v)
	}
	res.credential = credential
	for _, d := range r.dims {
		w := walker{keyValues: keyValues, credential: credential, claim: req.Claim, headers: headers}
		value, at, pending := w.walk(d.sources)
		switch {
		case pending:
			res.Pending = append(res.Pending, d.name)
			if value != "" {
				res.fallbacks = append(res.fallbacks, fallback{dim: d.name, at: at, value: value})
			}
		case value == "":
			res.Missing = append(res.Missing, d.name)
		case !ValidValue(value) || len(value) > MaxValueLen:
			res.Err = invalidValue(d.name, d.sources[at], value)
			return res
		default:
			res.Values[d.name] = value
		}
	}
	return res
}

// ResolveBody finishes the pending dimensions of res with the request body:
// field returns the string value of a top-level body field ("" if absent).
// Each pending dimension's list is followed on from its first body_field
// source, in order and with the same no-credential rule as ResolveHeaders:
// body fields, and the header, api_key, jwt_claim or default values after
// them that ResolveHeaders already read.
func (r *Resolver) ResolveBody(res *Result, field func(name string) string) {
	if len(res.Pending) == 0 || res.Err != nil {
		return
	}
	for _, name := range res.Pending {
		d := r.find(name)
		fb := fallback{at: -1}
		for _, f := range res.fallbacks {
			if f.dim == name {
				fb = f
			}
		}
		value, src := "", Source{}
		authSeen := false
		for i, s := range d.sources {
			if i == fb.at {
				value, src = fb.value, s
				break
			}
			if s.Kind == KindAPIKey || s.Kind == KindJWTClaim {
				authSeen = true
			}
			if s.Kind != KindBodyField || skipped(s, authSeen, res.credential) {
				continue // header-time sources here were empty
			}
			if value = strings.TrimSpace(field(s.Arg)); value != "" {
				src = s
				break
			}
		}
		switch {
		case value == "":
			res.Missing = append(res.Missing, name)
		case !ValidValue(value) || len(value) > MaxValueLen:
			res.Err = invalidValue(name, src, value)
			res.Pending, res.fallbacks = nil, nil
			return
		default:
			res.Values[name] = value
		}
	}
	res.Pending, res.fallbacks = nil, nil
}

// skipped reports whether a source is passed over: a client-controlled
// source after an authenticated one, for a request without a credential,
// unless it opts in.
func skipped(s Source, authSeen bool, c credentialState) bool {
	return authSeen && c == noCredential && !s.WithoutCredential &&
		(s.Kind == KindHeader || s.Kind == KindBodyField)
}

// credentialState is what a request proves about who sends it.
type credentialState uint8

const (
	// noCredential: no Authorization header and no verified JWT.
	noCredential credentialState = iota
	// validCredential: a known API key or a JWT Envoy verified.
	validCredential
)

// credential classifies the request's credential and returns the API
// key's values when the bearer token is a known key. An Authorization
// header matters only when some source is api_key or jwt_claim.
func (r *Resolver) credential(req Request) (map[string]string, credentialState, error) {
	if !r.authenticated {
		return nil, noCredential, nil
	}
	verified := req.Claim != nil
	header, name := "authorization", "Authorization"
	auth, present, same := sameHeader(req, header)
	if !present {
		// Anthropic's SDKs send the key in x-api-key, not as a bearer
		// token: read it when there is no Authorization header.
		header, name = "x-api-key", "x-api-key"
		auth, present, same = sameHeader(req, header)
	}
	if !present {
		if verified {
			return nil, validCredential, nil
		}
		return nil, noCredential, nil
	}
	if !same {
		return nil, noCredential, fmt.Errorf("%w: the %s header was sent more than once with different values", ErrCredential, name)
	}
	token, ok := strings.TrimSpace(auth), true
	if header == "authorization" {
		token, ok = BearerToken(auth)
	}
	if ok {
		if values, known := r.apiKeys[sha256.Sum256([]byte(token))]; known {
			return values, validCredential, nil
		}
	}
	if verified {
		return nil, validCredential, nil
	}
	if header == "x-api-key" {
		return nil, noCredential, fmt.Errorf("%w: the x-api-key header is not a known API key", ErrCredential)
	}
	return nil, noCredential, fmt.Errorf("%w: the Authorization header is neither \"Bearer <token>\" with a known API key nor a JWT that Envoy verified", ErrCredential)
}

// sameHeader reads every occurrence of header: the last value, whether
// there is one, and whether all are the same.
func sameHeader(req Request, header string) (value string, present, same bool) {
	same = true
	if req.Header == nil {
		return "", false, true
	}
	for n := 0; ; n++ {
		v, ok := req.Header(header, n)
		if !ok {
			return value, present, same
		}
		if present && v != value {
			same = false
		}
		value, present = v, true
	}
}

// walker follows one dimension's source list at request-headers time.
type walker struct {
	keyValues  map[string]string
	credential credentialState
	claim      func(string) string
	headers    []string // values of Resolver.headers
}

// walk returns the first non-empty value and the index of its source. When
// a body_field source that is not skipped comes first, pending is true and
// value is what the sources after it give (the body phase's fallback).
func (w *walker) walk(sources []Source) (value string, at int, pending bool) {
	authSeen := false
	for i, s := range sources {
		v := ""
		switch s.Kind {
		case KindAPIKey:
			authSeen = true
			v = w.keyValues[s.Arg]
		case KindJWTClaim:
			authSeen = true
			if w.claim != nil {
				v = w.claim(s.Arg)
			}
		case KindHeader:
			if !skipped(s, authSeen, w.credential) {
				v = w.headers[s.hdr]
			}
		case KindBodyField:
			pending = pending || !skipped(s, authSeen, w.credential)
		case KindDefault:
			v = s.Arg
		}
		if v != "" {
			return v, i, pending
		}
	}
	return "", -1, pending
}

// headerValue is the value of a dimension header: every occurrence, and
// every comma-separated element of each (some proxies join repeats with
// ", "), trimmed; empty elements are ignored. They must all be equal.
func headerValue(get func(string, int) (string, bool), name string) (string, error) {
	if get == nil {
		return "", nil
	}
	value := ""
	for n := 0; ; n++ {
		raw, ok := get(name, n)
		if !ok {
			return value, nil
		}
		for part := range strings.SplitSeq(raw, ",") {
			part = strings.TrimSpace(part)
			switch {
			case part == "":
			case value == "":
				value = part
			case part != value:
				return "", fmt.Errorf("%w: %s was sent more than once with different values", ErrConflict, name)
			}
		}
	}
}

// MaxValueLen is the longest dimension value accepted, in bytes. A value
// becomes part of a counter's key in the store and of response headers;
// a client-chosen value of kilobytes is an attack on the store, not a
// name.
const MaxValueLen = 256

// invalidValue is the error for a dimension value with control characters
// or longer than MaxValueLen; it names where the value came from, never
// the value.
func invalidValue(dim string, src Source, value string) error {
	from := ""
	switch src.Kind {
	case KindHeader:
		from = " (header " + src.Arg + ")"
	case KindBodyField:
		from = " (body field " + src.Arg + ")"
	case KindJWTClaim:
		from = " (JWT claim " + src.Arg + ")"
	}
	if len(value) > MaxValueLen {
		return fmt.Errorf("%w: the value of %s%s is %d bytes long, more than %d", ErrInvalidValue, dim, from, len(value), MaxValueLen)
	}
	return fmt.Errorf("%w: the value of %s%s contains control characters", ErrInvalidValue, dim, from)
}
