package processor_test

import (
	"context"
	"strings"
	"testing"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/structpb"

	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/internal/money"
)

// acmeToken is the API key of the identity tests; the configuration holds
// only its SHA-256.
const acmeToken = "sk-acme-0123456789"

// identityConfig is the example's tenant list (api_key, jwt_claim, a
// header that does not opt in, a default) and a user read from the body,
// then a header, then a default. %s is replaced by the tenant header's
// extra keys and the tenant default.
const identityConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - api_key: tenant
      - jwt_claim: tenant
      - header: x-tenant-id%s
    user:
      - body_field: user
      - header: x-user-id
      - default: nobody
  api_keys:
    - sha256: ` + "%s" + `
      values: {tenant: acme}
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1
  - name: user-daily
    match: {user: "*"}
    period: day
    hard_usd: 1
`

func identityHarness(t *testing.T, tenantTail string) *harness {
	t.Helper()
	return newHarness(t, strings.Replace(strings.Replace(identityConfig, "%s", tenantTail, 1), "%s", identity.HashToken(acmeToken), 1))
}

const (
	withDefault      = "\n      - default: unknown"
	optedIn          = "\n        without_credential: true\n      - default: unknown"
	withoutDefault   = ""
	identityChatBody = `{"model":"Hunyuan","max_tokens":100,"messages":[{"role":"user","content":"hi"}]}`
)

// spent returns what the budget's counter for dims has committed.
func (h *harness) spent(dims map[string]string) money.Nano {
	h.t.Helper()
	dims["model"] = "Hunyuan"
	scopes := h.cfg.Snapshot.Budgets.Applicable(dims)
	require.Len(h.t, scopes, 1, "%v", dims)
	st, err := h.engine.Status(context.Background(), scopes)
	require.NoError(h.t, err)
	return st[0].Counter.Committed
}

// request sends a whole request with md as jwt_authn's metadata (nil for
// none) and returns Envoy's local reply, or nil when the request was
// served (it then used 100 output tokens and is settled).
func (h *harness) request(md *corev3.Metadata, body string, kv ...string) *extprocv3.ImmediateResponse {
	h.t.Helper()
	s, cancel := h.open()
	defer cancel()
	first := reqHeaders("/v1/chat/completions", kv...)
	first.MetadataContext = md
	if ir := h.roundTrip(s, first).GetImmediateResponse(); ir != nil {
		return ir
	}
	if ir := h.roundTrip(s, reqBody(body)).GetImmediateResponse(); ir != nil {
		return ir
	}
	h.roundTrip(s, respHeaders("200"))
	h.roundTrip(s, respBody([]byte(`{"usage":{"prompt_tokens":0,"completion_tokens":100}}`), true))
	<-h.reports
	return nil
}

// verifiedJWT is what Envoy's jwt_authn (payload_in_metadata: jwt) forwards
// once it has verified a token.
func verifiedJWT(t *testing.T, claims map[string]any) *corev3.Metadata {
	t.Helper()
	st, err := structpb.NewStruct(map[string]any{"jwt": claims})
	require.NoError(t, err)
	return &corev3.Metadata{FilterMetadata: map[string]*structpb.Struct{"envoy.filters.http.jwt_authn": st}}
}

func setHeaders(ir *extprocv3.ImmediateResponse) map[string]string {
	got := map[string]string{}
	for _, o := range ir.GetHeaders().GetSetHeaders() {
		got[o.GetHeader().GetKey()] = string(o.GetHeader().GetRawValue())
	}
	return got
}

const perRequest = money.Nano(100 * 800) // 100 output tokens at 0.80 USD/M

func TestIdentityCannotBeBorrowed(t *testing.T) {
	const unsignedJWT = "eyJhbGciOiJub25lIn0.eyJ0ZW5hbnQiOiJ2aWN0aW0ifQ."
	tests := []struct {
		name    string
		config  string
		md      bool // Envoy forwarded verified claims {tenant: globex}
		body    string
		headers []string
		status  int    // 0: served
		code    string // of the refusal
		tenant  string // charged when served
		user    string
	}{
		{name: "forged bearer and a victim's header", config: withDefault,
			headers: []string{"authorization", "Bearer sk-forged", "x-tenant-id", "victim"}, status: 401, code: "invalid_api_key"},
		{name: "unsigned JWT without verified claims", config: optedIn,
			headers: []string{"authorization", "Bearer " + unsignedJWT, "x-tenant-id", "victim"}, status: 401, code: "invalid_api_key"},
		{name: "forged x-api-key and a victim's header", config: withDefault,
			headers: []string{"x-api-key", "sk-forged", "x-tenant-id", "victim"}, status: 401, code: "invalid_api_key"},
		{name: "x-api-key sent twice with different values", config: withDefault,
			headers: []string{"x-api-key", acmeToken, "x-api-key", "sk-other"}, status: 401, code: "invalid_api_key"},
		{name: "valid x-api-key (Anthropic SDKs)", config: optedIn,
			headers: []string{"x-api-key", acmeToken, "x-tenant-id", "victim"}, tenant: "acme", user: "nobody"},
		{name: "authorization wins over x-api-key", config: optedIn,
			headers: []string{"authorization", "Bearer sk-forged", "x-api-key", acmeToken}, status: 401, code: "invalid_api_key"},
		{name: "malformed authorization", config: withDefault,
			headers: []string{"authorization", "Token abc", "x-tenant-id", "victim"}, status: 401, code: "invalid_api_key"},
		{name: "no token: the header is not read, the default pays", config: withDefault,
			headers: []string{"x-tenant-id", "victim"}, tenant: "unknown", user: "nobody"},
		{name: "no token and no default", config: withoutDefault,
			headers: []string{"x-tenant-id", "victim"}, status: 401, code: "unauthorized"},
		{name: "no token, the header opted in", config: optedIn,
			headers: []string{"x-tenant-id", "victim"}, tenant: "victim", user: "nobody"},
		{name: "valid key wins over a different header", config: optedIn,
			headers: []string{"authorization", "Bearer " + acmeToken, "x-tenant-id", "victim"}, tenant: "acme", user: "nobody"},
		{name: "verified JWT claim wins over the header", config: optedIn, md: true,
			headers: []string{"authorization", "Bearer eyJ.verified.jwt", "x-tenant-id", "victim"}, tenant: "globex", user: "nobody"},
		{name: "dimension header twice with different values", config: optedIn,
			headers: []string{"x-tenant-id", "bob", "x-tenant-id", "victim"}, status: 400, code: "conflicting_header"},
		{name: "dimension header twice with the same value", config: optedIn,
			headers: []string{"x-tenant-id", "bob", "x-tenant-id", "bob"}, tenant: "bob", user: "nobody"},
		{name: "body_field, then header: the header", config: withDefault,
			headers: []string{"x-user-id", "bob"}, tenant: "unknown", user: "bob"},
		{name: "body_field, then header: the body", config: withDefault,
			body:    `{"model":"Hunyuan","max_tokens":100,"user":"carol","messages":[]}`,
			headers: []string{"x-user-id", "bob"}, tenant: "unknown", user: "carol"},
		{name: "CR/LF in the body's user", config: withDefault,
			body:   `{"model":"Hunyuan","max_tokens":100,"user":"bob\r\nx-spendguard-budget: none","messages":[]}`,
			status: 400, code: "invalid_value"},
		{name: "CR/LF in the model", config: withDefault,
			body:   `{"model":"Hunyuan\r\nx: y","max_tokens":100,"messages":[]}`,
			status: 400, code: "invalid_value"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := identityHarness(t, tt.config)
			var md *corev3.Metadata
			if tt.md {
				md = verifiedJWT(t, map[string]any{"tenant": "globex"})
			}
			body := tt.body
			if body == "" {
				body = identityChatBody
			}
			ir := h.request(md, body, tt.headers...)
			victim := money.Nano(0)
			if tt.tenant == "victim" {
				victim = perRequest
			}
			assert.Equal(t, victim, h.spent(map[string]string{"tenant": "victim"}),
				"victim is charged only where the configuration lets clients choose")
			if tt.status != 0 {
				require.NotNil(t, ir, "refused")
				assert.EqualValues(t, tt.status, ir.GetStatus().GetCode())
				assert.Contains(t, string(ir.GetBody()), `"code":"`+tt.code+`"`)
				assert.NotContains(t, string(ir.GetBody()), "sk-forged", "a token is never echoed")
				for k, v := range setHeaders(ir) {
					assert.False(t, strings.ContainsAny(v, "\r\n"), "%s: %q", k, v)
				}
				return
			}
			require.Nil(t, ir, "served: %s", ir.GetBody())
			assert.Equal(t, perRequest, h.spent(map[string]string{"tenant": tt.tenant}))
			assert.Equal(t, perRequest, h.spent(map[string]string{"user": tt.user}))
		})
	}
}

// TestNoRetryAfterWhenTheRequestAloneExceedsTheCap: a request whose worst
// case is more than the whole cap gets a 402 without retry-after (no reset
// lets it through) and a message saying why; a request that fits the cap
// but not what is left keeps its retry-after.
func TestNoRetryAfterWhenTheRequestAloneExceedsTheCap(t *testing.T) {
	h := newHarness(t, `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 0.05
`)
	// 100,000 output tokens at 0.80/M: 0.08 USD, more than the 0.05 cap.
	ir := h.request(nil, `{"model":"Hunyuan","max_tokens":100000,"messages":[]}`, "x-tenant-id", "acme")
	require.NotNil(t, ir)
	assert.EqualValues(t, 402, ir.GetStatus().GetCode())
	got := setHeaders(ir)
	assert.NotContains(t, got, "retry-after")
	assert.Equal(t, "tenant=acme", got["x-spendguard-scope"])
	assert.Regexp(t, `can never cover this request for tenant=acme: the request alone may cost up to 0\.080\d+ USD, more than the budget's whole cap of 0\.050000 USD today`, string(ir.GetBody()))

	// 50,000 tokens (0.04 USD) fit the cap but not beside another such
	// request in flight.
	s, cancel := h.open()
	defer cancel()
	h.roundTrip(s, reqHeaders("/v1/chat/completions", "x-tenant-id", "acme"))
	require.NotNil(t, h.roundTrip(s, reqBody(`{"model":"Hunyuan","max_tokens":50000,"messages":[]}`)).GetRequestBody())
	ir = h.request(nil, `{"model":"Hunyuan","max_tokens":50000,"messages":[]}`, "x-tenant-id", "acme")
	require.NotNil(t, ir)
	assert.EqualValues(t, 402, ir.GetStatus().GetCode())
	assert.NotEmpty(t, setHeaders(ir)["retry-after"], "waiting for the reset helps this one")
}
