package e2e

import (
	"fmt"
	"net/http"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// Prices with at most three decimals per million tokens are a whole number
// of nano-USD per token (0.60 USD/M = 600 nano-USD per token), so every
// expected cost below is exact integer arithmetic.
const meteringConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
      - default: anonymous
pricing:
  models:
    - {match: Hunyuan, input: 0.60, output: 0.80}
    - {match: Qwen/Qwen2.5-0.5B-Instruct, input: 0.10, output: 0.20}
    - {match: Qwen/Qwen3-Embedding-0.6B, input: 0.02, output: 0}
    - {match: gpt-5-nano-2025-08-07, input: 0.05, cached_input: 0.005, output: 0.40}
    - {match: babbage-002, input: 0.40, output: 0.40}
    - {match: text-embedding-3-small, input: 0.02, output: 0}
    - {match: "meta-llama/*", input: 0.30, cached_input: 0.15, output: 0.90}
budgets:
  - name: ledger
    period: total
    hard_usd: 1000
`

// price in nano-USD per token: USD per million × 1000.
var perToken = map[string][3]int64{ // input, cached input, output
	"Hunyuan":                    {600, 600, 800},
	"Qwen/Qwen2.5-0.5B-Instruct": {100, 100, 200},
	"Qwen/Qwen3-Embedding-0.6B":  {20, 20, 0},
	"gpt-5-nano-2025-08-07":      {50, 5, 400},
	"babbage-002":                {400, 400, 400},
	"text-embedding-3-small":     {20, 20, 0},
	"meta-llama/Llama-3.1-8B":    {300, 150, 900},
}

func expectedCost(model string, prompt, cached, completion int64) money.Nano {
	p := perToken[model]
	return money.Nano((prompt-cached)*p[0] + cached*p[1] + completion*p[2])
}

func requestFor(path, model string) string {
	switch path {
	case "/v1/chat/completions":
		return fmt.Sprintf(`{"model":%q,"max_tokens":500,"messages":[{"role":"user","content":"Write a short introduction to large language models. Ünïcödé 🚀"}]}`, model)
	case "/v1/completions":
		return fmt.Sprintf(`{"model":%q,"max_tokens":500,"prompt":"def fib(n):"}`, model)
	case "/v1/embeddings":
		return fmt.Sprintf(`{"model":%q,"input":["first text","second text"]}`, model)
	default:
		return fmt.Sprintf(`{"model":%q,"max_output_tokens":500,"input":"Tell me a story"}`, model)
	}
}

// TestFixtureBodiesChargedExactly replays every real upstream body through
// the whole stack, split at random offsets, and checks the exact charge.
func TestFixtureBodiesChargedExactly(t *testing.T) {
	s := newStack(t, meteringConfig, fakevllm.Config{})
	cases := []struct {
		file, path, model          string
		prompt, cached, completion int64
	}{
		{"vllm-chat.json", "/v1/chat/completions", "Hunyuan", 12, 0, 100},
		{"vllm-completion.json", "/v1/completions", "Qwen/Qwen2.5-0.5B-Instruct", 252, 0, 1},
		{"vllm-embeddings.json", "/v1/embeddings", "Qwen/Qwen3-Embedding-0.6B", 39, 0, 0},
		{"openai-chat.json", "/v1/chat/completions", "gpt-5-nano-2025-08-07", 8, 0, 377},
		{"openai-completion.json", "/v1/completions", "babbage-002", 31, 0, 25},
		{"openai-embeddings.json", "/v1/embeddings", "text-embedding-3-small", 7, 0, 0},
	}
	var total money.Nano
	const rounds = 6
	for _, tc := range cases {
		body := fixture(t, tc.file)
		want := expectedCost(tc.model, tc.prompt, tc.cached, tc.completion)
		for round := 0; round < rounds; round++ {
			t.Run(fmt.Sprintf("%s/%d", tc.file, round), func(t *testing.T) {
				s.vllm.Replay(tc.path, http.StatusOK, body)
				before := len(s.reports.all())
				resp := s.post(tc.path, requestFor(tc.path, tc.model), "x-tenant-id", "acme")
				require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
				assert.Equal(t, body, resp.body, "the client gets vLLM's bytes unchanged")
				reps := s.reports.all()
				require.Len(t, reps, before+1)
				rep := reps[len(reps)-1]
				assert.Equal(t, int64(want), rep.GetCostNanoUsd(), "cost")
				assert.Equal(t, tc.prompt, rep.GetPromptTokens())
				assert.Equal(t, tc.completion, rep.GetCompletionTokens())
				assert.False(t, rep.GetEstimated())
			})
			total += want
		}
	}
	st := s.counters(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	require.Len(t, st, 1)
	assert.Equal(t, total, st[0].Committed, "the ledger holds the exact sum")
	assert.Zero(t, st[0].Reserved, "no reservation is left behind")
	assert.GreaterOrEqual(t, s.splits.Load(), int64(len(cases)*rounds), "every body went through the random chunker")
}

// TestGeneratedBodiesEveryEndpoint uses fakevllm's own vLLM-shaped answers,
// including /v1/responses and cached prompt tokens.
func TestGeneratedBodiesEveryEndpoint(t *testing.T) {
	s := newStack(t, meteringConfig, fakevllm.Config{})
	model := "meta-llama/Llama-3.1-8B"
	var total money.Nano
	for _, path := range []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"} {
		for _, tokens := range [][3]int64{{1, 0, 1}, {1234, 1000, 321}, {98765, 0, 499}} {
			prompt, cached, completion := tokens[0], tokens[1], tokens[2]
			if path == "/v1/embeddings" {
				completion, cached = 0, 0 // vLLM reports no cache detail for embeddings
			}
			t.Run(fmt.Sprintf("%s/%d", path, prompt), func(t *testing.T) {
				resp := s.post(path, requestFor(path, model), "x-tenant-id", "acme",
					fakevllm.HeaderPromptTokens, strconv.FormatInt(prompt, 10),
					fakevllm.HeaderCachedTokens, strconv.FormatInt(cached, 10),
					fakevllm.HeaderCompletionTokens, strconv.FormatInt(completion, 10))
				require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
				reps := s.reports.all()
				rep := reps[len(reps)-1]
				assert.Equal(t, int64(expectedCost(model, prompt, cached, completion)), rep.GetCostNanoUsd())
				assert.Equal(t, cached, rep.GetCachedPromptTokens())
				assert.NotEmpty(t, resp.header.Get("x-spendguard-remaining-usd"))
				assert.Equal(t, "ledger", resp.header.Get("x-spendguard-budget"))
			})
			total += expectedCost(model, prompt, cached, completion)
		}
	}
	st := s.counters(map[string]string{"tenant": "acme", "model": model})
	assert.Equal(t, total, st[0].Committed)
	assert.Zero(t, st[0].Reserved)
}

func TestFreePathsPassUncharged(t *testing.T) {
	s := newStack(t, meteringConfig, fakevllm.Config{})
	resp, err := http.Get(s.proxy.URL() + "/v1/models")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusOK, resp.StatusCode)
	assert.Equal(t, 1, s.vllm.Count())
	assert.Empty(t, s.reports.all())
	st := s.counters(map[string]string{"tenant": "acme", "model": "Hunyuan"})
	assert.Equal(t, money.Nano(0), st[0].Committed+st[0].Reserved)
}

func TestUpstreamErrorIsNotCharged(t *testing.T) {
	s := newStack(t, meteringConfig, fakevllm.Config{})
	s.vllm.Replay("/v1/chat/completions", http.StatusBadRequest, fixture(t, "vllm-error-400.json"))
	resp := s.post("/v1/chat/completions", requestFor("/v1/chat/completions", "Hunyuan"))
	assert.Equal(t, http.StatusBadRequest, resp.status)
	st := s.counters(map[string]string{"tenant": "anonymous", "model": "Hunyuan"})
	assert.Equal(t, money.Nano(0), st[0].Committed+st[0].Reserved)
}
