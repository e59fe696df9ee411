package tokencount

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// Kind is what a count is of; it is part of the cache key.
type Kind uint8

// The kinds of count.
const (
	// Chat is a chat request's prompt: its messages with the chat
	// template applied (vLLM's TokenizeChatRequest).
	Chat Kind = iota + 1
	// Prompt is a completion or embedding prompt string, special tokens
	// added as the request asked (TokenizeCompletionRequest).
	Prompt
	// Text is delivered text: no template, no special tokens.
	Text
)

// String names the kind.
func (k Kind) String() string {
	switch k {
	case Chat:
		return "chat"
	case Prompt:
		return "prompt"
	case Text:
		return "text"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

// ErrUncountable is wrapped by the error of a request whose prompt
// /tokenize cannot count exactly: a shape it does not take, or content
// parts that are not text (an image's tokens depend on the image, which
// spendguard does not send).
var ErrUncountable = errors.New("prompt not countable by /tokenize")

// query is one /tokenize call: its kind and JSON body.
type query struct {
	model string
	kind  Kind
	body  []byte
}

// tokenizeChat is vLLM's TokenizeChatRequest, with the fields of the chat
// request that change its rendered prompt passed on as the client sent
// them (absent ones keep vLLM's defaults, which are the chat endpoint's).
type tokenizeChat struct {
	Model                string          `json:"model"`
	Messages             json.RawMessage `json:"messages"`
	Tools                json.RawMessage `json:"tools,omitempty"`
	AddGenerationPrompt  json.RawMessage `json:"add_generation_prompt,omitempty"`
	ContinueFinalMessage json.RawMessage `json:"continue_final_message,omitempty"`
	AddSpecialTokens     json.RawMessage `json:"add_special_tokens,omitempty"`
	ChatTemplate         json.RawMessage `json:"chat_template,omitempty"`
	ChatTemplateKwargs   json.RawMessage `json:"chat_template_kwargs,omitempty"`
}

// tokenizePrompt is vLLM's TokenizeCompletionRequest.
type tokenizePrompt struct {
	Model            string          `json:"model"`
	Prompt           string          `json:"prompt"`
	AddSpecialTokens json.RawMessage `json:"add_special_tokens,omitempty"`
}

// chatQuery builds the count of a chat completions request's prompt from
// the client's body: its messages (and tools) as sent, counted under
// model (the served one).
func chatQuery(model string, body []byte) (query, error) {
	var r tokenizeChat
	if err := json.Unmarshal(body, &r); err != nil {
		return query{}, fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	if !isArray(r.Messages) {
		return query{}, fmt.Errorf("%w: messages is not a list", ErrUncountable)
	}
	if err := textOnly(r.Messages); err != nil {
		return query{}, err
	}
	r.Model = model
	r.Tools = orNil(r.Tools)
	r.AddGenerationPrompt, r.ContinueFinalMessage = orNil(r.AddGenerationPrompt), orNil(r.ContinueFinalMessage)
	r.AddSpecialTokens, r.ChatTemplate, r.ChatTemplateKwargs = orNil(r.AddSpecialTokens), orNil(r.ChatTemplate), orNil(r.ChatTemplateKwargs)
	b, err := json.Marshal(&r)
	if err != nil {
		return query{}, fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	return query{model: model, kind: Chat, body: b}, nil
}

// promptQueries builds the counts of a completions (field "prompt") or
// embeddings (field "input") request's prompts: one per string; token-id
// prompts need no call, their length is returned as known.
func promptQueries(model, field string, body []byte) (qs []query, known int64, err error) {
	var top map[string]json.RawMessage
	if err := json.Unmarshal(body, &top); err != nil {
		return nil, 0, fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	special := orNil(top["add_special_tokens"])
	add := func(s string) error {
		b, err := json.Marshal(tokenizePrompt{Model: model, Prompt: s, AddSpecialTokens: special})
		qs = append(qs, query{model: model, kind: Prompt, body: b})
		return err
	}
	raw := top[field]
	var one string
	if json.Unmarshal(raw, &one) == nil && len(raw) > 0 && raw[0] == '"' {
		return qs, 0, add(one)
	}
	var list []json.RawMessage
	if err := json.Unmarshal(raw, &list); err != nil || len(list) == 0 {
		return nil, 0, fmt.Errorf("%w: %s is neither a string nor a list", ErrUncountable, field)
	}
	for _, item := range list {
		var s string
		var ids []int64
		var id int64
		switch {
		case json.Unmarshal(item, &s) == nil && item[0] == '"':
			err = add(s)
		case json.Unmarshal(item, &id) == nil:
			known++
		case json.Unmarshal(item, &ids) == nil:
			known += int64(len(ids))
		default:
			err = fmt.Errorf("%w: an item of %s is neither text nor token ids", ErrUncountable, field)
		}
		if err != nil {
			return nil, 0, err
		}
	}
	return qs, known, nil
}

// textQuery builds the count of delivered text.
func textQuery(model string, text []byte) query {
	no := json.RawMessage("false")
	b, _ := json.Marshal(tokenizePrompt{Model: model, Prompt: string(text), AddSpecialTokens: no}) // strings always marshal
	return query{model: model, kind: Text, body: b}
}

// textOnly fails when a message has a content part that is not text.
func textOnly(messages json.RawMessage) error {
	var ms []struct {
		Content json.RawMessage `json:"content"`
	}
	if err := json.Unmarshal(messages, &ms); err != nil {
		return fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	for _, m := range ms {
		if !isArray(m.Content) {
			continue
		}
		var parts []struct {
			Type string `json:"type"`
		}
		if err := json.Unmarshal(m.Content, &parts); err != nil {
			return fmt.Errorf("%w: %v", ErrUncountable, err)
		}
		for _, p := range parts {
			if p.Type != "text" {
				return fmt.Errorf("%w: a content part of type %q", ErrUncountable, p.Type)
			}
		}
	}
	return nil
}

func isArray(raw json.RawMessage) bool {
	raw = bytes.TrimLeft(raw, " \t\r\n")
	return len(raw) > 0 && raw[0] == '['
}

// orNil drops an explicit null, so vLLM applies its default.
func orNil(raw json.RawMessage) json.RawMessage {
	if bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
		return nil
	}
	return raw
}
