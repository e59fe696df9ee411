package usage

import (
	"bytes"
	"unicode/utf8"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// The model the upstream names in its response
//
// Both scanners also keep the response's own "model" member, the name the
// upstream answered under (CostReport.response_model): for a JSON body the
// top-level member (the last one, like a map, whatever it holds); for
// SSEChat the top-level member of the first event that has one as a
// string; for SSEResponses the response.model member of the first event
// that has one (its *.delta events are skipped). Only a string counts; keys match after unescaping, as for
// usage. Its raw JSON is kept (at most maxModelBytes of it, else nothing)
// and decoded only when Model is called. A token event costs nothing once
// the model is known and, before, two bytes.Index unless it may hold the
// key (written as is, or with a \u00XX escape): then its top-level members
// are read in place.

// modelKey is the member holding the model's name.
const modelKey = "model"

// maxModelBytes bounds the raw JSON string kept for a model name; a longer
// one is not kept.
const maxModelBytes = 1 << 10

var keyModel = []byte(`"` + modelKey + `"`)

// modelCapture is the JSONScanner's state for the top-level model member.
type modelCapture struct {
	pos       int8 // bytes of modelKey the current top-level key matches; -1: no match possible
	next      bool // the value about to start is the model member's
	capturing bool // the model string is being copied into raw
	start     int  // where the capture starts in the current chunk
	raw       []byte
}

// Model returns the top-level "model" string of the body fed so far, ""
// when there is none (or it is no string, or too long). When it equals
// likely (the model the request was sent with, say), likely itself is
// returned, without a copy.
func (s *JSONScanner) Model(likely string) string { return decodeModel(s.model.raw, likely) }

// Model returns the model the stream's events name (see the package
// documentation), "" when none does; likely as for JSONScanner.Model.
func (s *SSEScanner) Model(likely string) string { return decodeModel(s.modelRaw, likely) }

func decodeModel(raw []byte, likely string) string {
	// Without escapes a valid JSON string decodes to its bytes (invalid
	// UTF-8 aside).
	if len(raw) >= 2 && string(raw[1:len(raw)-1]) == likely &&
		bytes.IndexByte(raw, '\\') < 0 && utf8.ValidString(likely) {
		return likely
	}
	m, _ := jsonscan.String(raw)
	return m
}

// beginModelKey starts matching a key against modelKey when it is a key of
// the top-level object of a body scanned for usage (not an SSE event's
// path).
func (s *JSONScanner) beginModelKey() {
	s.model.pos = -1
	if s.depth == 1 && s.path == nil {
		s.model.pos = 0
	}
}

// matchModelKey advances the match of the current key by one unescaped
// byte.
func (s *JSONScanner) matchModelKey(c byte) {
	if p := s.model.pos; p >= 0 && int(p) < len(modelKey) && c == modelKey[p] {
		s.model.pos++
	} else {
		s.model.pos = -1
	}
}

// endModelKey handles the end of a key: when it is modelKey, the value
// that follows replaces the model.
func (s *JSONScanner) endModelKey() {
	if int(s.model.pos) == len(modelKey) {
		s.model.next = true
	}
	s.model.pos = -1
}

// wholeModel reads the value of a top-level model member that starts at
// p[i]: a string complete in this chunk is kept in one go; one that goes
// on is captured byte by byte (it returns 0); any other value only
// forgets the earlier model.
func (s *JSONScanner) wholeModel(p []byte, i int) int {
	s.model.next = false
	s.model.raw = s.model.raw[:0]
	if p[i] != '"' {
		return 0
	}
	end := jsonscan.ValidValue(p, i, s.depth)
	if end < 0 {
		s.model.capturing, s.model.start = true, i
		return 0
	}
	s.addModel(p[i:end])
	s.state = stAfterValue
	return end
}

// addModel appends b to the kept model string, or forgets it when it gets
// longer than maxModelBytes.
func (s *JSONScanner) addModel(b []byte) {
	if len(s.model.raw)+len(b) > maxModelBytes {
		s.model.raw = s.model.raw[:0]
		s.model.capturing = false
		return
	}
	s.model.raw = append(s.model.raw, b...)
}

// findModel looks for the model in a complete event's data, of type typ,
// until one is found. The Responses API's token events (type *.delta)
// hold no response object and are not looked at.
func (s *SSEScanner) findModel(data, typ []byte) {
	if s.modelFound || s.kind == SSEResponses && bytes.HasSuffix(typ, deltaSuffix) ||
		!bytes.Contains(data, keyModel) && !bytes.Contains(data, unicodeEsc) {
		return
	}
	var buf [16]jsonscan.Member
	top, valid, object := jsonscan.ValidMembers(data, buf[:0])
	if !valid || !object {
		return
	}
	v := top.Get(modelKey)
	if s.kind != SSEChat {
		outer := "response"
		if s.kind == SSEAnthropic {
			outer = "message"
		}
		v = nil
		if r := top.Get(outer); len(r) > 0 && r[0] == '{' {
			v = jsonscan.Members(r, top[:0]).Get(modelKey)
		}
	}
	if len(v) > 0 && v[0] == '"' && len(v) <= maxModelBytes {
		s.modelRaw, s.modelFound = append(s.modelRaw[:0], v...), true
	}
}
