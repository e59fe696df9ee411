package usage

import "fmt"

// The byte-level lexing of strings, escapes and numbers.

// stringByte handles a byte inside a string that the fast path did not skip.
func (s *JSONScanner) stringByte(c byte, i int) {
	switch {
	case c == '"':
		if !s.inKey {
			s.state = stAfterValue
			return
		}
		s.state = stColon
		if int(s.keyPos) == len(s.target()) {
			s.keyMatched()
		}
		s.endModelKey()
	case c == '\\':
		s.state = stEscape
	case c < 0x20:
		s.failf(i, "control character %q in a string", c)
	case s.keyPos >= 0 || s.model.pos >= 0:
		s.matchKey(c)
	}
}

// matchKey advances the match of a key at the path's depth against the
// path's next key, and that of a top-level key against modelKey, by one
// unescaped byte.
func (s *JSONScanner) matchKey(c byte) {
	s.matchModelKey(c)
	if s.keyPos < 0 {
		return
	}
	if key := s.target(); int(s.keyPos) < len(key) && c == key[s.keyPos] {
		s.keyPos++
	} else {
		s.keyPos = -1
	}
}

func (s *JSONScanner) escapeByte(c byte, i int) {
	switch c {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		// None of these characters is in a path key (see resetPath) or
		// in modelKey.
		s.state, s.keyPos, s.model.pos = stString, -1, -1
	case 'u':
		s.state, s.nHex, s.hexVal = stHex, 4, 0
	default:
		s.failf(i, "invalid escape '\\%c'", c)
	}
}

func (s *JSONScanner) hexByte(c byte, i int) {
	var v byte
	switch {
	case isDigit(c):
		v = c - '0'
	case 'a' <= c && c <= 'f':
		v = c - 'a' + 10
	case 'A' <= c && c <= 'F':
		v = c - 'A' + 10
	default:
		s.failf(i, "invalid hex digit %q in a \\u escape", c)
		return
	}
	s.hexVal = s.hexVal<<4 | rune(v)
	if s.nHex--; s.nHex > 0 {
		return
	}
	s.state = stString
	if s.keyPos >= 0 || s.model.pos >= 0 {
		if s.hexVal < 0x80 {
			s.matchKey(byte(s.hexVal))
		} else {
			s.keyPos, s.model.pos = -1, -1
		}
	}
}

// numberByte handles the byte after a number's prefix; a byte that cannot
// continue a complete number ends it and is handled as structure.
func (s *JSONScanner) numberByte(c byte, p []byte, i int) {
	switch s.state {
	case stMinus:
		switch {
		case c == '0':
			s.state = stZero
		case isDigit(c):
			s.state = stInt
		default:
			s.unexpected(c, i)
		}
		return
	case stDot, stExpSign:
		if !isDigit(c) {
			s.unexpected(c, i)
		} else if s.state == stDot {
			s.state = stFrac
		} else {
			s.state = stExp
		}
		return
	case stExpMark:
		switch {
		case c == '+' || c == '-':
			s.state = stExpSign
		case isDigit(c):
			s.state = stExp
		default:
			s.unexpected(c, i)
		}
		return
	case stZero, stInt:
		if c == '.' {
			s.state = stDot
			return
		}
		fallthrough
	case stFrac:
		if c == 'e' || c == 'E' {
			s.state = stExpMark
			return
		}
	}
	// The number is complete; c follows it.
	s.state = stAfterValue
	if isSpace(c) {
		return
	}
	s.structByte(c, p, i)
}

func (s *JSONScanner) unexpected(c byte, i int) {
	s.failf(i, "unexpected byte %q", c)
}

func (s *JSONScanner) failf(i int, format string, args ...any) {
	s.err = fmt.Errorf("%w: %s at offset %d", ErrMalformed, fmt.Sprintf(format, args...), s.off+int64(i))
	s.state = stError
	s.capturing, s.model.capturing = false, false
}

func isSpace(c byte) bool { return c == ' ' || c == '\n' || c == '\r' || c == '\t' }

func isDigit(c byte) bool { return '0' <= c && c <= '9' }
