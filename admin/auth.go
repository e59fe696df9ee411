package admin

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
)

// Role is which of the admin API's tokens a request carried.
type Role string

// The roles. RoleNone is also what every request gets when no token is
// configured (the API is then open and nobody is known).
const (
	RoleNone  Role = ""      // no token, a wrong one, or none configured
	RoleAdmin Role = "admin" // admin.token: may read and change
	RoleRead  Role = "read"  // admin.read_token: may only read
)

// Tokens are the admin API's bearer tokens (admin.token and
// admin.read_token); either may be empty. They must differ when both are
// set (the configuration refuses equal ones; here Admin would win).
type Tokens struct {
	// Admin may use every method: it reads and changes.
	Admin string
	// Read may use only the safe methods (GET, HEAD, OPTIONS).
	Read string
}

// Set reports whether at least one token is configured, that is whether
// the guarded paths are closed to anonymous callers.
func (t Tokens) Set() bool { return t.Admin != "" || t.Read != "" }

// Safe reports whether method only reads (GET, HEAD, OPTIONS: RFC 9110's
// safe methods, TRACE aside, which the admin server does not serve).
func Safe(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return true
	}
	return false
}

// Guard guards every path under /v1/ of next, and each path in also
// (exactly: "/metrics"), with `Authorization: Bearer <token>` when a
// token is set; other paths (health, the dashboard's files, and metrics
// unless listed) stay open.
//
// On a guarded path a safe method (GET, HEAD, OPTIONS) needs either
// token and any other method needs t.Admin. A missing or wrong token is
// answered 401 with `WWW-Authenticate: Bearer realm="spendguard"`; the
// read token on a method that changes something, or any caller's write
// when only the read token is set, is answered 403 (code forbidden).
// Both are JSON errors. The comparisons take the same time whatever
// the token sent (each side is hashed first, so neither its content nor
// its length shows in the timing, and both tokens are always compared).
//
// Every request, guarded or not, reaches next with its role (RoleOf):
// an open path such as /readyz can add detail for a token's holders.
// With no token set, reads are open and every role is RoleNone, but a
// method that changes something under /v1/ is refused 403: without
// admin.token nobody may write.
func Guard(t Tokens, next http.Handler, also ...string) http.Handler {
	if !t.Set() {
		// No token: reads stay open, as they always were; a change is
		// refused, as an admin API that anyone on the network could
		// write to would be a way around every budget.
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if strings.HasPrefix(r.URL.Path, "/v1/") && !Safe(r.Method) {
				writeError(w, http.StatusForbidden, "forbidden", "forbidden",
					"admin.token is not set, so nothing can be changed through the admin API")
				return
			}
			next.ServeHTTP(w, r)
		})
	}
	k := keys{admin: hashOf(t.Admin), read: hashOf(t.Read)}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		role := k.role(r)
		if role != RoleNone {
			r = r.WithContext(context.WithValue(r.Context(), roleKey{}, role))
		}
		if !strings.HasPrefix(r.URL.Path, "/v1/") && !slices.Contains(also, r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		switch {
		case role == RoleAdmin, role == RoleRead && Safe(r.Method):
			next.ServeHTTP(w, r)
		case role == RoleRead:
			writeError(w, http.StatusForbidden, "forbidden", "forbidden",
				"the bearer token is admin.read_token, which can only read (GET, HEAD, OPTIONS); "+r.Method+" needs admin.token")
		case !Safe(r.Method) && k.admin == nil:
			writeError(w, http.StatusForbidden, "forbidden", "forbidden",
				"admin.token is not set, so nothing can be changed through the admin API (admin.read_token can only read)")
		default:
			w.Header().Set("WWW-Authenticate", `Bearer realm="spendguard"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "unauthorized", unauthorized(t, r))
		}
	})
}

// unauthorized is the message of a 401: which token the request needs,
// or that the one sent is none of them.
func unauthorized(t Tokens, r *http.Request) string {
	if _, ok := bearer(r.Header.Get("Authorization")); ok {
		switch {
		case t.Admin != "" && t.Read != "":
			return "the bearer token is neither admin.token nor admin.read_token"
		case t.Admin != "":
			return "the bearer token is not admin.token"
		default:
			return "the bearer token is not admin.read_token"
		}
	}
	switch {
	case t.Admin != "" && t.Read != "" && Safe(r.Method):
		return "this endpoint needs Authorization: Bearer <admin.token or admin.read_token>"
	case t.Admin != "":
		return "this endpoint needs Authorization: Bearer <admin.token>"
	default:
		return "this endpoint needs Authorization: Bearer <admin.read_token>"
	}
}

// RoleOf returns the role Guard found for r: which token r carried,
// RoleNone without a valid one or when no token is configured (and for
// a request that did not pass through Guard).
func RoleOf(r *http.Request) Role {
	role, _ := r.Context().Value(roleKey{}).(Role)
	return role
}

// roleKey is the context key of a request's Role.
type roleKey struct{}

// keys are the hashes of the configured tokens (nil when not set).
type keys struct {
	admin, read *[sha256.Size]byte
}

// role compares what r sent with both tokens, always both, in constant
// time.
func (k keys) role(r *http.Request) Role {
	got, ok := bearer(r.Header.Get("Authorization"))
	if !ok {
		return RoleNone
	}
	sum := sha256.Sum256([]byte(got))
	isAdmin, isRead := matches(k.admin, sum), matches(k.read, sum)
	switch {
	case isAdmin:
		return RoleAdmin
	case isRead:
		return RoleRead
	}
	return RoleNone
}

// hashOf is a token's hash, nil for no token (which nothing matches).
func hashOf(token string) *[sha256.Size]byte {
	if token == "" {
		return nil
	}
	sum := sha256.Sum256([]byte(token))
	return &sum
}

// matches compares a token's hash with the hash of what a caller sent,
// in constant time; nothing matches an unset token.
func matches(want *[sha256.Size]byte, got [sha256.Size]byte) bool {
	if want == nil {
		return false
	}
	return subtle.ConstantTimeCompare(got[:], want[:]) == 1
}

// bearer returns the credentials of an Authorization header of the
// Bearer scheme (matched without regard to case, as RFC 9110 says).
func bearer(h string) (string, bool) {
	scheme, cred, ok := strings.Cut(strings.TrimSpace(h), " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	cred = strings.TrimSpace(cred)
	return cred, cred != ""
}
