package usage

import (
	"bytes"
	"errors"
	"fmt"
)

// What SSEScanner looks for in an event's data. Every check starts with
// bytes.Index for a quoted key, so an event without it costs a few
// vectorised searches and no decoding.
var (
	keyUsage     = []byte(`"usage"`)
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
	s.data, s.big, s.typLen, s.topParsed = s.data[:0], false, 0, false
	if len(data) == 0 {
		return false // no data line: not an event
	}
	if !big {
		data = data[:len(data)-1] // the '\n' after the last data line
		if bytes.Equal(data, doneData) {
			return false // the end marker, not an event
		}
	}
	s.events++
	if s.kind != SSEChat && len(typ) == 0 {
		typ = firstStringValue(data, keyType)
	}
	if s.isContent(data, typ) {
		s.content++
		if s.textLimit > len(s.text) && !big {
			s.captureText(data, typ)
		}
	}
	if !big {
		if s.kind == SSEResponses {
			s.noteResponseID(data)
		}
		s.findModel(data, typ)
		if s.strip != StripNone {
			s.planStrip(data)
		}
	}
	if s.kind == SSEAnthropic {
		if !big {
			s.anthropicEvent(data, typ)
		}
		return false
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
	case found && s.kind == SSEChat && !big:
		s.chatUsage(data, u, s.js.Details())
	case found:
		s.occ, s.usage, s.details, s.usageErr = occFound, u, s.js.Details(), nil
		s.final = true
	}
	return s.drop && !big && s.isUsageOnly(data)
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
// whose type ends in ".delta" with a non-empty string under "delta"; for
// SSEAnthropic a content_block_delta with a non-empty text, partial_json
// or thinking;
// for SSEChat an event with a non-empty string under content, text,
// reasoning_content, reasoning or refusal, or a non-empty tool_calls array.
func (s *SSEScanner) isContent(data, typ []byte) bool {
	if s.kind == SSEAnthropic {
		return isAnthropicContent(data, typ)
	}
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

// isUsageOnly reports whether data is a chat event with a non-null
// top-level usage and an empty top-level choices array: the event vLLM and
// OpenAI send when include_usage is set.
func (s *SSEScanner) isUsageOnly(data []byte) bool {
	top, object := s.topMembers(data)
	if !object {
		return false
	}
	usage := top.Get("usage")
	if usage == nil || string(usage) == "null" {
		return false
	}
	choices := trimSpace(top.Get("choices"))
	return len(choices) >= 2 && choices[0] == '[' && len(trimSpace(choices[1:len(choices)-1])) == 0
}
