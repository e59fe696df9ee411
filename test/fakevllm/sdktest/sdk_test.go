// Package sdktest checks test/fakevllm against the official OpenAI and
// Anthropic Go SDKs. It is a package of its own so that building and
// fuzzing fakevllm's own tests does not compile the SDKs.
package sdktest

import (
	"context"
	"testing"

	"github.com/anthropics/anthropic-sdk-go/v2"
	anthropicoption "github.com/anthropics/anthropic-sdk-go/v2/option"
	"github.com/openai/openai-go/v3"
	"github.com/openai/openai-go/v3/option"
	"github.com/openai/openai-go/v3/responses"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/test/fakevllm"
)

// startFake serves s on a real port for the length of the test.
func startFake(t *testing.T, s *fakevllm.Server) string {
	t.Helper()
	url, err := s.Start("127.0.0.1:0")
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return url
}

// The official OpenAI Go SDK reads the Responses stream as the OpenAI
// SDKs' stream helpers do: every delta lands in an output item and content
// part announced before it, and the snapshot built from the events equals
// the response in response.completed.
func TestOpenAISDKReadsTheResponsesStream(t *testing.T) {
	url := startFake(t, fakevllm.New(fakevllm.Config{PromptTokens: 6, CompletionTokens: 4}))
	client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	stream := client.Responses.NewStreaming(context.Background(), responses.ResponseNewParams{
		Model: "m", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")},
	})
	type part struct{ text string }
	items := map[int64][]*part{}
	var types []string
	var completed responses.Response
	next := int64(0)
	for stream.Next() {
		ev := stream.Current()
		types = append(types, ev.Type)
		assert.Equal(t, next, ev.SequenceNumber, "sequence numbers in order")
		next++
		switch ev.Type {
		case "response.output_item.added":
			items[ev.OutputIndex] = nil
		case "response.content_part.added":
			require.Contains(t, items, ev.OutputIndex, "a part of an announced item")
			items[ev.OutputIndex] = append(items[ev.OutputIndex], &part{})
		case "response.output_text.delta":
			d := ev.AsResponseOutputTextDelta()
			require.True(t, d.JSON.ItemID.Valid() && d.JSON.Logprobs.Valid() && d.JSON.ContentIndex.Valid())
			parts := items[d.OutputIndex]
			require.Less(t, int(d.ContentIndex), len(parts), "a delta of an announced part")
			parts[d.ContentIndex].text += d.Delta
		case "response.output_text.done":
			assert.Equal(t, items[ev.OutputIndex][0].text, ev.AsResponseOutputTextDone().Text)
		case "response.completed":
			completed = ev.AsResponseCompleted().Response
		}
	}
	require.NoError(t, stream.Err())
	assert.Equal(t, []string{
		"response.created", "response.in_progress", "response.output_item.added", "response.content_part.added",
		"response.output_text.delta", "response.output_text.delta", "response.output_text.delta", "response.output_text.delta",
		"response.output_text.done", "response.content_part.done", "response.output_item.done", "response.completed",
	}, types)
	assert.Equal(t, "Once fox ran far", completed.OutputText())
	assert.Equal(t, items[0][0].text, completed.OutputText())
	assert.Equal(t, int64(6), completed.Usage.InputTokens)
	assert.Equal(t, int64(4), completed.Usage.OutputTokens)
	assert.Equal(t, int64(10), completed.Usage.TotalTokens)

	// Background: queued without usage, then the SDK's Get finds it done.
	queued, err := client.Responses.New(context.Background(), responses.ResponseNewParams{
		Model: "m", Input: responses.ResponseNewParamsInputUnion{OfString: openai.String("hi")}, Background: openai.Bool(true),
	})
	require.NoError(t, err)
	assert.Equal(t, responses.ResponseStatusQueued, queued.Status)
	assert.False(t, queued.JSON.Usage.Valid(), "usage null while queued")
	done, err := client.Responses.Get(context.Background(), queued.ID, responses.ResponseGetParams{})
	require.NoError(t, err)
	assert.Equal(t, responses.ResponseStatusCompleted, done.Status)
	assert.Equal(t, int64(10), done.Usage.TotalTokens)
}

// The OpenAI SDK's chat accumulator sums the usage of the final chunk.
func TestOpenAISDKChatStreamUsage(t *testing.T) {
	url := startFake(t, fakevllm.New(fakevllm.Config{PromptTokens: 5, CompletionTokens: 3}))
	client := openai.NewClient(option.WithBaseURL(url+"/v1/"), option.WithAPIKey("k"), option.WithMaxRetries(0))
	stream := client.Chat.Completions.NewStreaming(context.Background(), openai.ChatCompletionNewParams{
		Model: "m", Messages: []openai.ChatCompletionMessageParamUnion{openai.UserMessage("hi")}, N: openai.Int(2),
		StreamOptions: openai.ChatCompletionStreamOptionsParam{IncludeUsage: openai.Bool(true)},
	})
	var acc openai.ChatCompletionAccumulator
	for stream.Next() {
		acc.AddChunk(stream.Current())
	}
	require.NoError(t, stream.Err())
	assert.Equal(t, int64(5), acc.Usage.PromptTokens)
	assert.Equal(t, int64(6), acc.Usage.CompletionTokens)
	require.Len(t, acc.Choices, 2)
	assert.Equal(t, "Once fox ran", acc.Choices[1].Message.Content)
}

// The official Anthropic Go SDK reads /v1/messages, JSON and streamed.
func TestAnthropicSDK(t *testing.T) {
	url := startFake(t, fakevllm.New(fakevllm.Config{PromptTokens: 8, ServedModelName: "qwen"}))
	client := anthropic.NewClient(anthropicoption.WithBaseURL(url+"/"), anthropicoption.WithAPIKey("k"), anthropicoption.WithMaxRetries(0))
	params := anthropic.MessageNewParams{
		Model: "claude-x", MaxTokens: 3,
		Messages: []anthropic.MessageParam{anthropic.NewUserMessage(anthropic.NewTextBlock("hi"))},
	}
	msg, err := client.Messages.New(context.Background(), params)
	require.NoError(t, err)
	assert.Equal(t, int64(8), msg.Usage.InputTokens)
	assert.Equal(t, int64(3), msg.Usage.OutputTokens)
	assert.Equal(t, anthropic.StopReasonMaxTokens, msg.StopReason)
	require.Len(t, msg.Content, 1)
	assert.Equal(t, "Once fox ran", msg.Content[0].Text)

	stream := client.Messages.NewStreaming(context.Background(), params)
	var acc anthropic.Message
	for stream.Next() {
		require.NoError(t, acc.Accumulate(stream.Current()))
	}
	require.NoError(t, stream.Err())
	assert.Equal(t, int64(8), acc.Usage.InputTokens)
	assert.Equal(t, int64(3), acc.Usage.OutputTokens)
	require.Len(t, acc.Content, 1)
	assert.Equal(t, "Once fox ran", acc.Content[0].Text)

	_, err = client.Messages.New(context.Background(), params, anthropicoption.WithHeader(fakevllm.HeaderStatus, "402"))
	var apiErr *anthropic.Error
	require.ErrorAs(t, err, &apiErr)
	assert.Equal(t, 402, apiErr.StatusCode)
}
