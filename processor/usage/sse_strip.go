package usage

import (
	"bytes"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// Hiding the per-chunk usage of continuous_usage_stats from a client that
// did not ask for it (SetStripChunkUsage).

// StripMode says how SSEScanner hides the usage of each choice chunk of a
// SSEChat stream: the client then sees the chunks as vLLM sends them
// without continuous_usage_stats.
type StripMode uint8

const (
	// StripNone forwards every chunk's usage (the default).
	StripNone StripMode = iota
	// StripDelete removes the top-level usage member, with the comma that
	// separates it from its neighbour: vLLM's chat chunks have no usage
	// key without continuous usage (they are dumped without unset
	// fields).
	StripDelete
	// StripNull writes null in place of each top-level usage value that
	// is not null: vLLM's completions chunks carry "usage":null without
	// continuous usage (they are dumped with every field).
	StripNull
)

// stripEdit replaces data[from:to] of an event by text.
type stripEdit struct {
	from, to int
	text     string
}

// SetStripChunkUsage makes a SSEChat scanner hide the usage of every
// event whose top-level choices is a non-empty array, as mode says; it
// is ignored for other kinds. Each such event's usage is read (Result
// reports the running usage) before it is hidden. The usage-only event
// (choices empty) is not touched here: Reset's dropUsageEvent removes
// it. Like the drop, this holds each event back until its blank line,
// so that it is forwarded whole, rewritten or not. Only events made of
// one data line (the only shape vLLM sends), whose data is a valid JSON
// object and at most MaxSSEEventBytes long, are rewritten: any other
// event, a larger one included, is forwarded as it came. A last event
// the stream ends without a blank line is rewritten by Finish. Reset
// sets StripNone; call this after Reset and before the first Write.
func (s *SSEScanner) SetStripChunkUsage(mode StripMode) {
	if s.kind != SSEChat {
		mode = StripNone
	}
	s.strip = mode
	s.holding = s.drop || mode != StripNone
}

// planStrip records in s.edits what hiding the usage changes in data
// (the complete data of the event being dispatched, not big): nothing
// unless it is one data line holding a JSON object whose choices is a
// non-empty array and which has a top-level usage member that is not
// null.
func (s *SSEScanner) planStrip(data []byte) {
	s.edits = s.edits[:0]
	if s.dataLines != 1 || s.dataOff < 0 || !bytes.Contains(data, keyUsage) && !bytes.Contains(data, unicodeEsc) {
		return
	}
	top, object := s.topMembers(data)
	if !object || !nonEmptyArray(top.Get("choices")) {
		return
	}
	// Offsets in data of a member's key (its opening quote) and of the
	// end of its value: both slices are data's.
	keyAt := func(m jsonscan.Member) int { return cap(data) - cap(m.Key) - 1 }
	valueEnd := func(m jsonscan.Member) int { return cap(data) - cap(m.Value) + len(m.Value) }
	if s.strip == StripNull {
		for _, m := range top {
			if jsonscan.KeyIs(m.Key, usageKey) && string(m.Value) != "null" {
				at := cap(data) - cap(m.Value)
				s.edits = append(s.edits, stripEdit{from: at, to: at + len(m.Value), text: "null"})
			}
		}
		return
	}
	// StripDelete, only of a usage that is there: an upstream that writes
	// "usage":null on every chunk (OpenAI does) sent it without being
	// asked for continuous usage, and the client gets it as sent.
	present := false
	for _, m := range top {
		present = present || jsonscan.KeyIs(m.Key, usageKey) && string(m.Value) != "null"
	}
	if !present {
		return
	}
	// The usage members before the first other one go with
	// the separators up to it; each later one goes with the separator
	// before it (from the end of the previous member's value).
	kept := -1
	for j, m := range top {
		if !jsonscan.KeyIs(m.Key, usageKey) {
			kept = j
			break
		}
	}
	if kept > 0 {
		s.edits = append(s.edits, stripEdit{from: keyAt(top[0]), to: keyAt(top[kept])})
	}
	for j := kept + 1; j < len(top); j++ {
		if jsonscan.KeyIs(top[j].Key, usageKey) {
			s.edits = append(s.edits, stripEdit{from: valueEnd(top[j-1]), to: valueEnd(top[j])})
		}
	}
}

// topMembers returns the top-level members of data, the data of the
// event being dispatched, and whether it is a valid JSON object; it
// parses data once per event.
func (s *SSEScanner) topMembers(data []byte) (jsonscan.Object, bool) {
	if !s.topParsed {
		top, valid, object := jsonscan.ValidMembers(data, s.top[:0])
		s.top, s.topObject, s.topParsed = top, valid && object, true
	}
	return s.top, s.topObject
}

// nonEmptyArray reports whether v is a JSON array with an element.
func nonEmptyArray(v []byte) bool {
	return len(v) >= 2 && v[0] == '[' && v[jsonscan.SkipSpace(v, 1)] != ']'
}

// appendEdited appends to dst the held event a+b (its bytes from an
// earlier chunk, then from this one) with s.edits made, their data
// offsets moved by where the data starts in the event.
func (s *SSEScanner) appendEdited(dst, a, b []byte) []byte {
	at := 0
	for _, e := range s.edits {
		dst = appendRange(dst, a, b, at, s.dataOff+e.from)
		dst = append(dst, e.text...)
		at = s.dataOff + e.to
	}
	return appendRange(dst, a, b, at, len(a)+len(b))
}

// appendRange appends bytes from to to of a+b to dst.
func appendRange(dst, a, b []byte, from, to int) []byte {
	if from < len(a) {
		dst = append(dst, a[from:min(to, len(a))]...)
	}
	if to > len(a) {
		dst = append(dst, b[max(from, len(a))-len(a):to-len(a)]...)
	}
	return dst
}
