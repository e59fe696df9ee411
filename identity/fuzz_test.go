package identity

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// FuzzResolve resolves random header sets, claims and body fields with the
// sample configuration and checks what must hold whatever the client
// sends: nothing panics, no value has control characters, a client without
// a credential never chooses its tenant, and an Authorization header that
// is not the known key, without verified claims, is always refused.
func FuzzResolve(f *testing.F) {
	r, err := compile(&testing.T{}, sampleYAML)
	require.NoError(f, err)
	names := []string{"authorization", "x-tenant-id", "x-team-id", "x-user-id", "x-project", "x-who"}
	f.Add("\x01victim\x00\x02ads", "bob", "", false)
	f.Add("\x00Bearer test\x00\x01victim", "a\r\nb", "", false)
	f.Add("\x00Bearer forged\x00\x01victim", "", "t", true)
	f.Add("\x03a, b\x00\x03a", "x\u0085", "a\x00", true)
	f.Fuzz(func(t *testing.T, hdrs, body, claim string, withClaims bool) {
		var kv []string
		for entry := range strings.SplitSeq(hdrs, "\x00") {
			if entry == "" {
				continue
			}
			kv = append(kv, names[int(entry[0])%len(names)], entry[1:])
		}
		req := Request{Header: headers(kv...)}
		if withClaims {
			req.Claim = func(string) string { return claim }
		}
		res := r.ResolveHeaders(req)
		r.ResolveBody(&res, func(string) string { return body })
		if res.Err != nil {
			return
		}
		for dim, v := range res.Values {
			if !ValidValue(v) || v == "" {
				t.Fatalf("%s = %q", dim, v)
			}
		}
		auth, hasAuth := req.Header("authorization", 0)
		switch {
		case !hasAuth && !withClaims:
			require.Equal(t, "unknown", res.Values["tenant"], "no credential: the tenant header is not read")
		case hasAuth && !withClaims:
			token, _ := BearerToken(auth)
			require.Equal(t, "test", token, "any other Authorization is refused")
			require.Equal(t, "acme", res.Values["tenant"])
		}
	})
}
