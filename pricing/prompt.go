package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"github.com/spendguard/spendguard/internal/jsonscan"
	"strconv"
	"unicode/utf8"
)

// counter adds up the prompt of a request.
type counter struct {
	bytes    int64 // UTF-8 bytes of prompt text
	tokens   int64 // prompt tokens given as ids
	messages int
	prompts  int
	nonText  int

	// Reused for the members of each message and content part.
	itemBuf, partBuf [8]jsonscan.Member
}

// where names a list element for error messages ("messages[2]" plus sub),
// formatted only when an error is reported.
type where struct {
	list string
	i    int
	sub  string
}

func (w where) String() string { return fmt.Sprintf("%s[%d]%s", w.list, w.i, w.sub) }

// messageList counts a chat "messages" array.
func (c *counter) messageList(raw json.RawMessage) error {
	if raw == nil || isNull(raw) {
		return nil
	}
	list, ok := asArray(raw)
	if !ok {
		return invalid("messages", "must be an array of messages")
	}
	for i := 0; ; i++ {
		m, obj, ok := list.NextObject(c.itemBuf[:0])
		if !ok {
			return nil
		}
		if err := c.item(where{list: "messages", i: i}, m, obj); err != nil {
			return err
		}
	}
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
	for i := 0; ; i++ {
		it, obj, ok := list.NextObject(c.itemBuf[:0])
		if !ok {
			return nil
		}
		if err := c.item(where{list: "input", i: i}, it, obj); err != nil {
			return err
		}
	}
}

// item counts one chat message or Responses input item: its content by its
// text, and every other field (role, name, tool_calls, arguments, output,
// ...) by its JSON length, which is at least the length of the text a chat
// template can render from it. obj is the members of raw, an element
// read by jsonscan.Elements.NextObject.
func (c *counter) item(w where, raw json.RawMessage, obj jsonscan.Object) error {
	if raw[0] != '{' {
		return invalid(w.String(), "must be an object")
	}
	c.messages++
	for i, m := range obj {
		if !obj.Unique(i) {
			continue // a later duplicate replaces it
		}
		if jsonscan.KeyIs(m.Key, "content") {
			w.sub = ".content"
			if err := c.content(w, m.Value); err != nil {
				return err
			}
			continue
		}
		c.bytes += int64(len(trim(m.Value)))
	}
	return nil
}

// content counts a message content: a string, null, or an array of parts.
func (c *counter) content(field where, raw json.RawMessage) error {
	if isNull(raw) {
		return nil
	}
	if n, ok := textLen(raw); ok {
		c.bytes += n
		return nil
	}
	parts, ok := asArray(raw)
	if !ok {
		return invalid(field.String(), "must be a string, an array of content parts or null")
	}
	for j := 0; ; j++ {
		part, obj, ok := parts.NextObject(c.partBuf[:0])
		if !ok {
			return nil
		}
		if n, ok := textLen(part); ok {
			c.bytes += n
			continue
		}
		if part[0] != '{' {
			return invalid(fmt.Sprintf("%s[%d]", field, j), "must be a content part object")
		}
		if !isTextPart(obj.Get("type")) {
			c.bytes += int64(len(trim(part)))
			c.nonText++
			continue
		}
		n, ok := textLen(obj.Get("text"))
		if !ok {
			typ, _ := asString(obj.Get("type"))
			return invalid(fmt.Sprintf("%s[%d].text", field, j), "must be a string in a %q part", typ)
		}
		c.bytes += n
	}
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
	for i := 0; ; i++ {
		el, ok := list.Next()
		if !ok {
			break
		}
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
		for j := 0; ; j++ {
			id, ok := ids.Next()
			if !ok {
				break
			}
			if !isNumber(id) {
				return invalid(fmt.Sprintf("%s[%d][%d]", field, i, j), "must be a token id")
			}
			c.tokens++
		}
		c.prompts++
	}
	if idPrompt {
		c.prompts++
	}
	return nil
}

// rawFields adds the JSON length of each of these fields that is present.
func (c *counter) rawFields(f *fields, names ...field) {
	for _, n := range names {
		if v := f[n]; v != nil && !isNull(v) {
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
	n, ok := smallInt(trim(raw))
	if !ok {
		var err error
		if n, err = strconv.ParseInt(string(trim(raw)), 10, 64); err != nil {
			return invalid(field, "must be an integer, got %s", trim(raw))
		}
	}
	if n < least {
		return invalid(field, "must be at least %d, got %d", least, n)
	}
	*dst = n
	return nil
}

// smallInt reads an integer of at most 18 digits without allocating;
// false for anything else (a fraction, an exponent, a longer number).
func smallInt(b []byte) (int64, bool) {
	neg := len(b) > 0 && b[0] == '-'
	if neg {
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var n int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		n = n*10 + int64(c-'0')
	}
	if neg {
		n = -n
	}
	return n, true
}

func invalid(field, format string, args ...any) error {
	return fmt.Errorf("%w: %s: %s", ErrInvalidRequest, field, fmt.Sprintf(format, args...))
}

// The helpers below take JSON that jsonscan.Valid has accepted.

// trim is bytes.TrimSpace. The values jsonscan hands out start and end
// with bytes that are ASCII and not space: those it returns at once.
func trim(raw json.RawMessage) json.RawMessage {
	if n := len(raw); n > 0 && notSpace(raw[0]) && notSpace(raw[n-1]) {
		return raw
	}
	return bytes.TrimSpace(raw)
}

// notSpace reports whether c is an ASCII byte that is not white space
// (all of which are at most ' ').
func notSpace(c byte) bool { return ' ' < c && c < utf8.RuneSelf }

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

func asString(raw json.RawMessage) (string, bool) { return jsonscan.String(raw) }

// textLen is the UTF-8 length of a JSON string once decoded, false when raw
// is not a string. A string without escapes and with valid UTF-8 decodes to
// its own bytes; the others are measured without being decoded.
func textLen(raw json.RawMessage) (int64, bool) {
	raw = trim(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return 0, false
	}
	inner := raw[1 : len(raw)-1]
	if jsonscan.Verbatim(inner) {
		return int64(len(inner)), true
	}
	n, ok := jsonscan.DecodedLen(inner)
	return int64(n), ok
}

// isTextPart reports whether a content part's "type" names a text part.
func isTextPart(raw json.RawMessage) bool {
	raw = trim(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return false
	}
	if inner := raw[1 : len(raw)-1]; jsonscan.Verbatim(inner) {
		return isTextPartType(string(inner))
	}
	typ, _ := asString(raw)
	return isTextPartType(typ)
}

// isTextPartType reports whether typ is a content part type whose "text"
// is the prompt.
func isTextPartType(typ string) bool {
	switch typ {
	case "text", "input_text", "output_text":
		return true
	}
	return false
}

// asObject reads the members of an object into buf's storage.
func asObject(raw json.RawMessage, buf jsonscan.Object) (jsonscan.Object, bool) {
	raw = trim(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil, false
	}
	return jsonscan.Members(raw, buf), true
}

func asArray(raw json.RawMessage) (jsonscan.Elements, bool) {
	raw = trim(raw)
	if len(raw) == 0 || raw[0] != '[' {
		return jsonscan.Elements{}, false
	}
	return jsonscan.NewElements(raw), true
}
