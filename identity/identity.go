// Package identity attributes a request to scope values (tenant, team, user,
// use case, ...) from what Envoy already knows about it: the bearer token,
// JWT claims forwarded by jwt_authn, request headers, a field of the request
// body, or a default. It owns the `identity:` section of the configuration.
//
// Each dimension lists sources in order; the first source that yields a
// non-empty value wins. ResolveHeaders follows each list at request-headers
// time; a dimension that reaches a body_field source first is left pending
// and ResolveBody follows the rest of its list once the body is read. A
// default source ends the list.
//
// Identity cannot be borrowed: an Authorization header is a credential
// that must be valid (a known API key or a JWT Envoy verified) or the
// request is refused; without any credential, a source the client controls
// (header, body_field) listed after an authenticated one (api_key,
// jwt_claim) is read only where the configuration opts in; a dimension
// header sent twice with different values, and values with control
// characters, are refused. Bearer tokens are only ever handled as SHA-256
// digests and are never logged or returned.
package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"unicode"
)

// Source kinds.
const (
	KindAPIKey    = "api_key"
	KindJWTClaim  = "jwt_claim"
	KindHeader    = "header"
	KindBodyField = "body_field"
	KindDefault   = "default"
)

// ModelDimension is the built-in dimension holding the requested model. It is
// filled by the processor from the request body and cannot be configured.
const ModelDimension = "model"

// Request is what ResolveHeaders reads from a request.
type Request struct {
	// Header returns the n-th (from 0) occurrence of the request header
	// name (lower case) and true, or false past the last one. Envoy sends
	// each occurrence of a repeated header as its own entry.
	Header func(name string, n int) (string, bool)
	// Claim looks up a (possibly dotted) claim path of the JWT that Envoy's
	// jwt_authn verified. It is nil when Envoy forwarded no verified
	// claims: a non-nil Claim is what makes a JWT a credential.
	Claim func(path string) string
}

// Resolver is a compiled, immutable identity configuration.
type Resolver struct {
	dims    []dimension
	apiKeys map[[sha256.Size]byte]map[string]string
	// headers are the distinct header names of header sources, lower case;
	// Source.hdr indexes them.
	headers []string
	// authenticated: some dimension has an api_key or jwt_claim source, so
	// the Authorization header is spendguard's business.
	authenticated bool
}

type dimension struct {
	name    string
	sources []Source
}

// Dimensions lists the configured dimension names, sorted.
func (r *Resolver) Dimensions() []string {
	out := make([]string, len(r.dims))
	for i, d := range r.dims {
		out[i] = d.name
	}
	return out
}

// Result is the outcome of resolving one request's identity.
type Result struct {
	// Values holds every dimension resolved so far.
	Values map[string]string
	// Pending lists dimensions that wait for the request body (body_field).
	Pending []string
	// Missing lists dimensions with no value, no default and no body source.
	Missing []string
	// Err is set when the request must be refused whatever Missing says: a
	// credential that is present but invalid (wraps ErrCredential), a
	// dimension header sent with different values (ErrConflict), or a value
	// with control characters (ErrInvalidValue). Values is then incomplete.
	Err error

	// credential is what the request proved, for ResolveBody's
	// no-credential rule.
	credential credentialState
	// fallbacks holds, for the pending dimensions that have one, the value
	// a header-time source after the first body_field gave.
	fallbacks []fallback
}

// fallback is the value a pending dimension takes if the body fields
// listed before source at are empty.
type fallback struct {
	dim   string
	at    int // index of the source in the dimension's list
	value string
}

func (r *Resolver) find(name string) dimension {
	for _, d := range r.dims {
		if d.name == name {
			return d
		}
	}
	return dimension{name: name}
}

// BodyFields lists the body fields the pending dimensions read, so the
// processor decodes only those.
func (r *Resolver) BodyFields() []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range r.dims {
		for _, s := range d.sources {
			if s.Kind == KindBodyField && !seen[s.Arg] {
				seen[s.Arg] = true
				out = append(out, s.Arg)
			}
		}
	}
	sort.Strings(out)
	return out
}

// BearerToken extracts the token of an "Authorization: Bearer <token>"
// header value. The scheme is case-insensitive.
func BearerToken(authorization string) (string, bool) {
	scheme, token, ok := strings.Cut(strings.TrimSpace(authorization), " ")
	if !ok || !strings.EqualFold(scheme, "bearer") {
		return "", false
	}
	token = strings.TrimSpace(token)
	return token, token != ""
}

// HashToken returns the lower-case hex SHA-256 digest of a bearer token, as
// the api_keys table stores it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// Scope formats dimension values as "k=v,k=v" sorted by key, for messages.
func Scope(values map[string]string) string {
	keys := make([]string, 0, len(values))
	for k := range values {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteByte('=')
		b.WriteString(values[k])
	}
	return b.String()
}

// Errors that Result.Err and MissingError wrap.
var (
	// ErrMissing: a dimension has no value (401).
	ErrMissing = errors.New("request identity incomplete")
	// ErrCredential: an Authorization header is present but is neither a
	// known API key nor a JWT that Envoy verified (401).
	ErrCredential = errors.New("invalid credential")
	// ErrConflict: a dimension header was sent more than once with
	// different values (400).
	ErrConflict = errors.New("conflicting header")
	// ErrInvalidValue: a dimension value contains control characters or
	// is longer than MaxValueLen (400).
	ErrInvalidValue = errors.New("invalid dimension value")
)

// MissingError describes dimensions that stayed empty, for the 401 answer.
func MissingError(missing []string) error {
	return fmt.Errorf("%w: no value for %s (send the header or credentials that identify it)", ErrMissing, strings.Join(missing, ", "))
}

// ValidValue reports whether s may be a dimension (or model) value: it has
// no control characters (C0, DEL or C1), so it can go into a response
// header as it is. Bytes that are not UTF-8 are allowed, as Envoy allows
// them in header values.
func ValidValue(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c == 0x7f {
			return false
		}
		if c >= 0x80 {
			for _, r := range s[i:] {
				if unicode.IsControl(r) {
					return false
				}
			}
			return true
		}
	}
	return true
}
