package e2e

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"testing"
	"time"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
)

// The official Anthropic Go SDK against /v1/messages (as Claude Code and
// the Anthropic SDKs use a vLLM server): charged exactly what the SDK
// reads as usage, JSON and streaming, and spendguard's 402 surfaces as the
// SDK's *anthropic.Error with Anthropic's error type.

func (s *stack) anthropicClient(tenant string) anthropic.Client {
	return anthropic.NewClient(
		option.WithBaseURL(s.proxy.URL()),
		option.WithAPIKey("sk-ant-unused-by-spendguard"),
		option.WithHeader("x-tenant-id", tenant),
		option.WithMaxRetries(0),
		option.WithRequestTimeout(20*time.Second),
	)
}

func TestAnthropicSDKMessages(t *testing.T) {
	s := newSDKStack(t)
	client := s.anthropicClient("sdk")
	ctx := context.Background()

	msg, err := client.Messages.New(ctx, anthropic.MessageNewParams{
		Model:     "fake-model",
		MaxTokens: 13,
		System:    []anthropic.TextBlockParam{{Text: "You are terse."}},
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("What does a budget proxy do?")),
		},
	})
	require.NoError(t, err)
	require.NotEmpty(t, msg.Content)
	require.Equal(t, int64(13), msg.Usage.OutputTokens)
	require.Positive(t, msg.Usage.InputTokens)
	assertCharged(t, s.reportN(1), msg.Usage.InputTokens, msg.Usage.OutputTokens)

	stream := client.Messages.NewStreaming(ctx, anthropic.MessageNewParams{
		Model:     "fake-model",
		MaxTokens: 8,
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("Stream a short answer.")),
		},
	})
	var acc anthropic.Message
	events := map[string]int{}
	for stream.Next() {
		ev := stream.Current()
		events[ev.Type]++
		require.NoError(t, acc.Accumulate(ev))
	}
	require.NoError(t, stream.Err())
	require.NoError(t, stream.Close())
	assert.Equal(t, 1, events["message_start"])
	assert.Equal(t, 1, events["message_stop"])
	assert.Positive(t, events["content_block_delta"])
	require.Equal(t, int64(8), acc.Usage.OutputTokens)
	rep := s.reportN(2)
	assert.True(t, rep.GetStream())
	assertCharged(t, rep, acc.Usage.InputTokens, acc.Usage.OutputTokens)
}

// TestAnthropicSDKBudgetExceeded: the refusal is Anthropic-shaped, so the
// SDK reports the status and the billing_error type.
func TestAnthropicSDKBudgetExceeded(t *testing.T) {
	s := newSDKStack(t)
	client := s.anthropicClient("broke")
	_, err := client.Messages.New(context.Background(), anthropic.MessageNewParams{
		Model:     "fake-model",
		MaxTokens: 100,
		Messages: []anthropic.MessageParam{
			anthropic.NewUserMessage(anthropic.NewTextBlock("This costs more than the cap.")),
		},
	})
	var apiErr *anthropic.Error
	require.True(t, errors.As(err, &apiErr), "the SDK's error type, got %T: %v", err, err)
	assert.Equal(t, http.StatusPaymentRequired, apiErr.StatusCode)
	assert.Equal(t, "billing_error", string(apiErr.Type()))
	assert.Contains(t, apiErr.Message, "broke")
	assert.Equal(t, "broke", apiErr.Response.Header.Get("x-spendguard-budget"))
	assert.Equal(t, 0, s.vllm.Count(), "the upstream never saw the request")
	for _, b := range s.counters(map[string]string{"tenant": "broke"}) {
		assert.Equal(t, money.Nano(0), b.Used(), "nothing charged or held on %s", b.Scope.Budget.Name)
	}

	// A request without max_tokens (required by the Messages API) is a 400
	// in Anthropic's shape, before anything is reserved.
	resp := s.post("/v1/messages", `{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}`, "x-tenant-id", "sdk")
	assert.Equal(t, http.StatusBadRequest, resp.status)
	assert.JSONEq(t, `"invalid_request_error"`, jsonPath(t, resp.body, "error", "type"))
	assert.JSONEq(t, `"error"`, jsonPath(t, resp.body, "type"))
}

// jsonPath returns the JSON of the member at path in body ("null" when
// it is missing).
func jsonPath(t *testing.T, body []byte, path ...string) string {
	t.Helper()
	var v any
	require.NoError(t, json.Unmarshal(body, &v), "body: %s", body)
	for _, p := range path {
		m, ok := v.(map[string]any)
		if !ok {
			return "null"
		}
		v = m[p]
	}
	out, err := json.Marshal(v)
	require.NoError(t, err)
	return string(out)
}
