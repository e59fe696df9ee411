package usage

import (
	"bytes"

	"github.com/spendguard/spendguard/internal/jsonscan"
	"github.com/spendguard/spendguard/pricing"
)

// The steps of JSONScanner.Write: a whole token read in one go when the
// chunk holds it, else the state machine a byte at a time, and the capture
// of the usage value.

// wholeToken reads the key or value that starts at p[i] (not a space) in
// one go when it is complete within this chunk, and returns its end with
// the state after it. It returns 0 when the token is to be read byte by
// byte: it is incomplete or invalid (the byte-level reading reports the
// error at the same offset, or carries on in the next chunk), it needs
// unescaping to be matched, or it begins a value on the path.
func (s *JSONScanner) wholeToken(p []byte, i int) int {
	c := p[i]
	switch s.state {
	case stObjectFirst, stKey:
		if c == '"' {
			return s.wholeKey(p, i)
		}
	case stValue, stArrayFirst:
		switch {
		case s.model.next:
			return s.wholeModel(p, i)
		case c == '{' && s.nextIsUsage:
			return s.wholeUsage(p, i)
		case c == '{' || c == '[':
			return s.skipValue(p, i)
		case !s.nextIsUsage && !s.nextEnters:
			return s.skipScalar(p, i)
		}
	}
	return 0
}

// wholeKey reads the key at p[i] and the colon after it when it follows
// at once. A key at the depth of the path's keys is matched against the
// path unless it has escapes: those are left to the byte-level reading,
// which unescapes as it matches.
func (s *JSONScanner) wholeKey(p []byte, i int) int {
	end := jsonscan.ValidValue(p, i, s.depth)
	if end < 0 {
		return 0
	}
	match := false
	if s.depth == s.level+1 {
		key := p[i+1 : end-1]
		if bytes.IndexByte(key, '\\') >= 0 {
			return 0
		}
		match = string(key) == s.target()
		s.model.next = s.path == nil && string(key) == modelKey
	}
	s.state = stColon
	if match {
		s.keyMatched()
	}
	if end < len(p) && p[end] == ':' {
		s.state = stValue
		end++
	}
	return end
}

// skipScalar passes over the string, number or literal at p[i] when it is
// complete in this chunk and valid. A number that reaches the end of the
// chunk may go on in the next one, so it is read byte by byte.
func (s *JSONScanner) skipScalar(p []byte, i int) int {
	end := jsonscan.ValidValue(p, i, s.depth)
	if end < 0 || end == len(p) && (p[i] == '-' || isDigit(p[i])) {
		return 0
	}
	s.state = stAfterValue
	return end
}

// wholeUsage decodes the usage object at p[i] in place when it is complete
// in this chunk and valid: one pass checks it and collects its members.
// Otherwise it returns 0 and the object is captured byte by byte.
func (s *JSONScanner) wholeUsage(p []byte, i int) int {
	var v usageMembers
	end := v.collectValid(p, i, s.depth)
	if end < 0 {
		return 0
	}
	s.nextIsUsage = false
	if end-i > MaxUsageBytes {
		s.occ, s.usageErr = occFailed, errUsageTooLarge
	} else {
		s.setUsage(v.decode())
	}
	s.state = stAfterValue
	return end
}

// skipValue returns the end of the object or array that starts at p[i]
// when it can be passed over whole: inside a container, not one the path
// leads through or to, complete and valid within this chunk. Its keys are
// none the path matches, so nothing but its validity matters. Otherwise it
// returns 0 and the value is read byte by byte, which reports an error or
// carries on in the next chunk as before; a container too long for its
// chunk is then read byte by byte to its end, nothing inside it tried
// again (its scalars and keys still are, see wholeToken).
func (s *JSONScanner) skipValue(p []byte, i int) int {
	if s.noSkipDepth > 0 {
		if s.depth >= s.noSkipDepth {
			return 0
		}
		s.noSkipDepth = 0
	}
	if s.depth == 0 || s.nextIsUsage || s.nextEnters || s.capturing ||
		(s.state != stValue && s.state != stArrayFirst) || (p[i] != '{' && p[i] != '[') {
		return 0
	}
	if end := jsonscan.ValidValue(p, i, s.depth); end > 0 {
		s.state = stAfterValue
		return end
	}
	s.noSkipDepth = s.depth + 1
	return 0
}

// structByte handles a non-space byte between tokens.
func (s *JSONScanner) structByte(c byte, p []byte, i int) {
	switch s.state {
	case stValue:
		s.beginValue(c, i)
	case stArrayFirst:
		if c == ']' {
			s.closeContainer(c, p, i)
		} else {
			s.beginValue(c, i)
		}
	case stObjectFirst:
		if c == '}' {
			s.closeContainer(c, p, i)
		} else {
			s.beginKey(c, i)
		}
	case stKey:
		s.beginKey(c, i)
	case stColon:
		if c != ':' {
			s.unexpected(c, i)
			return
		}
		s.state = stValue
	case stAfterValue:
		switch {
		case s.depth == 0:
			s.failf(i, "data after the top-level value")
		case c == ',':
			if s.inArray() {
				s.state = stValue
			} else {
				s.state = stKey
			}
		case c == '}' || c == ']':
			s.closeContainer(c, p, i)
		default:
			s.unexpected(c, i)
		}
	}
}

func (s *JSONScanner) beginKey(c byte, i int) {
	if c != '"' {
		s.unexpected(c, i)
		return
	}
	s.state = stString
	s.inKey = true
	s.keyPos = -1
	if s.depth == s.level+1 {
		s.keyPos = 0
	}
	s.beginModelKey()
}

// beginValue starts the value whose first byte is c.
func (s *JSONScanner) beginValue(c byte, i int) {
	switch {
	case c == '{':
		if !s.push(false, i) {
			return
		}
		s.state = stObjectFirst
	case c == '[':
		if !s.push(true, i) {
			return
		}
		s.state = stArrayFirst
	case c == '"':
		s.state, s.inKey, s.keyPos, s.model.pos = stString, false, -1, -1
	case c == '-':
		s.state = stMinus
	case c == '0':
		s.state = stZero
	case isDigit(c):
		s.state = stInt
	case c == 't':
		s.state, s.lit, s.litPos = stLiteral, "true", 1
	case c == 'f':
		s.state, s.lit, s.litPos = stLiteral, "false", 1
	case c == 'n':
		s.state, s.lit, s.litPos = stLiteral, "null", 1
	default:
		s.unexpected(c, i)
		return
	}
	if s.nextEnters {
		s.enter(c)
		return
	}
	if !s.nextIsUsage {
		return
	}
	s.nextIsUsage = false
	switch c {
	case '{':
		s.capturing, s.capStart, s.buf = true, i, s.buf[:0]
	case 'n':
		s.occ, s.usageErr = occNone, nil
	default:
		s.occ, s.usageErr = occFailed, errUsageNotObject
	}
}

func (s *JSONScanner) push(array bool, i int) bool {
	if s.depth == maxDepth {
		s.failf(i, "nesting deeper than %d", maxDepth)
		return false
	}
	w, b := s.depth/64, uint(s.depth%64)
	if array {
		s.arrays[w] |= 1 << b
	} else {
		s.arrays[w] &^= 1 << b
	}
	s.depth++
	return true
}

func (s *JSONScanner) inArray() bool {
	d := s.depth - 1
	return s.arrays[d/64]&(1<<uint(d%64)) != 0
}

// closeContainer handles '}' or ']' at p[i], ending the capture when it
// closes the top-level usage object.
func (s *JSONScanner) closeContainer(c byte, p []byte, i int) {
	if (c == ']') != s.inArray() {
		s.unexpected(c, i)
		return
	}
	s.depth--
	s.state = stAfterValue
	if s.level > 0 && s.depth == s.level {
		s.level-- // the object on the path is closed
	}
	if s.capturing && s.depth == s.pathLen() {
		s.capturing = false
		if s.appendCapture(p[s.capStart : i+1]) {
			s.decodeCapture()
		}
	}
}

// appendCapture adds b to the capture, or gives up on this usage value when
// it would exceed MaxUsageBytes.
func (s *JSONScanner) appendCapture(b []byte) bool {
	if len(s.buf)+len(b) > MaxUsageBytes {
		s.capturing = false
		s.buf = s.buf[:0]
		s.occ, s.usageErr = occFailed, errUsageTooLarge
		return false
	}
	s.buf = append(s.buf, b...)
	return true
}

// decodeCapture decodes the captured usage object. The scanner has checked
// every byte of it, so it is valid JSON and ParseUsageDetails's own check is
// skipped.
func (s *JSONScanner) decodeCapture() { s.setUsage(parseValidUsage(s.buf)) }

// setUsage records the decoding of a usage object.
func (s *JSONScanner) setUsage(u pricing.Usage, d Details, err error) {
	if err != nil {
		s.occ, s.usageErr = occFailed, err
		return
	}
	s.occ, s.usage, s.details, s.usageErr = occFound, u, d, nil
}
