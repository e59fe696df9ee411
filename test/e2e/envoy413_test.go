package e2e

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/fakevllm"
)

// Envoy's own 413 for a body over its buffer limit, through envoysim
// configured from envoy/envoy.yaml: in Anthropic's error shape on
// /v1/messages (with or without the Anthropic SDK's ?beta=true), in
// OpenAI's on the OpenAI paths, and surfaced by the official Anthropic Go
// SDK with Anthropic's error type.

// messageOfSize is an Anthropic Messages request body of exactly n bytes.
func messageOfSize(t *testing.T, n int) string {
	t.Helper()
	const head = `{"model":"fake-model","max_tokens":10,"messages":[{"role":"user","content":"`
	const tail = `"}]}`
	pad := n - len(head) - len(tail)
	require.Positive(t, pad)
	return head + strings.Repeat("x", pad) + tail
}

func TestOverLimitBodyGetsEachAPIsShape(t *testing.T) {
	s := newStackWith(t, sdkConfig, fakevllm.Config{}, stackOptions{shippedEnvoy: true})
	over := app.EnvoyBufferLimit + 1
	for _, path := range []string{"/v1/messages", "/v1/messages?beta=true"} {
		t.Run(path, func(t *testing.T) {
			resp := s.post(path, messageOfSize(t, over), "x-tenant-id", "sdk")
			require.Equal(t, http.StatusRequestEntityTooLarge, resp.status, "%.300s", resp.body)
			assert.Equal(t, "application/json", resp.header.Get("content-type"))
			assert.JSONEq(t, `"error"`, jsonPath(t, resp.body, "type"))
			assert.JSONEq(t, `"request_too_large"`, jsonPath(t, resp.body, "error", "type"))
			assert.Contains(t, jsonPath(t, resp.body, "error", "message"), "8388608 bytes")
			assert.Equal(t, "null", jsonPath(t, resp.body, "error", "code"), "Anthropic's shape has no code")
		})
	}
	t.Run("/v1/chat/completions", func(t *testing.T) {
		body := strings.Replace(chatOfSize(t, over-len("fake-model")+len("Hunyuan"), false), "Hunyuan", "fake-model", 1)
		require.Len(t, body, over)
		resp := s.post("/v1/chat/completions", body, "x-tenant-id", "sdk")
		require.Equal(t, http.StatusRequestEntityTooLarge, resp.status, "%.300s", resp.body)
		assert.Equal(t, "application/json", resp.header.Get("content-type"))
		assert.JSONEq(t, `"invalid_request_error"`, jsonPath(t, resp.body, "error", "type"))
		assert.JSONEq(t, `"request_too_large"`, jsonPath(t, resp.body, "error", "code"))
		assert.Equal(t, "null", jsonPath(t, resp.body, "type"), "OpenAI's shape has no top-level type")
	})
	assert.Zero(t, s.vllm.Count(), "the upstream never saw them")
	for _, r := range s.reports.all() {
		assert.Zero(t, r.GetCostNanoUsd(), "nothing is charged for Envoy's own 413")
	}

	// The stack still serves a body within the limit.
	resp := s.post("/v1/messages", messageOfSize(t, 1000), "x-tenant-id", "sdk")
	assert.Equal(t, http.StatusOK, resp.status, "%.300s", resp.body)
}

// TestAnthropicSDKRequestTooLarge: the SDK reports Envoy's 413 as its
// *anthropic.Error with Anthropic's request_too_large type and the
// message naming the limit, for Messages.New and for Beta.Messages.New
// (which adds ?beta=true to the path).
func TestAnthropicSDKRequestTooLarge(t *testing.T) {
	s := newStackWith(t, sdkConfig, fakevllm.Config{}, stackOptions{shippedEnvoy: true})
	client := s.anthropicClient("sdk")
	big := strings.Repeat("lorem ipsum ", app.EnvoyBufferLimit/12+1)
	ctx := context.Background()

	_, err := client.Messages.New(ctx, anthropic.MessageNewParams{
		Model:     "fake-model",
		MaxTokens: 10,
		Messages:  []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock(big))},
	})
	assertRequestTooLarge(t, err)

	_, err = client.Beta.Messages.New(ctx, anthropic.BetaMessageNewParams{
		Model:     "fake-model",
		MaxTokens: 10,
		Messages:  []anthropic.BetaMessageParam{anthropic.NewBetaUserMessage(anthropic.NewBetaTextBlock(big))},
	})
	assertRequestTooLarge(t, err)
	assert.Zero(t, s.vllm.Count(), "the upstream never saw them")
}

func assertRequestTooLarge(t *testing.T, err error) {
	t.Helper()
	var apiErr *anthropic.Error
	require.True(t, errors.As(err, &apiErr), "the SDK's error type, got %T: %v", err, err)
	assert.Equal(t, http.StatusRequestEntityTooLarge, apiErr.StatusCode)
	assert.Equal(t, "request_too_large", string(apiErr.Type()))
	assert.Contains(t, apiErr.Error(), "8388608 bytes")
	assert.Equal(t, "/v1/messages", apiErr.Request.URL.Path)
}
