package e2e

import (
	"context"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// The official client SDKs, used as a client would, through envoysim to
// the fake vLLM: each request is charged exactly what the SDK itself
// reads as the usage, and spendguard's refusals surface as the SDK's own
// error type.

// sdkConfig prices fakevllm's model at $1 per million prompt tokens and
// $2 per million completion tokens; tenant "broke" has a cap no request
// fits.
const sdkConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
pricing:
  models:
    - {match: "fake-model", input: 1.00, output: 2.00}
budgets:
  - name: per-tenant
    match: {tenant: "*"}
    period: total
    hard_usd: 100
  - name: broke
    match: {tenant: broke}
    period: total
    hard_usd: 0.000001
`

// sdkCost is what sdkConfig charges for the tokens.
func sdkCost(prompt, completion int64) int64 {
	return prompt*1000 + completion*2000 // nano-USD per token
}

func newSDKStack(t *testing.T) *stack {
	t.Helper()
	return newStack(t, sdkConfig, fakevllm.Config{})
}

func (s *stack) openaiClient(tenant string) openai.Client {
	return openai.NewClient(
		option.WithBaseURL(s.proxy.URL()+"/v1/"),
		option.WithAPIKey("sk-unused-by-spendguard"),
		option.WithHeader("x-tenant-id", tenant),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(20*time.Second),
	)
}

// reportFor waits for the cost report of the n-th request (from 1) of
// the test and returns it.
func (s *stack) reportN(n int) *spendguardv1.CostReport {
	s.t.Helper()
	require.Eventually(s.t, func() bool { return len(s.reports.all()) >= n }, 10*time.Second, time.Millisecond)
	return s.reports.all()[n-1]
}

// assertCharged checks a report against the usage the client read.
func assertCharged(t *testing.T, rep *spendguardv1.CostReport, prompt, completion int64) {
	t.Helper()
	assert.Equal(t, prompt, rep.GetPromptTokens(), "prompt tokens charged = the SDK's usage")
	assert.Equal(t, completion, rep.GetCompletionTokens(), "completion tokens charged = the SDK's usage")
	assert.Equal(t, sdkCost(prompt, completion), rep.GetCostNanoUsd(), "cost")
	assert.False(t, rep.GetEstimated(), "the upstream's usage, not an estimate")
}

func TestOpenAISDKChat(t *testing.T) {
	s := newSDKStack(t)
	client := s.openaiClient("sdk")
	ctx := context.Background()

	resp, err := client.Chat.Completions.New(ctx, openai.ChatCompletionNewParams{
		Model:     "fake-model",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Say something about budgets, please.")},
		MaxTokens: openai.Int(12),
	})
	require.NoError(t, err)
	require.Equal(t, int64(12), resp.Usage.CompletionTokens)
	require.NotEmpty(t, resp.Choices)
	assertCharged(t, s.reportN(1), resp.Usage.PromptTokens, resp.Usage.CompletionTokens)

	// Streaming without asking for usage: spendguard adds include_usage for
	// itself, and the SDK never sees a usage chunk.
	stream := client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:     "fake-model",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream a short answer.")},
		MaxTokens: openai.Int(9),
	})
	acc := openai.ChatCompletionAccumulator{}
	chunks := 0
	for stream.Next() {
		chunk := stream.Current()
		chunks++
		assert.False(t, chunk.JSON.Usage.Valid() && chunk.Usage.TotalTokens > 0, "chunk %d carries usage the client did not ask for: %s", chunks, chunk.RawJSON())
		acc.AddChunk(chunk)
	}
	require.NoError(t, stream.Err())
	require.NoError(t, stream.Close())
	require.Greater(t, chunks, 9)
	rep := s.reportN(2)
	assert.Equal(t, int64(9), rep.GetCompletionTokens())
	assert.True(t, rep.GetStream())
	assertCharged(t, rep, rep.GetPromptTokens(), 9)

	// Streaming that asks for usage: the SDK reads it, and it is what was charged.
	stream = client.Chat.Completions.NewStreaming(ctx, openai.ChatCompletionNewParams{
		Model:         "fake-model",
		Messages:      []openai.ChatCompletionMessageParamUnion{openai.UserMessage("Stream with usage.")},
		MaxTokens:     openai.Int(7),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	acc = openai.ChatCompletionAccumulator{}
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	require.NoError(t, stream.Err())
	require.NoError(t, stream.Close())
	require.Equal(t, int64(7), acc.Usage.CompletionTokens)
	assertCharged(t, s.reportN(3), acc.Usage.PromptTokens, acc.Usage.CompletionTokens)
}

func TestOpenAISDKCompletionsAndEmbeddings(t *testing.T) {
	s := newSDKStack(t)
	client := s.openaiClient("sdk")
	ctx := context.Background()

	comp, err := client.Completions.New(ctx, openai.CompletionNewParams{
		Model:     "fake-model",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Once upon a time")},
		MaxTokens: openai.Int(5),
	})
	require.NoError(t, err)
	require.Equal(t, int64(5), comp.Usage.CompletionTokens)
	assertCharged(t, s.reportN(1), comp.Usage.PromptTokens, comp.Usage.CompletionTokens)

	stream := client.Completions.NewStreaming(ctx, openai.CompletionNewParams{
		Model:     "fake-model",
		Prompt:    openai.CompletionNewParamsPromptUnion{OfString: openai.String("Count to four")},
		MaxTokens: openai.Int(4),
	})
	for stream.Next() {
		c := stream.Current()
		assert.False(t, c.Usage.TotalTokens > 0, "a completions chunk carries usage the client did not ask for: %s", c.RawJSON())
	}
	require.NoError(t, stream.Err())
	require.NoError(t, stream.Close())
	rep := s.reportN(2)
	assertCharged(t, rep, rep.GetPromptTokens(), 4)

	emb, err := client.Embeddings.New(ctx, openai.EmbeddingNewParams{
		Model: "fake-model",
		Input: openai.EmbeddingNewParamsInputUnion{OfArrayOfStrings: []string{"first text to embed", "second"}},
	})
	require.NoError(t, err)
	require.Len(t, emb.Data, 2)
	require.Positive(t, emb.Usage.PromptTokens)
	assertCharged(t, s.reportN(3), emb.Usage.PromptTokens, 0)
}

func TestOpenAISDKResponses(t *testing.T) {
	s := newSDKStack(t)
	client := s.openaiClient("sdk")
	ctx := context.Background()

	resp, err := client.Responses.New(ctx, responses.ResponseNewParams{
		Model:           "fake-model",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("What does a budget proxy do?")},
		MaxOutputTokens: openai.Int(11),
	})
	require.NoError(t, err)
	require.Equal(t, int64(11), resp.Usage.OutputTokens)
	require.NotEmpty(t, resp.OutputText())
	assertCharged(t, s.reportN(1), resp.Usage.InputTokens, resp.Usage.OutputTokens)

	// The SDK's stream decoder reads every event vLLM sends; the completed
	// event's usage is what was charged.
	stream := client.Responses.NewStreaming(ctx, responses.ResponseNewParams{
		Model:           "fake-model",
		Input:           responses.ResponseNewParamsInputUnion{OfString: openai.String("Stream it.")},
		MaxOutputTokens: openai.Int(6),
	})
	var completed responses.Response
	var text string
	types := map[string]int{}
	for stream.Next() {
		ev := stream.Current()
		types[ev.Type]++
		switch ev.Type {
		case "response.output_text.delta":
			text += ev.Delta
		case "response.completed":
			completed = ev.Response
		}
	}
	require.NoError(t, stream.Err())
	require.NoError(t, stream.Close())
	assert.Equal(t, 1, types["response.created"])
	assert.Equal(t, 1, types["response.completed"])
	// The events vLLM sends around the deltas, which the SDKs' stream
	// helpers rely on.
	for _, ty := range []string{"response.in_progress", "response.output_item.added", "response.content_part.added", "response.output_text.done", "response.output_item.done"} {
		assert.Positive(t, types[ty], "event %s", ty)
	}
	assert.NotEmpty(t, text)
	require.Equal(t, int64(6), completed.Usage.OutputTokens)
	assertCharged(t, s.reportN(2), completed.Usage.InputTokens, completed.Usage.OutputTokens)
}

// TestOpenAISDKBudgetExceeded: the 402 surfaces as the SDK's *openai.Error
// with spendguard's status, type, code and message, and nothing is charged.
func TestOpenAISDKBudgetExceeded(t *testing.T) {
	s := newSDKStack(t)
	client := s.openaiClient("broke")
	_, err := client.Chat.Completions.New(context.Background(), openai.ChatCompletionNewParams{
		Model:     "fake-model",
		Messages:  []openai.ChatCompletionMessageParamUnion{openai.UserMessage("This costs more than the cap.")},
		MaxTokens: openai.Int(100),
	})
	var apiErr *openai.Error
	require.True(t, errors.As(err, &apiErr), "the SDK's error type, got %T: %v", err, err)
	assert.Equal(t, http.StatusPaymentRequired, apiErr.StatusCode)
	assert.Equal(t, "budget_exceeded", apiErr.Type)
	assert.Equal(t, "budget_exceeded", apiErr.Code)
	assert.Contains(t, apiErr.Message, "broke")
	assert.Equal(t, "broke", apiErr.Response.Header.Get("x-spendguard-budget"))
	assert.Equal(t, 0, s.vllm.Count(), "the upstream never saw the request")

	st := s.counters(map[string]string{"tenant": "broke"})
	for _, b := range st {
		assert.Equal(t, money.Nano(0), b.Used(), "nothing charged or held on %s", b.Scope.Budget.Name)
	}
}
