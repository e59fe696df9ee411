// Package identity attributes a request to scope values (tenant, team, user,
// use case, ...) from what Envoy already knows about it: the bearer token,
// JWT claims forwarded by jwt_authn, request headers, a field of the request
// body, or a default. It owns the `identity:` section of the configuration.
//
// Each dimension lists sources in order; the first source that yields a
// non-empty value wins. Sources available at request-headers time (api_key,
// jwt_claim, header, default) are tried by ResolveHeaders; a dimension that
// is still empty then and has a body_field source is left pending and
// finished by ResolveBody. A default source ends the list: sources after it
// are never reached. Bearer tokens are only ever handled as SHA-256 digests
// and are never logged or returned.
package identity

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
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

// Request is what ResolveHeaders reads from a request. Header names are
// lower-case. Claims looks up a (possibly dotted) JWT claim path.
type Request struct {
	Header func(name string) string
	Claim  func(path string) string
}

// Resolver is a compiled, immutable identity configuration.
type Resolver struct {
	dims    []dimension
	apiKeys map[[sha256.Size]byte]map[string]string
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
}

// ResolveHeaders fills every dimension whose sources are available at
// request-headers time.
func (r *Resolver) ResolveHeaders(req Request) Result {
	res := Result{Values: make(map[string]string, len(r.dims)+1)}
	var keyValues map[string]string
	keyLooked := false
	for _, d := range r.dims {
		value, pending := "", false
	sources:
		for _, s := range d.sources {
			switch s.Kind {
			case KindAPIKey:
				if !keyLooked {
					keyValues, keyLooked = r.lookupKey(req), true
				}
				value = keyValues[s.Arg]
			case KindJWTClaim:
				if req.Claim != nil {
					value = req.Claim(s.Arg)
				}
			case KindHeader:
				if req.Header != nil {
					value = strings.TrimSpace(req.Header(s.Arg))
				}
			case KindBodyField:
				pending = true
				break sources
			case KindDefault:
				value = s.Arg
			}
			if value != "" {
				break
			}
		}
		switch {
		case value != "":
			res.Values[d.name] = value
		case pending:
			res.Pending = append(res.Pending, d.name)
		default:
			res.Missing = append(res.Missing, d.name)
		}
	}
	return res
}

// ResolveBody finishes the pending dimensions of res with the request body:
// field returns the string value of a top-level body field ("" if absent).
// The sources after a body_field source are tried too, in order.
func (r *Resolver) ResolveBody(res *Result, field func(name string) string) {
	if len(res.Pending) == 0 {
		return
	}
	pending := res.Pending
	res.Pending = nil
	for _, name := range pending {
		d := r.find(name)
		value := ""
		reached := false
		for _, s := range d.sources {
			if s.Kind == KindBodyField {
				reached = true
			}
			if !reached {
				continue
			}
			switch s.Kind {
			case KindBodyField:
				value = strings.TrimSpace(field(s.Arg))
			case KindDefault:
				value = s.Arg
			}
			// Header-time sources after a body_field were already tried and
			// were empty; they cannot change now.
			if value != "" {
				break
			}
		}
		if value != "" {
			res.Values[name] = value
		} else {
			res.Missing = append(res.Missing, name)
		}
	}
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

func (r *Resolver) lookupKey(req Request) map[string]string {
	if len(r.apiKeys) == 0 || req.Header == nil {
		return nil
	}
	token, ok := BearerToken(req.Header("authorization"))
	if !ok {
		return nil
	}
	return r.apiKeys[sha256.Sum256([]byte(token))]
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

// ErrMissing is wrapped by the error that names missing dimensions.
var ErrMissing = errors.New("request identity incomplete")

// MissingError describes dimensions that stayed empty, for the 401 answer.
func MissingError(missing []string) error {
	return fmt.Errorf("%w: no value for %s (send the header or credentials that identify it)", ErrMissing, strings.Join(missing, ", "))
}
