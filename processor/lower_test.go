package processor_test

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
)

// Serving a request with its output limit lowered to what a budget with
// on_hard.lower_output_limit can pay, over real gRPC.

// lowerConfig prices an output token at 0.001 USD and an input token at
// 0.000001 USD, so a 1 USD cap pays 999 output tokens beside a short
// prompt; a request that states no limit reserves 5000.
const lowerConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - match: Hunyuan
      input: 1
      output: 1000
  default_max_output_tokens: 5000
budgets:
  - name: tenant-daily
    match: {tenant: "*"}
    period: day
    hard_usd: 1
    on_hard: {lower_output_limit: true}
`

// lowerPrompt is a short chat conversation.
const lowerPrompt = `"messages":[{"role":"user","content":"Hi"}]`

// lowerExchange sends body to path for tenant acme; when admitted it
// answers with a 200 whose usage is completion tokens (and 5 prompt
// tokens), and returns the forwarded body (nil: as sent) and the headers
// spendguard set on the response; when refused, the refusal.
func lowerExchange(t *testing.T, h *harness, path, body string, completion int64) (forwarded []byte, set map[string]string, refused *extprocv3.ImmediateResponse) {
	t.Helper()
	s, cancel := h.open()
	defer cancel()
	if ir := h.roundTrip(s, reqHeaders(path, "x-tenant-id", "acme")).GetImmediateResponse(); ir != nil {
		<-h.reports
		return nil, nil, ir // refused at the request headers
	}
	resp := h.roundTrip(s, reqBody(body))
	if ir := resp.GetImmediateResponse(); ir != nil {
		<-h.reports
		return nil, nil, ir
	}
	rb := resp.GetRequestBody()
	require.NotNil(t, rb)
	if m := rb.GetResponse().GetBodyMutation(); m != nil {
		forwarded = m.GetBody()
		assertContentLength(t, rb.GetResponse(), len(forwarded))
	}
	rh := h.roundTrip(s, respHeaders("200")).GetResponseHeaders()
	require.NotNil(t, rh)
	set = map[string]string{}
	for _, o := range rh.GetResponse().GetHeaderMutation().GetSetHeaders() {
		set[o.GetHeader().GetKey()] = string(o.GetHeader().GetRawValue())
	}
	usage := fmt.Sprintf(`{"usage":{"prompt_tokens":5,"completion_tokens":%d,"input_tokens":5,"output_tokens":%d}}`, completion, completion)
	h.roundTrip(s, respBody([]byte(usage), true))
	<-h.reports
	return forwarded, set, nil
}

// commitSpend commits amount on tenant acme's budgets.
func (h *harness) commitSpend(amount money.Nano) {
	h.t.Helper()
	scopes := h.cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	res, rej, err := h.engine.Reserve(context.Background(), h.cfg.Snapshot.Budgets, scopes, "Hunyuan", amount, "seed")
	require.NoError(h.t, err)
	require.Nil(h.t, rej)
	require.NoError(h.t, h.engine.Settle(context.Background(), res, amount))
}

// TestOutputLimitLowered: a request whose output limit the budget cannot
// pay is served with the largest limit it can pay, written over the
// stated value (every other byte kept) or added where spendguard adds the
// limit of a request that states none, and announced with the limit it
// replaced; the reparsed forwarded request fits the cap in its worst case,
// and the charge, even for an upstream that ignored the limit, stays
// within the cap.
func TestOutputLimitLowered(t *testing.T) {
	const chatHi = `{"model":"Hunyuan",%s,` + lowerPrompt + `}`
	for _, tc := range []struct {
		name, path, body, want string
		limit, from            string
	}{
		{"chat max_tokens", "/v1/chat/completions",
			fmt.Sprintf(chatHi, `"max_tokens":5000`), fmt.Sprintf(chatHi, `"max_tokens":999`), "999", "5000"},
		{"chat max_completion_tokens, spaced", "/v1/chat/completions",
			fmt.Sprintf(chatHi, `"max_completion_tokens" :  5000 `), fmt.Sprintf(chatHi, `"max_completion_tokens" :  999 `), "999", "5000"},
		{"chat, both stated: the smaller one is kept", "/v1/chat/completions",
			fmt.Sprintf(chatHi, `"max_tokens":10,"max_completion_tokens":5000`), fmt.Sprintf(chatHi, `"max_tokens":10,"max_completion_tokens":999`), "999", "5000"},
		{"chat, both above: both lowered", "/v1/chat/completions",
			fmt.Sprintf(chatHi, `"max_completion_tokens":4000,"max_tokens":6000`), fmt.Sprintf(chatHi, `"max_completion_tokens":999,"max_tokens":999`), "999", "6000"},
		{"chat, duplicate keys: the last is lowered", "/v1/chat/completions",
			fmt.Sprintf(chatHi, `"max_tokens":1,"max_tokens":5000`), fmt.Sprintf(chatHi, `"max_tokens":1,"max_tokens":999`), "999", "5000"},
		{"chat states none: the default is lowered", "/v1/chat/completions",
			`{"model":"Hunyuan",` + lowerPrompt + `}`, `{"model":"Hunyuan",` + lowerPrompt + `,"max_completion_tokens":999}`, "999", "5000"},
		{"chat, n=2: per sequence", "/v1/chat/completions",
			fmt.Sprintf(chatHi, `"n":2,"max_tokens":5000`), fmt.Sprintf(chatHi, `"n":2,"max_tokens":499`), "499", "5000"},
		{"completions, two prompts", "/v1/completions",
			`{"model":"Hunyuan","prompt":["a","b"],"max_tokens":3000}`, `{"model":"Hunyuan","prompt":["a","b"],"max_tokens":499}`, "499", "3000"},
		{"responses", "/v1/responses",
			`{"model":"Hunyuan","input":"Hi","max_output_tokens":5000}`, `{"model":"Hunyuan","input":"Hi","max_output_tokens":999}`, "999", "5000"},
		{"messages", "/v1/messages",
			fmt.Sprintf(chatHi, `"max_tokens":5000`), fmt.Sprintf(chatHi, `"max_tokens":999`), "999", "5000"},
		{"generate", "/inference/v1/generate",
			`{"model":"Hunyuan","token_ids":[1,2],"sampling_params":{"max_tokens":5000,"n":1}}`,
			`{"model":"Hunyuan","token_ids":[1,2],"sampling_params":{"max_tokens":999,"n":1}}`, "999", "5000"},
		{"generate states none", "/inference/v1/generate",
			`{"model":"Hunyuan","token_ids":[1,2]}`, `{"model":"Hunyuan","token_ids":[1,2],"sampling_params":{"max_tokens":999}}`, "999", "5000"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, lowerConfig)
			e := endpointOf(t, tc.path)
			asked, err := pricing.ParseRequest(e, []byte(tc.body))
			require.NoError(t, err)
			limit, err := strconv.ParseInt(tc.limit, 10, 64)
			require.NoError(t, err)
			// The upstream generates every token the lowered limit allows.
			fwd, set, refused := lowerExchange(t, h, tc.path, tc.body, limit*asked.N*int64(asked.Prompts))
			require.Nil(t, refused, "served, not refused")
			assert.Equal(t, tc.want, string(fwd))
			assert.Equal(t, tc.limit, set["x-spendguard-max-tokens"])
			assert.Equal(t, tc.from, set["x-spendguard-max-tokens-lowered-from"])
			assert.Equal(t, "tenant-daily", set["x-spendguard-budget"])

			req, err := pricing.ParseRequest(e, fwd)
			require.NoError(t, err)
			price, ok := h.cfg.Snapshot.Pricing.Lookup("Hunyuan")
			require.True(t, ok)
			assert.LessOrEqual(t, price.Cost(req.WorstCase(h.cfg.Snapshot.Pricing.DefaultMaxOutputTokens())).Total, money.PerUSD,
				"the forwarded request's worst case fits the cap")
			spent := h.spend("acme")
			assert.Zero(t, spent.Reserved)
			assert.Positive(t, spent.Committed)
			assert.LessOrEqual(t, spent.Committed, money.PerUSD, "never charged above the cap")
		})
	}
}

// endpointOf is the kind of the test paths.
func endpointOf(t *testing.T, path string) pricing.Endpoint {
	t.Helper()
	for e, p := range map[pricing.Endpoint]string{
		pricing.ChatCompletions: "/v1/chat/completions", pricing.Completions: "/v1/completions",
		pricing.Responses: "/v1/responses", pricing.Messages: "/v1/messages", pricing.Generate: "/inference/v1/generate",
	} {
		if p == path {
			return e
		}
	}
	t.Fatalf("no kind for %s", path)
	return 0
}

// TestOutputLimitLoweredCharge: the lowered request is charged what its
// upstream used, and the remaining room is what is left of the cap.
func TestOutputLimitLoweredCharge(t *testing.T) {
	h := newHarness(t, lowerConfig)
	h.commitSpend(money.PerUSD / 2)
	body := `{"model":"Hunyuan","max_tokens":5000,` + lowerPrompt + `}`
	fwd, set, refused := lowerExchange(t, h, "/v1/chat/completions", body, 300)
	require.Nil(t, refused)
	assert.Equal(t, strings.Replace(body, "5000", "499", 1), string(fwd), "half the cap left: 499 tokens")
	assert.Equal(t, "499", set["x-spendguard-max-tokens"])
	// 5 prompt tokens and 300 completion tokens.
	assert.Equal(t, money.PerUSD/2+5_000+300_000_000, h.spend("acme").Committed)
}

// TestOutputLimitLoweredBesideARefusingBudget: a budget without the
// option that has room for the whole request does not stop the lowering.
func TestOutputLimitLoweredBesideARefusingBudget(t *testing.T) {
	h := newHarness(t, lowerConfig+`
  - name: fleet-daily
    period: day
    hard_usd: 100
`)
	body := `{"model":"Hunyuan","max_tokens":5000,` + lowerPrompt + `}`
	fwd, set, refused := lowerExchange(t, h, "/v1/chat/completions", body, 999)
	require.Nil(t, refused)
	assert.Equal(t, strings.Replace(body, "5000", "999", 1), string(fwd))
	assert.Equal(t, "5000", set["x-spendguard-max-tokens-lowered-from"])
}

// TestOutputLimitLoweredAfterDowngrade: past the soft cap the cheaper
// model is tried first; when the hard cap refuses it too, its limit is
// lowered to what the budget pays at the cheaper model's price, both
// rewrites in one copy.
func TestOutputLimitLoweredAfterDowngrade(t *testing.T) {
	cfg := strings.Replace(lowerConfig, `      output: 1000
`, `      output: 1000
    - match: Small
      input: 1
      output: 500
`, 1)
	cfg = strings.Replace(cfg, "    hard_usd: 1\n", "    soft_usd: 0\n    hard_usd: 1\n    on_soft: {downgrade: {Hunyuan: Small}}\n", 1)
	h := newHarness(t, cfg)
	body := `{"model":"Hunyuan","max_tokens":5000,` + lowerPrompt + `}`
	fwd, set, refused := lowerExchange(t, h, "/v1/chat/completions", body, 1999)
	require.Nil(t, refused)
	assert.Equal(t, `{"model":"Small","max_tokens":1999,`+lowerPrompt+`}`, string(fwd))
	assert.Equal(t, "Hunyuan", set["x-spendguard-downgraded-from"])
	assert.Equal(t, "1999", set["x-spendguard-max-tokens"])
	assert.Equal(t, "5000", set["x-spendguard-max-tokens-lowered-from"])
}

// TestOutputLimitNotLowered: the 402 stands for a budget without the
// option, for two budgets that both block where only one has it, when
// not even one output token fits, for a stated limit of 1, and for kinds
// that generate nothing. A request that fits is forwarded as sent.
func TestOutputLimitNotLowered(t *testing.T) {
	withFleet := func(hard string) string {
		return lowerConfig + `
  - name: fleet-daily
    period: day
    hard_usd: ` + hard + "\n"
	}
	chat := `{"model":"Hunyuan","max_tokens":5000,` + lowerPrompt + `}`
	for _, tc := range []struct {
		name, config, path, body string
		spent                    money.Nano
		budget                   string // the refusing budget; "" when served as sent
	}{
		{"the budget does not lower", strings.Replace(lowerConfig, "on_hard: {lower_output_limit: true}", "", 1),
			"/v1/chat/completions", chat, 0, "tenant-daily"},
		{"both block, only one lowers", withFleet("2"), "/v1/chat/completions", chat, 0, "tenant-daily"},
		{"the budget without the option has less room", withFleet("0.5"), "/v1/chat/completions", chat, 0, "tenant-daily"},
		{"not one token fits", lowerConfig, "/v1/chat/completions", chat, money.PerUSD - 900_000, "tenant-daily"},
		{"exhausted", lowerConfig, "/v1/chat/completions", chat, money.PerUSD, "tenant-daily"},
		{"a stated limit of 1 cannot be lowered", lowerConfig, "/v1/chat/completions",
			`{"model":"Hunyuan","max_tokens":1,` + lowerPrompt + `}`, money.PerUSD - 900_000, "tenant-daily"},
		{"embeddings generate nothing", lowerConfig, "/v1/embeddings",
			`{"model":"Hunyuan","input":"` + strings.Repeat("x", 2000) + `"}`, money.PerUSD - 1_000_000, "tenant-daily"},
		{"a limit that fits is kept", lowerConfig, "/v1/chat/completions",
			`{"model":"Hunyuan","max_tokens":900,` + lowerPrompt + `}`, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := newHarness(t, tc.config)
			if tc.spent > 0 {
				h.commitSpend(tc.spent)
			}
			fwd, set, refused := lowerExchange(t, h, tc.path, tc.body, 10)
			if tc.budget == "" {
				require.Nil(t, refused)
				assert.Nil(t, fwd, "forwarded as sent")
				assert.NotContains(t, set, "x-spendguard-max-tokens")
				assert.NotContains(t, set, "x-spendguard-max-tokens-lowered-from")
				return
			}
			require.NotNil(t, refused, "refused")
			assert.EqualValues(t, 402, refused.GetStatus().GetCode())
			var budget string
			for _, o := range refused.GetHeaders().GetSetHeaders() {
				if o.GetHeader().GetKey() == "x-spendguard-budget" {
					budget = string(o.GetHeader().GetRawValue())
				}
			}
			assert.Equal(t, tc.budget, budget)
			scopes := h.cfg.Snapshot.Budgets.Applicable(map[string]string{"tenant": "acme", "model": "Hunyuan"})
			states, err := h.engine.Status(context.Background(), scopes)
			require.NoError(t, err)
			for _, st := range states {
				assert.Zero(t, st.Counter.Reserved, "nothing held")
				if st.Scope.Budget.Name() == "tenant-daily" {
					assert.Equal(t, tc.spent, st.Counter.Committed, "nothing charged")
				}
			}
		})
	}
}
