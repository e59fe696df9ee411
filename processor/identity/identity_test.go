package identity

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

const sampleYAML = `
dimensions:
  tenant:
    - api_key: tenant
    - header: X-Tenant-Id
    - default: unknown
  team:
    - api_key: team
    - header: x-team-id
  user:
    - header: x-user-id
    - body_field: user
    - default: anonymous
  org:
    - jwt_claim: org.id
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

func headers(h map[string]string) func(string) string {
	return func(name string) string { return h[name] }
}

func TestResolveHeaders(t *testing.T) {
	r, err := compile(t, sampleYAML)
	require.NoError(t, err)
	claims := func(path string) string { return map[string]string{"org.id": "o-7"}[path] }

	tests := []struct {
		name    string
		hdr     map[string]string
		claim   func(string) string
		values  map[string]string
		pending []string
		missing []string
	}{
		{
			name:    "api key wins over header",
			hdr:     map[string]string{"authorization": "Bearer test", "x-tenant-id": "other"},
			claim:   claims,
			values:  map[string]string{"tenant": "acme", "team": "search", "org": "o-7"},
			pending: []string{"user"},
		},
		{
			name:    "unknown key falls through to header and default",
			hdr:     map[string]string{"authorization": "Bearer nope", "x-team-id": "ads", "x-user-id": " u1 "},
			values:  map[string]string{"tenant": "unknown", "team": "ads", "user": "u1"},
			missing: []string{"org"},
		},
		{
			name:    "nothing known",
			hdr:     map[string]string{},
			values:  map[string]string{"tenant": "unknown"},
			pending: []string{"user"},
			missing: []string{"org", "team"},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res := r.ResolveHeaders(Request{Header: headers(tt.hdr), Claim: tt.claim})
			assert.Equal(t, tt.values, res.Values)
			assert.Equal(t, tt.pending, res.Pending)
			assert.Equal(t, tt.missing, res.Missing)
		})
	}
}

func TestResolveBody(t *testing.T) {
	r, err := compile(t, sampleYAML)
	require.NoError(t, err)
	res := r.ResolveHeaders(Request{Header: headers(nil)})
	require.Equal(t, []string{"user"}, res.Pending)
	r.ResolveBody(&res, func(name string) string { return map[string]string{"user": "from-body"}[name] })
	assert.Equal(t, "from-body", res.Values["user"])
	assert.Empty(t, res.Pending)

	res = r.ResolveHeaders(Request{Header: headers(nil)})
	r.ResolveBody(&res, func(string) string { return "" })
	assert.Equal(t, "anonymous", res.Values["user"], "default after body_field")
	assert.Equal(t, []string{"user"}, r.BodyFields())
}

func TestCompileReportsEveryProblem(t *testing.T) {
	_, err := compile(t, `
dimensions:
  model:
    - header: x-model
  Team:
    - default: a
    - header: x-team
  user:
    - cookie: sid
  empty: []
api_keys:
  - sha256: abc
    values: {tenant: x}
`)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"identity.dimensions.model: model is a built-in dimension",
		"identity.dimensions.Team: dimension names",
		"identity.dimensions.Team[0]: line 6: default must be the last source",
		`identity.dimensions.user[0]: line 9: unknown source "cookie"`,
		"identity.dimensions.empty: no sources",
		"identity.api_keys[0]: line 12: sha256 must be 64 hex digits",
	} {
		assert.Contains(t, msg, want)
	}
}

func TestUnknownAPIKeyFieldIsAnError(t *testing.T) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte("api_keys:\n  - sha256: x\n    token: secret\n")))
	dec.KnownFields(true)
	err := dec.Decode(&c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 3: field token not found")
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

func TestDecodeReportsEveryBrokenDimension(t *testing.T) {
	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte("dimensions:\n  a: x\n  b:\n    - header: [1]\n  c:\n    - {header: h, default: d}\n")))
	dec.KnownFields(true)
	err := dec.Decode(&c)
	require.Error(t, err)
	for _, want := range []string{"line 2: a dimension is a list", "line 4: the argument of header must be a string", `line 6: each source is one "kind: argument" pair`} {
		assert.Contains(t, err.Error(), want)
	}
}
