package pricing

import (
	"bytes"
	"encoding/json"
	"fmt"
	"strconv"
	"unicode/utf8"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// The readers of single JSON values: the top-level fields ParseRequest
// checks (a string, a boolean, a count), each taking the value as the
// scan found it (nil when absent), and the predicates the prompt walkers
// use on values already validated.

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

// stated reports whether a member's value raw is there and not null.
func stated(raw json.RawMessage) bool { return raw != nil && !isNull(raw) }

func isNumber(raw json.RawMessage) bool {
	b := first(raw)
	return b == '-' || (b >= '0' && b <= '9')
}

func asString(raw json.RawMessage) (string, bool) { return jsonscan.String(raw) }

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
