package e2e

import (
	"net/http"
	"os"
	"path/filepath"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// The API key of the test; the configuration holds only its SHA-256.
const aliceToken = "sk-test-alice-0123456789"

// identityConfig attributes the user dimension from, in order: the API
// key, a nested JWT claim, a header, the body's "user" field; the last two
// are read also for requests without a credential (without_credential).
// The key also gives a team.
var identityConfig = `version: 1
identity:
  dimensions:
    user:
      - api_key: user
      - jwt_claim: user.email
      - header: x-user-id
        without_credential: true
      - body_field: user
        without_credential: true
    team:
      - api_key: team
      - default: none
  api_keys:
    - sha256: ` + identity.HashToken(aliceToken) + `
      values: {user: alice, team: search}
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
budgets:
  - name: user-daily
    match: {user: "*"}
    period: day
    hard_usd: 100
  - name: team-daily
    match: {team: "*"}
    period: day
    hard_usd: 100
`

// One request body for every case, with OpenAI's "user" field.
const attributedChat = `{"model":"Hunyuan","max_tokens":100,"user":"body-dave","messages":[{"role":"user","content":"hi"}]}`

// jwtMetadata is what Envoy's jwt_authn (payload_in_metadata: jwt) puts in
// the metadata context it forwards to ext_proc.
func jwtMetadata(t *testing.T, payload map[string]any) *corev3.Metadata {
	t.Helper()
	st, err := structpb.NewStruct(map[string]any{"jwt": payload})
	require.NoError(t, err)
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": st}}
}

// TestTheSameRequestIsAttributedFromEachSource sends the same request
// through the stack four times, each time with only one identity source
// available, and checks that each lands on its own counters.
func TestTheSameRequestIsAttributedFromEachSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(identityConfig), 0o600))
	s := startLive(t, path)
	withJWT := s.listener(jwtMetadata(t, map[string]any{
		"sub": "1234", "user": map[string]any{"email": "bob@example.com"}}))

	usage := []string{fakevllm.HeaderPromptTokens, "0", fakevllm.HeaderCompletionTokens, "1000"}
	const cost = money.Nano(800_000) // 1000 tokens at 0.80 USD/M
	tests := []struct {
		name     string
		via      func(headers ...string) response
		headers  []string
		user     string
		team     string
		teamCost money.Nano
	}{
		{"api key", s.viaDefault, []string{"authorization", "Bearer " + aliceToken, "x-user-id", "ignored"}, "alice", "search", cost},
		{"jwt claim in metadata", func(h ...string) response {
			return s.postVia(withJWT, "/v1/chat/completions", attributedChat, h...)
		}, []string{"x-user-id", "ignored"}, "bob@example.com", "none", cost},
		{"header", s.viaDefault, []string{"x-user-id", "carol"}, "carol", "none", 2 * cost},
		{"body user field", s.viaDefault, nil, "body-dave", "none", 3 * cost},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			resp := tc.via(append(append([]string(nil), tc.headers...), usage...)...)
			require.Equal(t, http.StatusOK, resp.status, string(resp.body))
			assert.Equal(t, cost, s.spent("user-daily", map[string]string{"user": tc.user}))
			assert.Equal(t, tc.teamCost, s.spent("team-daily", map[string]string{"team": tc.team}),
				"the team counter (none is shared by every request without a key)")
		})
	}

	require.Eventually(t, func() bool { return len(s.reports.all()) == len(tests) }, liveWait, reloadDebounce)
	var scopes []string
	for _, r := range s.reports.all() {
		scopes = append(scopes, identity.Scope(r.GetScope()))
	}
	assert.ElementsMatch(t, []string{
		"team=search,user=alice",
		"team=none,user=bob@example.com",
		"team=none,user=carol",
		"team=none,user=body-dave",
	}, scopes)
	assert.NotContains(t, s.logs.String(), aliceToken, "the bearer token is never logged")
}

// TestMissingIdentityIs401 sends a request with no source for a
// dimension without a default.
func TestMissingIdentityIs401(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(identityConfig), 0o600))
	s := startLive(t, path)
	before := s.vllm.Count()
	resp := s.post("/v1/chat/completions", smallChat)
	assert.Equal(t, http.StatusUnauthorized, resp.status)
	assert.Contains(t, string(resp.body), `"type":"unauthorized"`)
	assert.Contains(t, string(resp.body), "user")
	assert.Equal(t, before, s.vllm.Count(), "never sent upstream")

	// An unknown key is refused, never attributed from the header after it.
	resp = s.post("/v1/chat/completions", attributedChat, "authorization", "Bearer sk-unknown-key", "x-user-id", "carol")
	assert.Equal(t, http.StatusUnauthorized, resp.status)
	assert.Contains(t, string(resp.body), `"code":"invalid_api_key"`)
	assert.NotContains(t, string(resp.body), "sk-unknown-key")
	assert.Equal(t, before, s.vllm.Count(), "never sent upstream")

	// A JWT without the claim is no source either.
	noClaim := s.listener(jwtMetadata(t, map[string]any{"sub": "1234"}))
	resp = s.postVia(noClaim, "/v1/chat/completions", smallChat)
	assert.Equal(t, http.StatusUnauthorized, resp.status)
}

func (s *liveStack) viaDefault(headers ...string) response {
	return s.post("/v1/chat/completions", attributedChat, headers...)
}

// TestHostileIdentityValuesAre400 sends, through the stack, a dimension
// header whose repeats a proxy joined with different values, and a body
// "user" with CR/LF: both are refused before the model, and nothing of
// them reaches a response header.
func TestHostileIdentityValuesAre400(t *testing.T) {
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(identityConfig), 0o600))
	s := startLive(t, path)
	before := s.vllm.Count()

	resp := s.post("/v1/chat/completions", smallChat, "x-user-id", "carol, mallory")
	assert.Equal(t, http.StatusBadRequest, resp.status)
	assert.Contains(t, string(resp.body), `"code":"conflicting_header"`)
	assert.Contains(t, string(resp.body), "x-user-id")

	resp = s.post("/v1/chat/completions", `{"model":"Hunyuan","max_tokens":10,"user":"bob\r\nx-spendguard-budget: none","messages":[]}`)
	assert.Equal(t, http.StatusBadRequest, resp.status)
	assert.Contains(t, string(resp.body), `"code":"invalid_value"`)
	assert.Empty(t, resp.header.Get("x-spendguard-budget"))
	assert.Equal(t, before, s.vllm.Count(), "never sent upstream")
}
