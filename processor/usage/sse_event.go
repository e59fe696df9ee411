package usage

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// What SSEScanner looks for in an event's data. Every check starts with
// bytes.Index for a quoted key, so an event without it costs a few
// vectorised searches and no decoding.
var (
	keyUsage     = []byte(`"usage"`)
	keyError     = []byte(`"error"`)
	keyObject    = []byte(`"object"`)
	keyType      = []byte(`"type"`)
	keyDelta     = []byte(`"delta"`)
	keyToolCalls = []byte(`"tool_calls"`)
	jsonNull     = []byte("null")
	doneData     = []byte("[DONE]")
	deltaSuffix  = []byte(".delta")
	unicodeEsc   = []byte(`\u00`)

	// contentKeys hold generated text in chat and completions events.
	contentKeys = [][]byte{[]byte(`"content"`), []byte(`"text"`), []byte(`"reasoning_content"`), []byte(`"reasoning"`), []byte(`"refusal"`)}
)

// maxErrorMessage bounds UpstreamError.
const maxErrorMessage = 1 << 10

// usagePath is where the kind's events carry usage (nil: top-level usage).
func (s *SSEScanner) usagePath() []string {
	if s.kind == SSEResponses {
		return responsesUsagePath
	}
	return nil
}

// dispatch looks at the event that just ended and forgets it. It reports
// whether it is the usage-only event of a chat stream.
func (s *SSEScanner) dispatch() (usageOnly bool) {
	data, big, typ := s.data, s.big, s.typ[:s.typLen]
	s.data, s.big, s.typLen = s.data[:0], false, 0
	if len(data) == 0 {
		return false // no data line: not an event
	}
	if !big {
		data = data[:len(data)-1] // the '\n' after the last data line
		if bytes.Equal(data, doneData) {
			s.done = true
			return false
		}
	}
	s.events++
	if s.kind == SSEResponses && len(typ) == 0 {
		typ = firstStringValue(data, keyType)
	}
	if s.isContent(data, typ) {
		s.content++
	}
	if s.kind == SSEResponses {
		switch string(typ) {
		case "response.completed", "response.incomplete", "response.failed":
			s.done = true
		}
	}
	if !big && s.upErr == "" && s.mayBeError(data, typ) {
		s.upErr = errorMessage(data)
	}
	switch {
	case big:
	case mayHaveUsage(data):
		s.js.resetPath(s.usagePath())
		s.js.Write(data)
	default:
		return false
	}
	u, found, err := s.js.Result()
	switch {
	case errors.Is(err, ErrUsage):
		s.occ, s.usageErr = occFailed, fmt.Errorf("stream event %d: %w", s.events, err)
	case err != nil:
		return false // not JSON: no usage
	case found:
		s.occ, s.usage, s.details, s.usageErr = occFound, u, s.js.Details(), nil
	}
	return s.drop && !big && isUsageOnly(data)
}

// mayHaveUsage reports whether data may hold a non-null usage member: a
// "usage" key written literally whose value is not null, or an escaped
// letter of "usage" (\u0061, \u0065, \u0067, \u0073, \u0075), which no
// encoder writes but JSON allows in a key. When it reports false, a
// JSONScanner would find no usage in data.
func mayHaveUsage(data []byte) bool {
	for v := nextValue(data, keyUsage, 0); v >= 0; v = nextValue(data, keyUsage, v) {
		if !bytes.HasPrefix(data[v:], jsonNull) {
			return true
		}
	}
	for from := 0; ; {
		i := bytes.Index(data[from:], unicodeEsc)
		if i < 0 || from+i+6 > len(data) {
			return false
		}
		switch string(data[from+i+4 : from+i+6]) {
		case "61", "65", "67", "73", "75":
			return true
		}
		from += i + 1
	}
}

// nextValue returns the index of the value of the next member whose key is
// written exactly as quotedKey, found at or after from, or -1. A match may
// be a false one (inside a string, or the end of a longer key with an
// escaped quote), never a missed one.
func nextValue(data, quotedKey []byte, from int) int {
	for from < len(data) {
		i := bytes.Index(data[from:], quotedKey)
		if i < 0 {
			return -1
		}
		from += i + len(quotedKey)
		if j := skipSpace(data, from); j < len(data) && data[j] == ':' {
			return skipSpace(data, j+1)
		}
	}
	return -1
}

func skipSpace(data []byte, i int) int {
	for i < len(data) && isSpace(data[i]) {
		i++
	}
	return i
}

// firstStringValue returns the text of the first string value of a member
// written as quotedKey (escapes not decoded), or nil.
func firstStringValue(data, quotedKey []byte) []byte {
	v := nextValue(data, quotedKey, 0)
	if v < 0 || v >= len(data) || data[v] != '"' {
		return nil
	}
	end := bytes.IndexByte(data[v+1:], '"')
	if end < 0 {
		return nil
	}
	return data[v+1 : v+1+end]
}

// isContent is the content-event heuristic: for SSEResponses an event
// whose type ends in ".delta" with a non-empty string under "delta";
// for SSEChat an event with a non-empty string under content, text,
// reasoning_content, reasoning or refusal, or a non-empty tool_calls array.
func (s *SSEScanner) isContent(data, typ []byte) bool {
	if s.kind == SSEResponses {
		if !bytes.HasSuffix(typ, deltaSuffix) {
			return false
		}
		return hasNonEmptyString(data, keyDelta)
	}
	for _, key := range contentKeys {
		if hasNonEmptyString(data, key) {
			return true
		}
	}
	for v := nextValue(data, keyToolCalls, 0); v >= 0; v = nextValue(data, keyToolCalls, v) {
		if v < len(data) && data[v] == '[' {
			if w := skipSpace(data, v+1); w < len(data) && data[w] != ']' {
				return true
			}
		}
	}
	return false
}

// hasNonEmptyString reports whether a member written as quotedKey holds a
// string that is not empty.
func hasNonEmptyString(data, quotedKey []byte) bool {
	for v := nextValue(data, quotedKey, 0); v >= 0; v = nextValue(data, quotedKey, v) {
		if v+1 < len(data) && data[v] == '"' && data[v+1] != '"' {
			return true
		}
	}
	return false
}

// mayBeError reports whether data may be an error event: for SSEResponses
// an event of type error or response.failed; else data must hold the text
// "error" as a key whose value is an object, or as the value of an "object"
// or "type" member (one search for the rare "error" in a token event).
func (s *SSEScanner) mayBeError(data, typ []byte) bool {
	if s.kind == SSEResponses && (string(typ) == "error" || string(typ) == "response.failed") {
		return true
	}
	for from := 0; from < len(data); {
		i := bytes.Index(data[from:], keyError)
		if i < 0 {
			return false
		}
		i += from
		from = i + len(keyError)
		if j := skipSpace(data, from); j < len(data) && data[j] == ':' {
			if v := skipSpace(data, j+1); v < len(data) && data[v] == '{' {
				return true
			}
			continue
		}
		j := i
		for j > 0 && isSpace(data[j-1]) {
			j--
		}
		if j == 0 || data[j-1] != ':' {
			continue
		}
		for j--; j > 0 && isSpace(data[j-1]); j-- {
		}
		if key := data[:j]; bytes.HasSuffix(key, keyObject) || bytes.HasSuffix(key, keyType) {
			return true
		}
	}
	return false
}

// errorMessage decodes the message of an error event: error.message,
// the top-level message of an {"object":"error"} or {"type":"error"}
// event, or response.error.message. It is "" when data is no error event;
// when an error has no message string, its JSON stands in for it.
func errorMessage(data []byte) string {
	top := members(data)
	if top == nil {
		return ""
	}
	errObj := members(top["error"])
	if errObj == nil && (string(top["object"]) == `"error"` || string(top["type"]) == `"error"`) {
		errObj = top
	}
	if errObj == nil {
		errObj = members(members(top["response"])["error"])
	}
	if errObj == nil {
		return ""
	}
	var msg string
	if json.Unmarshal(errObj["message"], &msg) != nil || msg == "" {
		raw, _ := json.Marshal(errObj)
		msg = string(raw)
	}
	if len(msg) > maxErrorMessage {
		msg = strings.ToValidUTF8(msg[:maxErrorMessage], "\uFFFD") // a cut rune
	}
	return msg
}

// isUsageOnly reports whether data is a chat event with a non-null
// top-level usage and an empty top-level choices array: the event vLLM and
// OpenAI send when include_usage is set.
func isUsageOnly(data []byte) bool {
	var buf [16]jsonscan.Member
	top, valid, object := jsonscan.ValidMembers(data, buf[:0])
	if !valid || !object {
		return false
	}
	usage := top.Get("usage")
	if usage == nil || string(usage) == "null" {
		return false
	}
	choices := trimSpace(top.Get("choices"))
	return len(choices) >= 2 && choices[0] == '[' && len(trimSpace(choices[1:len(choices)-1])) == 0
}

// members decodes a JSON object into its members; nil when raw is not one.
func members(raw []byte) map[string]json.RawMessage {
	raw = trimSpace(raw)
	if len(raw) == 0 || raw[0] != '{' {
		return nil
	}
	var m map[string]json.RawMessage
	if json.Unmarshal(raw, &m) != nil {
		return nil
	}
	return m
}
