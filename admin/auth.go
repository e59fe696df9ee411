package admin

import (
	"crypto/sha256"
	"crypto/subtle"
	"net/http"
	"slices"
	"strings"
)

// RequireToken guards every path under /v1/ of next, and each path in
// also (exactly: "/metrics"), with `Authorization: Bearer <token>` when
// token is not empty; other paths (health, the dashboard's files, and
// metrics unless listed) stay open. A missing or wrong token is answered
// 401 with `WWW-Authenticate: Bearer realm="spendguard"` and a JSON
// error. The comparison takes the same time whatever the token sent
// (both sides are hashed first, so neither its content nor its length
// shows in the timing).
func RequireToken(token string, next http.Handler, also ...string) http.Handler {
	if token == "" {
		return next
	}
	want := sha256.Sum256([]byte(token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.HasPrefix(r.URL.Path, "/v1/") && !slices.Contains(also, r.URL.Path) {
			next.ServeHTTP(w, r)
			return
		}
		got, ok := bearer(r.Header.Get("Authorization"))
		if !matches(want, got) || !ok {
			w.Header().Set("WWW-Authenticate", `Bearer realm="spendguard"`)
			msg := "this endpoint needs Authorization: Bearer <admin.token>"
			if ok {
				msg = "the bearer token is not admin.token"
			}
			writeError(w, http.StatusUnauthorized, "unauthorized", "unauthorized", msg)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// Authorized reports whether r carries `Authorization: Bearer <token>`,
// compared as RequireToken does. It is false when token is empty: with
// no admin.token nobody is known, so nothing reserved for the token's
// holders is shown.
func Authorized(token string, r *http.Request) bool {
	if token == "" {
		return false
	}
	got, ok := bearer(r.Header.Get("Authorization"))
	return matches(sha256.Sum256([]byte(token)), got) && ok
}

// matches compares a token's hash with what a caller sent, in constant
// time.
func matches(want [sha256.Size]byte, got string) bool {
	sum := sha256.Sum256([]byte(got))
	return subtle.ConstantTimeCompare(sum[:], want[:]) == 1
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
