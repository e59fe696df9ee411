package usage

import "bytes"

// What a stream whose reservation grows needs of the scanner (the
// processor's grow.go): whole events only, so that a final event can be
// added after any of them; how many events were dispatched; and, on the
// Responses API, the response's id for its failure event.

// maxResponseID bounds the response id kept (vLLM's are "resp_" and 32
// hex digits).
const maxResponseID = 128

var keyID = []byte(`"id"`)

// SetHoldPartial makes Write hold back the bytes of an incomplete last
// event, as it does to drop or rewrite an event, so that what it returns
// always ends on an event boundary: the stream can then be ended after
// any Write with an event of the caller's. Events longer than
// MaxSSEEventBytes are still forwarded as they come. Call it after Reset
// and before the first Write.
func (s *SSEScanner) SetHoldPartial() { s.holding = true }

// Events counts the data events dispatched so far ([DONE] excluded): with
// SetHoldPartial, the events of everything Write has returned.
func (s *SSEScanner) Events() int { return s.events }

// ResponseID is the id of the response a Responses API stream is about,
// read from the first event that has one (response.created); "" before,
// for the other kinds, or when longer than it keeps.
func (s *SSEScanner) ResponseID() string { return string(s.respID[:s.respIDLen]) }

// noteResponseID records the response id from an event's data, once.
func (s *SSEScanner) noteResponseID(data []byte) {
	if s.respIDLen > 0 || !bytes.Contains(data, keyID) {
		return
	}
	if id := firstStringValue(data, keyID); len(id) > 0 && len(id) <= maxResponseID && bytes.IndexByte(id, '\\') < 0 {
		s.respIDLen = copy(s.respID[:], id)
	}
}
