package identity

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

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
    - headr: x-user
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
		`identity.dimensions.user[1]: line 10: unknown source "headr"; did you mean "header"? (want api_key`,
		"identity.api_keys[0]: line 13: sha256 must be 64 hex digits",
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

	err = yaml.Unmarshal([]byte("api_keys:\n  - sha265: x\n    values: {}\n"), &c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `line 2: field sha265 not found; did you mean "sha256"? (allowed: sha256, values)`)
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

func TestWithoutCredentialIsStrict(t *testing.T) {
	_, err := compile(t, `
dimensions:
  tenant:
    - api_key: tenant
      without_credential: true
    - jwt_claim: tenant
      without_credential: false
    - default: unknown
      without_credential: true
  user:
    - header: x-user-id
      without_credential: true
`)
	require.Error(t, err)
	msg := err.Error()
	for _, want := range []string{
		"identity.dimensions.tenant: line 5: without_credential applies only to header and body_field sources",
		"identity.dimensions.tenant: line 7: without_credential applies only",
		"identity.dimensions.tenant: line 9: without_credential applies only",
	} {
		assert.Contains(t, msg, want)
	}
	assert.NotContains(t, msg, "identity.dimensions.user")

	var c Config
	dec := yaml.NewDecoder(bytes.NewReader([]byte("dimensions:\n  a:\n    - header: h\n      without_credential: sometimes\n  b:\n    - header: h\n      without_credential: true\n      default: x\n")))
	dec.KnownFields(true)
	err = dec.Decode(&c)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 4: without_credential must be true or false")
	assert.Contains(t, err.Error(), `line 6: each source is one "kind: argument" pair`)
}

func TestControlCharactersInConfigValues(t *testing.T) {
	_, err := compile(t, "dimensions:\n  tenant:\n    - api_key: tenant\n    - default: \"a\\nb\"\napi_keys:\n  - sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08\n    values: {tenant: \"x\\ry\"}\n")
	require.Error(t, err)
	assert.Contains(t, err.Error(), "identity.dimensions.tenant[1]: line 4: default must not contain control characters")
	assert.Contains(t, err.Error(), `identity.api_keys[0]: line 6: the value for "tenant" must not contain control characters`)
}
