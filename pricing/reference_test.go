package pricing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"unicode/utf8"
)

// The parser as it was before it read bodies in place: every object
// decoded into a map, every array into a slice. It is the reference the
// in-place parser must agree with, on every input (FuzzParseRequestAgrees).

type refObject map[string]json.RawMessage

type refCounter struct {
	bytes    int64
	tokens   int64
	messages int
	prompts  int
	nonText  int
}

// textPartTypes are the content part types whose "text" is the prompt.
var textPartTypes = map[string]bool{"text": true, "input_text": true, "output_text": true}

func refParseRequest(e Endpoint, body []byte) (*Request, error) {
	if e < ChatCompletions || e > Responses {
		return nil, fmt.Errorf("%w: %v has no JSON request to parse", ErrInvalidRequest, e)
	}
	var top refObject
	if err := json.Unmarshal(body, &top); err != nil {
		var syn *json.SyntaxError
		if errors.As(err, &syn) {
			return nil, fmt.Errorf("%w: not valid JSON: %v (at byte %d)", ErrInvalidRequest, syn, syn.Offset)
		}
		return nil, fmt.Errorf("%w: the body must be a JSON object", ErrInvalidRequest)
	}
	if top == nil {
		return nil, fmt.Errorf("%w: the body must be a JSON object, not null", ErrInvalidRequest)
	}

	r := &Request{Endpoint: e, N: 1, Prompts: 1}
	model, ok := top["model"]
	if !ok {
		return nil, invalid("model", "missing")
	}
	if r.Model, ok = refAsString(model); !ok {
		return nil, invalid("model", "must be a string")
	}
	if r.Model == "" {
		return nil, invalid("model", "must not be empty")
	}
	if err := stringField(&r.User, "user", top["user"]); err != nil {
		return nil, err
	}
	if e != Embeddings {
		if err := refReadStream(r, top); err != nil {
			return nil, err
		}
	}

	c := refCounter{}
	var err error
	switch e {
	case ChatCompletions:
		err = refReadChat(r, top, &c)
	case Completions:
		err = refReadCompletions(r, top, &c)
	case Embeddings:
		err = refReadEmbeddings(r, top, &c)
	case Responses:
		err = refReadResponses(r, top, &c)
	}
	if err != nil {
		return nil, err
	}
	r.PromptBytes, r.PromptTokensKnown = c.bytes, c.tokens
	r.Messages, r.NonTextParts = c.messages, c.nonText
	r.Prompts = max(c.prompts, 1)
	return r, nil
}

func refReadStream(r *Request, top refObject) error {
	if err := boolField(&r.Stream, "stream", top["stream"]); err != nil {
		return err
	}
	raw, ok := top["stream_options"]
	if !ok || isNull(raw) {
		return nil
	}
	opts, ok := refAsObject(raw)
	if !ok {
		return invalid("stream_options", "must be an object or null")
	}
	r.StreamOptionsPresent = true
	return boolField(&r.IncludeUsage, "stream_options.include_usage", opts["include_usage"])
}

func refReadChat(r *Request, top refObject, c *refCounter) error {
	var maxTokens, maxCompletion int64
	if err := countField(&maxTokens, "max_tokens", top["max_tokens"], 0); err != nil {
		return err
	}
	if err := countField(&maxCompletion, "max_completion_tokens", top["max_completion_tokens"], 0); err != nil {
		return err
	}
	r.MaxOutputTokens = max(maxTokens, maxCompletion)
	if err := countField(&r.N, "n", top["n"], 1); err != nil {
		return err
	}
	if err := c.messageList(top["messages"]); err != nil {
		return err
	}
	c.rawFields(top, "tools", "functions", "documents", "chat_template")
	return nil
}

func refReadCompletions(r *Request, top refObject, c *refCounter) error {
	if err := countField(&r.MaxOutputTokens, "max_tokens", top["max_tokens"], 0); err != nil {
		return err
	}
	if err := countField(&r.N, "n", top["n"], 1); err != nil {
		return err
	}
	var bestOf int64 = 1
	if err := countField(&bestOf, "best_of", top["best_of"], 1); err != nil {
		return err
	}
	r.N = max(r.N, bestOf)
	if err := c.promptList("prompt", top["prompt"]); err != nil {
		return err
	}
	c.rawFields(top, "prompt_embeds")
	return nil
}

func refReadEmbeddings(r *Request, top refObject, c *refCounter) error {
	if err := c.promptList("input", top["input"]); err != nil {
		return err
	}
	// vLLM also embeds a chat conversation given as "messages".
	if err := c.messageList(top["messages"]); err != nil {
		return err
	}
	c.rawFields(top, "tools", "chat_template")
	return nil
}

func refReadResponses(r *Request, top refObject, c *refCounter) error {
	if err := countField(&r.MaxOutputTokens, "max_output_tokens", top["max_output_tokens"], 0); err != nil {
		return err
	}
	var instructions string
	if err := stringField(&instructions, "instructions", top["instructions"]); err != nil {
		return err
	}
	if instructions != "" {
		c.bytes += int64(len(instructions))
		c.messages++
	}
	if err := c.responsesInput(top["input"]); err != nil {
		return err
	}
	c.rawFields(top, "tools")
	return nil
}

func (c *refCounter) messageList(raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	list, ok := refAsArray(raw)
	if !ok {
		return invalid("messages", "must be an array of messages")
	}
	for i, m := range list {
		if err := c.item(fmt.Sprintf("messages[%d]", i), m); err != nil {
			return err
		}
	}
	return nil
}

func (c *refCounter) responsesInput(raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	if n, ok := refTextLen(raw); ok {
		c.bytes += n
		c.messages++
		return nil
	}
	list, ok := refAsArray(raw)
	if !ok {
		return invalid("input", "must be a string or an array of input items")
	}
	for i, it := range list {
		if err := c.item(fmt.Sprintf("input[%d]", i), it); err != nil {
			return err
		}
	}
	return nil
}

func (c *refCounter) item(field string, raw json.RawMessage) error {
	obj, ok := refAsObject(raw)
	if !ok {
		return invalid(field, "must be an object")
	}
	c.messages++
	for k, v := range obj {
		if k == "content" {
			if err := c.content(field+".content", v); err != nil {
				return err
			}
			continue
		}
		c.bytes += int64(len(trim(v)))
	}
	return nil
}

func (c *refCounter) content(field string, raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	if n, ok := refTextLen(raw); ok {
		c.bytes += n
		return nil
	}
	parts, ok := refAsArray(raw)
	if !ok {
		return invalid(field, "must be a string, an array of content parts or null")
	}
	for j, part := range parts {
		pf := fmt.Sprintf("%s[%d]", field, j)
		if n, ok := refTextLen(part); ok {
			c.bytes += n
			continue
		}
		obj, ok := refAsObject(part)
		if !ok {
			return invalid(pf, "must be a content part object")
		}
		typ, _ := refAsString(obj["type"])
		if !textPartTypes[typ] {
			c.bytes += int64(len(trim(part)))
			c.nonText++
			continue
		}
		n, ok := refTextLen(obj["text"])
		if !ok {
			return invalid(pf+".text", "must be a string in a %q part", typ)
		}
		c.bytes += n
	}
	return nil
}

func (c *refCounter) promptList(field string, raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	if n, ok := refTextLen(raw); ok {
		c.bytes += n
		c.prompts++
		return nil
	}
	list, ok := refAsArray(raw)
	if !ok {
		return invalid(field, "must be a string, an array of strings or an array of token ids")
	}
	idPrompt := false
	for i, el := range list {
		if n, ok := refTextLen(el); ok {
			c.bytes += n
			c.prompts++
			continue
		}
		if isNumber(el) {
			c.tokens++
			idPrompt = true
			continue
		}
		ids, ok := refAsArray(el)
		if !ok {
			return invalid(fmt.Sprintf("%s[%d]", field, i), "must be a string or an array of token ids")
		}
		for j, id := range ids {
			if !isNumber(id) {
				return invalid(fmt.Sprintf("%s[%d][%d]", field, i, j), "must be a token id")
			}
		}
		c.tokens += int64(len(ids))
		c.prompts++
	}
	if idPrompt {
		c.prompts++
	}
	return nil
}

func (c *refCounter) rawFields(obj refObject, names ...string) {
	for _, n := range names {
		if v, ok := obj[n]; ok && !isNull(v) {
			c.bytes += int64(len(trim(v)))
		}
	}
}

func refAsString(raw json.RawMessage) (string, bool) {
	if first(raw) != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

func refTextLen(raw json.RawMessage) (int64, bool) {
	raw = trim(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return 0, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return int64(len(inner)), true
	}
	s, ok := refAsString(raw)
	return int64(len(s)), ok
}

func refAsObject(raw json.RawMessage) (refObject, bool) {
	if first(raw) != '{' {
		return nil, false
	}
	var o refObject
	if json.Unmarshal(raw, &o) != nil {
		return nil, false
	}
	return o, true
}

func refAsArray(raw json.RawMessage) ([]json.RawMessage, bool) {
	if first(raw) != '[' {
		return nil, false
	}
	var a []json.RawMessage
	if json.Unmarshal(raw, &a) != nil {
		return nil, false
	}
	return a, true
}
