package identity

import (
	"bytes"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

// sampleYAML mirrors the example configuration: tenant falls from
// authenticated sources to a header that does not opt in, team to one that
// does; project reads the body first, then a header.
const sampleYAML = `
dimensions:
  tenant:
    - api_key: tenant
    - jwt_claim: tenant
    - header: X-Tenant-Id
    - default: unknown
  team:
    - api_key: team
    - header: x-team-id
      without_credential: true
  user:
    - header: x-user-id
    - body_field: user
    - default: anonymous
  project:
    - body_field: project
    - header: x-project
    - default: none
  who:
    - jwt_claim: sub
    - body_field: who
    - header: x-who
    - default: nobody
api_keys:
  - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    values: {tenant: acme, team: search}
`

func compile(t *testing.T, src string) (*Resolver, error) {
	t.Helper()
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte(src)))
	dec.KnownFields(true)
	require.NoError(t, dec.Decode(&c))
	return c.Compile()
}

// headers serves name/value pairs as Envoy sends them: a repeated header
// is several entries.
func headers(kv ...string) func(string, int) (string, bool) {
	return func(name string, n int) (string, bool) {
		for i := 0; i+1 < len(kv); i += 2 {
			if kv[i] == name {
				if n == 0 {
					return kv[i+1], true
				}
				n--
			}
		}
		return "", false
	}
}

func claims(c map[string]string) func(string) string {
	return func(path string) string { return c[path] }
}

func TestResolveHeaders(t *testing.T) {
	r, err := compile(t, sampleYAML)
	require.NoError(t, err)
	verified := claims(map[string]string{"tenant": "globex", "sub": "u-9"})
	pending := []string{"project", "user", "who"}

	tests := []struct {
		name    string
		hdr     []string
		claim   func(string) string
		values  map[string]string
		pending []string
		missing []string
		err     error
	}{
		{
			name:    "api key wins over a different header",
			hdr:     []string{"authorization", "Bearer test", "x-tenant-id", "victim", "x-team-id", "other"},
			values:  map[string]string{"tenant": "acme", "team": "search"},
			pending: pending,
		},
		{
			name: "forged bearer with a victim's header is refused",
			hdr:  []string{"authorization", "Bearer forged", "x-tenant-id", "victim"},
			err:  ErrCredential,
		},
		{
			name: "unsigned JWT without verified claims is refused",
			hdr:  []string{"authorization", "Bearer eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJ2aWN0aW0ifQ.", "x-tenant-id", "victim"},
			err:  ErrCredential,
		},
		{name: "malformed authorization", hdr: []string{"authorization", "Basic dGVzdA=="}, err: ErrCredential},
		{name: "empty authorization", hdr: []string{"authorization", ""}, err: ErrCredential},
		{
			name: "authorization twice with different values",
			hdr:  []string{"authorization", "Bearer test", "authorization", "Bearer other"},
			err:  ErrCredential,
		},
		{
			name:    "authorization twice with the same key",
			hdr:     []string{"authorization", "Bearer test", "authorization", "Bearer test"},
			values:  map[string]string{"tenant": "acme", "team": "search"},
			pending: pending,
		},
		{
			name:    "verified JWT: its claim wins over the header",
			hdr:     []string{"authorization", "Bearer eyJ.verified.jwt", "x-tenant-id", "victim"},
			claim:   verified,
			values:  map[string]string{"tenant": "globex", "who": "u-9"},
			pending: []string{"project", "user"},
			missing: []string{"team"},
		},
		{
			name:    "verified claims without the Authorization header (jwt_authn removed it)",
			claim:   verified,
			values:  map[string]string{"tenant": "globex", "who": "u-9"},
			pending: []string{"project", "user"},
			missing: []string{"team"},
		},
		{
			name:    "valid credential without the dimension: later sources are tried",
			hdr:     []string{"x-tenant-id", "bob"},
			claim:   claims(map[string]string{"sub": "u-9"}),
			values:  map[string]string{"tenant": "bob", "who": "u-9"},
			pending: []string{"project", "user"},
			missing: []string{"team"},
		},
		{
			name:    "no credential: a header after api_key is not read unless it opts in",
			hdr:     []string{"x-tenant-id", "victim", "x-team-id", "ads"},
			values:  map[string]string{"tenant": "unknown", "team": "ads", "who": "nobody"},
			pending: []string{"project", "user"},
		},
		{
			name:    "no credential and nothing else",
			values:  map[string]string{"tenant": "unknown", "who": "nobody"},
			pending: []string{"project", "user"},
			missing: []string{"team"},
		},
		{
			name:    "a header before any authenticated source is read as before",
			hdr:     []string{"x-user-id", " u1 "},
			values:  map[string]string{"tenant": "unknown", "user": "u1", "who": "nobody"},
			pending: []string{"project"},
			missing: []string{"team"},
		},
		{
			name: "a dimension header twice with different values",
			hdr:  []string{"authorization", "Bearer test", "x-tenant-id", "acme", "x-tenant-id", "victim"},
			err:  ErrConflict,
		},
		{
			name: "different values joined by a proxy",
			hdr:  []string{"x-user-id", "bob, alice"},
			err:  ErrConflict,
		},
		{
			name:    "identical repeats, separate and joined",
			hdr:     []string{"x-user-id", "bob", "x-user-id", "bob, bob,", "x-team-id", "ads"},
			values:  map[string]string{"tenant": "unknown", "team": "ads", "user": "bob", "who": "nobody"},
			pending: []string{"project"},
		},
		{
			name: "control characters in a header value",
			hdr:  []string{"x-user-id", "bob\r\nx-spendguard-budget: none"},
			err:  ErrInvalidValue,
		},
		{
			name: "a header value longer than MaxValueLen",
			hdr:  []string{"x-user-id", strings.Repeat("v", MaxValueLen+1)},
			err:  ErrInvalidValue,
		},
		{
			name:    "a header value of exactly MaxValueLen",
			hdr:     []string{"x-user-id", strings.Repeat("v", MaxValueLen)},
			values:  map[string]string{"tenant": "unknown", "user": strings.Repeat("v", MaxValueLen), "who": "nobody"},
			pending: []string{"project"},
			missing: []string{"team"},
		},
		{
			name:  "control characters in a verified claim",
			claim: claims(map[string]string{"tenant": "a\x00b"}),
			err:   ErrInvalidValue,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.ResolveHeaders(Request{Header: headers(tt.hdr...), Claim: tt.claim})
			if tt.err != nil {
				require.ErrorIs(t, res.Err, tt.err)
				assert.NotContains(t, res.Err.Error(), "victim", "the refusal never echoes a value")
				assert.NotContains(t, res.Err.Error(), "forged", "nor a token")
				return
			}
			require.NoError(t, res.Err)
			assert.Equal(t, tt.values, res.Values)
			assert.Equal(t, tt.pending, res.Pending)
			assert.Equal(t, tt.missing, res.Missing)
		})
	}
}

func TestResolveBody(t *testing.T) {
	r, err := compile(t, sampleYAML)
	require.NoError(t, err)
	tests := []struct {
		name   string
		hdr    []string
		claim  func(string) string
		body   map[string]string
		values map[string]string // only the body-time dimensions
		err    error
	}{
		{
			name:   "body fields win",
			hdr:    []string{"x-project", "p-hdr"},
			body:   map[string]string{"user": "from-body", "project": "p-body", "who": "eve"},
			values: map[string]string{"user": "from-body", "project": "p-body", "who": "nobody"},
		},
		{
			name:   "a header after body_field is read when the body lacks the field",
			hdr:    []string{"x-project", "p-hdr"},
			values: map[string]string{"user": "anonymous", "project": "p-hdr", "who": "nobody"},
		},
		{
			name:   "defaults after body_field",
			values: map[string]string{"user": "anonymous", "project": "none", "who": "nobody"},
		},
		{
			name:   "no credential: body_field and header after jwt_claim are skipped",
			hdr:    []string{"x-who", "mallory"},
			body:   map[string]string{"who": "eve"},
			values: map[string]string{"user": "anonymous", "project": "none", "who": "nobody"},
		},
		{
			name:   "valid credential without the claim: body_field then header are tried",
			hdr:    []string{"authorization", "Bearer test", "x-who", "mallory"},
			body:   map[string]string{"who": "eve"},
			values: map[string]string{"user": "anonymous", "project": "none", "who": "eve"},
		},
		{
			name:   "valid credential, empty body field: the header after it",
			hdr:    []string{"authorization", "Bearer test", "x-who", "mallory"},
			body:   map[string]string{"who": "  "},
			values: map[string]string{"user": "anonymous", "project": "none", "who": "mallory"},
		},
		{
			name: "CR/LF in the body's user",
			body: map[string]string{"user": "bob\r\nx-spendguard-scope: all"},
			err:  ErrInvalidValue,
		},
		{
			name: "C1 control in the body's user",
			body: map[string]string{"user": "bob\u0085x"},
			err:  ErrInvalidValue,
		},
		{
			name:   "surrounding whitespace is trimmed, not refused",
			body:   map[string]string{"user": " bob\n"},
			values: map[string]string{"user": "bob", "project": "none", "who": "nobody"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.ResolveHeaders(Request{Header: headers(tt.hdr...), Claim: tt.claim})
			require.NoError(t, res.Err)
			require.NotEmpty(t, res.Pending)
			r.ResolveBody(&res, func(name string) string { return tt.body[name] })
			assert.Empty(t, res.Pending)
			if tt.err != nil {
				require.ErrorIs(t, res.Err, tt.err)
				assert.Contains(t, res.Err.Error(), "body field user")
				assert.NotContains(t, res.Err.Error(), "bob")
				return
			}
			require.NoError(t, res.Err)
			for dim, want := range tt.values {
				assert.Equal(t, want, res.Values[dim], dim)
			}
		})
	}
	assert.Equal(t, []string{"project", "user", "who"}, r.BodyFields())
}

func TestWithoutCredentialOptsBodyFieldIn(t *testing.T) {
	r, err := compile(t, `
dimensions:
  user:
    - api_key: user
    - body_field: user
      without_credential: true
    - header: x-user-id
    - default: nobody
`)
	require.NoError(t, err)
	res := r.ResolveHeaders(Request{Header: headers("x-user-id", "bob")})
	require.NoError(t, res.Err)
	r.ResolveBody(&res, func(string) string { return "carol" })
	assert.Equal(t, "carol", res.Values["user"], "the body field opted in")

	res = r.ResolveHeaders(Request{Header: headers("x-user-id", "bob")})
	r.ResolveBody(&res, func(string) string { return "" })
	assert.Equal(t, "nobody", res.Values["user"], "the header did not opt in")
}

func TestNoAuthenticatedSourceIgnoresAuthorization(t *testing.T) {
	r, err := compile(t, "dimensions:\n  tenant:\n    - header: x-tenant-id\n")
	require.NoError(t, err)
	res := r.ResolveHeaders(Request{Header: headers("authorization", "Basic whatever", "x-tenant-id", "acme")})
	require.NoError(t, res.Err)
	assert.Equal(t, map[string]string{"tenant": "acme"}, res.Values)
}

func TestValidValue(t *testing.T) {
	for _, tt := range []struct {
		in string
		ok bool
	}{
		{"acme", true}, {"bob@example.com", true}, {"Zoë 東京", true}, {"\xff\xfe", true},
		{"a\rb", false}, {"a\nb", false}, {"a\tb", false}, {"a\x00", false}, {"a\x7f", false}, {"é\u0085", false}, {"é\n", false},
	} {
		t.Run(tt.in, func(t *testing.T) { assert.Equal(t, tt.ok, ValidValue(tt.in)) })
	}
}

func TestBearerToken(t *testing.T) {
	tok, ok := BearerToken("bearer abc ")
	assert.True(t, ok)
	assert.Equal(t, "abc", tok)
	_, ok = BearerToken("Basic abc")
	assert.False(t, ok)
	_, ok = BearerToken("Bearer ")
	assert.False(t, ok)
	assert.Equal(t, "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08", HashToken("test"))
	assert.Equal(t, "team=a,tenant=b", Scope(map[string]string{"tenant": "b", "team": "a"}))
}
