package tokencount

import (
	"context"
	"encoding/json"
	"fmt"
)

// ChatInput is a prompt already in the chat completions shape: the
// messages and tools a chat template renders, as vLLM builds them from a
// request of another API before it applies the template (FromAnthropic,
// FromResponses).
type ChatInput struct {
	// Messages is the JSON list of chat messages.
	Messages json.RawMessage
	// Tools is the JSON list of chat tools ({"type":"function",
	// "function":{…}}); nil for none.
	Tools json.RawMessage
	// AddGenerationPrompt and ContinueFinalMessage are the template
	// options; nil keeps vLLM's defaults (true and false).
	AddGenerationPrompt, ContinueFinalMessage *bool
	// ChatTemplateKwargs is the JSON object of extra template variables;
	// nil for none.
	ChatTemplateKwargs json.RawMessage
}

// messagesQuery builds the count of in under model.
func messagesQuery(model string, in ChatInput) (query, error) {
	if !isArray(in.Messages) {
		return query{}, fmt.Errorf("%w: messages is not a list", ErrUncountable)
	}
	if err := textOnly(in.Messages); err != nil {
		return query{}, err
	}
	r := tokenizeChat{Model: model, Messages: in.Messages, Tools: orNil(in.Tools), ChatTemplateKwargs: orNil(in.ChatTemplateKwargs)}
	r.AddGenerationPrompt, r.ContinueFinalMessage = rawBool(in.AddGenerationPrompt), rawBool(in.ContinueFinalMessage)
	b, err := json.Marshal(&r)
	if err != nil {
		return query{}, fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	return query{model: model, kind: Chat, body: b}, nil
}

func rawBool(b *bool) json.RawMessage {
	switch {
	case b == nil:
		return nil
	case *b:
		return json.RawMessage("true")
	}
	return json.RawMessage("false")
}

// ChatMessages counts a prompt already in the chat shape (see ChatInput)
// as model renders it, the chat template applied. It never blocks.
func (c *Client) ChatMessages(ctx context.Context, model string, in ChatInput) *Count {
	q, err := messagesQuery(model, in)
	if err != nil {
		return failedCount(err)
	}
	return c.submit(ctx, 0, q)
}
