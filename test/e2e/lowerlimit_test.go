package e2e

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"testing"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// lowerConfig caps tenant "lowered" at 0.001 USD, which pays a few
// hundred output tokens at sdkCost's prices, with on_hard.lower_output_limit;
// tenant "refused" has the same cap without it.
const lowerConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: "fake-model", input: 1.00, output: 2.00}
budgets:
  - name: lowered
    match: {tenant: lowered}
    period: total
    hard_usd: 0.001
    on_hard: {lower_output_limit: true}
  - name: refused
    match: {tenant: refused}
    period: total
    hard_usd: 0.001
`

// TestOpenAISDKLoweredOutputLimit: a client whose budget cannot pay its
// max_tokens, but lowers output limits, gets a shorter answer (the fake
// vLLM generates exactly the limit it receives), told by the headers
// what the limit became and what it was; its spend stays within the cap.
// The same request on a budget without the option is the SDK's 402.
func TestOpenAISDKLoweredOutputLimit(t *testing.T) {
	s := newStack(t, lowerConfig, fakevllm.Config{})
	ctx := context.Background()
	params := openai.ChatCompletionNewParams{
		Model:     "fake-model",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Write a very long essay on budgets.")},
		MaxTokens: openai.Int(2000),
	}

	var httpResp *http.Response
	client := s.openaiClient("lowered")
	resp, err := client.Chat.Completions.New(ctx, params, option.WithResponseInto(&httpResp))
	require.NoError(t, err)
	limit, err := strconv.ParseInt(httpResp.Header.Get("x-spendguard-max-tokens"), 10, 64)
	require.NoError(t, err, "the lowered limit is announced")
	assert.Equal(t, "2000", httpResp.Header.Get("x-spendguard-max-tokens-lowered-from"))
	assert.Greater(t, limit, int64(100))
	assert.Less(t, limit, int64(500), "0.001 USD pays fewer than 500 output tokens at 2 USD per million")
	assert.Equal(t, limit, resp.Usage.CompletionTokens, "a shorter answer: the lowered limit")
	require.NotEmpty(t, resp.Choices)
	assert.Equal(t, "length", resp.Choices[0].FinishReason)

	reqs := s.vllm.Requests()
	assert.Contains(t, string(reqs[len(reqs)-1].Body), `"max_tokens":`+strconv.FormatInt(limit, 10),
		"vLLM received the lowered limit")

	rep := s.reportN(1)
	assert.Equal(t, spendguardv1.Decision_DECISION_ALLOWED, rep.GetDecision())
	assertCharged(t, rep, resp.Usage.PromptTokens, resp.Usage.CompletionTokens)
	for _, st := range s.counters(map[string]string{"tenant": "lowered", "model": "fake-model"}) {
		assert.Zero(t, st.Reserved)
		assert.Equal(t, money.Nano(rep.GetCostNanoUsd()), st.Committed)
		assert.LessOrEqual(t, st.Committed, money.PerUSD/1000, "spend within the cap")
	}

	refused := s.openaiClient("refused")
	_, err = refused.Chat.Completions.New(ctx, params)
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "%v", err)
	assert.Equal(t, http.StatusPaymentRequired, apiErr.StatusCode)
}
