package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"
)

// object is a decoded JSON object whose values are left undecoded. A map
// keeps keys exact (encoding/json would match struct fields regardless of
// case, which the model server does not) and lets the last duplicate win.
type object map[string]json.RawMessage

// counter adds up the prompt of a request.
type counter struct {
	bytes    int64 // UTF-8 bytes of prompt text
	tokens   int64 // prompt tokens given as ids
	messages int
	prompts  int
	nonText  int
}

// messageList counts a chat "messages" array.
func (c *counter) messageList(raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	list, ok := asArray(raw)
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

// responsesInput counts the "input" of /v1/responses: a string, or a list of
// items (messages, function calls and their outputs, ...).
func (c *counter) responsesInput(raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	if n, ok := textLen(raw); ok {
		c.bytes += n
		c.messages++
		return nil
	}
	list, ok := asArray(raw)
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

// item counts one chat message or Responses input item: its content by its
// text, and every other field (role, name, tool_calls, arguments, output,
// ...) by its JSON length, which is at least the length of the text a chat
// template can render from it.
func (c *counter) item(field string, raw json.RawMessage) error {
	obj, ok := asObject(raw)
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

// textPartTypes are the content part types whose "text" is the prompt.
var textPartTypes = map[string]bool{"text": true, "input_text": true, "output_text": true}

// content counts a message content: a string, null, or an array of parts.
func (c *counter) content(field string, raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	if n, ok := textLen(raw); ok {
		c.bytes += n
		return nil
	}
	parts, ok := asArray(raw)
	if !ok {
		return invalid(field, "must be a string, an array of content parts or null")
	}
	for j, part := range parts {
		pf := fmt.Sprintf("%s[%d]", field, j)
		if n, ok := textLen(part); ok {
			c.bytes += n
			continue
		}
		obj, ok := asObject(part)
		if !ok {
			return invalid(pf, "must be a content part object")
		}
		typ, _ := asString(obj["type"])
		if !textPartTypes[typ] {
			c.bytes += int64(len(trim(part)))
			c.nonText++
			continue
		}
		n, ok := textLen(obj["text"])
		if !ok {
			return invalid(pf+".text", "must be a string in a %q part", typ)
		}
		c.bytes += n
	}
	return nil
}

// promptList counts the prompt of /v1/completions or the input of
// /v1/embeddings: a string, an array of strings, an array of token ids, or
// an array of arrays of token ids. Each string or token array is one prompt
// of the batch.
func (c *counter) promptList(field string, raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	if n, ok := textLen(raw); ok {
		c.bytes += n
		c.prompts++
		return nil
	}
	list, ok := asArray(raw)
	if !ok {
		return invalid(field, "must be a string, an array of strings or an array of token ids")
	}
	idPrompt := false
	for i, el := range list {
		if n, ok := textLen(el); ok {
			c.bytes += n
			c.prompts++
			continue
		}
		if isNumber(el) {
			c.tokens++
			idPrompt = true
			continue
		}
		ids, ok := asArray(el)
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

// rawFields adds the JSON length of each named field that is present.
func (c *counter) rawFields(obj object, names ...string) {
	for _, n := range names {
		if v, ok := obj[n]; ok && !isNull(v) {
			c.bytes += int64(len(trim(v)))
		}
	}
}

// stringField sets *dst from a string or null (which leaves *dst alone).
func stringField(dst *string, field string, raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	s, ok := asString(raw)
	if !ok {
		return invalid(field, "must be a string")
	}
	*dst = s
	return nil
}

// boolField sets *dst from a boolean or null (which leaves *dst alone).
func boolField(dst *bool, field string, raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	switch string(trim(raw)) {
	case "true":
		*dst = true
	case "false":
		*dst = false
	default:
		return invalid(field, "must be true, false or null")
	}
	return nil
}

// countField sets *dst from an integer no less than least, or from null
// (which leaves *dst alone).
func countField(dst *int64, field string, raw json.RawMessage, least int64) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	if !isNumber(raw) {
		return invalid(field, "must be an integer")
	}
	n, err := strconv.ParseInt(string(trim(raw)), 10, 64)
	if err != nil {
		return invalid(field, "must be an integer, got %s", trim(raw))
	}
	if n < least {
		return invalid(field, "must be at least %d, got %d", least, n)
	}
	*dst = n
	return nil
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidRequest, field, fmt.Sprintf(format, args...))
}

// The helpers below take JSON that encoding/json has already validated.

func trim(raw json.RawMessage) json.RawMessage { return bytes.TrimSpace(raw) }

func first(raw json.RawMessage) byte {
	raw = trim(raw)
	if len(raw) == 0 {
		return 0
	}
	return raw[0]
}

func isNull(raw json.RawMessage) bool { return first(raw) == 'n' }

func isNumber(raw json.RawMessage) bool {
	b := first(raw)
	return b == '-' || (b >= '0' && b <= '9')
}

func asString(raw json.RawMessage) (string, bool) {
	if first(raw) != '"' {
		return "", false
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// textLen is the UTF-8 length of a JSON string once decoded, false when raw
// is not a string. A string without escapes and with valid UTF-8 decodes to
// its own bytes, so only the others are decoded.
func textLen(raw json.RawMessage) (int64, bool) {
	raw = trim(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return 0, false
	}
	inner := raw[1 : len(raw)-1]
	if bytes.IndexByte(inner, '\\') < 0 && utf8.Valid(inner) {
		return int64(len(inner)), true
	}
	s, ok := asString(raw)
	return int64(len(s)), ok
}

func asObject(raw json.RawMessage) (object, bool) {
	if first(raw) != '{' {
		return nil, false
	}
	var o object
	if json.Unmarshal(raw, &o) != nil {
		return nil, false
	}
	return o, true
}

func asArray(raw json.RawMessage) ([]json.RawMessage, bool) {
	if first(raw) != '[' {
		return nil, false
	}
	var a []json.RawMessage
	if json.Unmarshal(raw, &a) != nil {
		return nil, false
	}
	return a, true
}
