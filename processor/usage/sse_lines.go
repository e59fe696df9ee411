package usage

import "bytes"

// The line framing of text/event-stream (WHATWG HTML, "Server-sent events",
// parsing an event stream): lines end at "\r\n", "\n" or "\r"; a blank
// line ends an event; a line starting with ':' is a comment; otherwise the
// field name runs up to the first ':' (the whole line when there is none)
// and one space after the colon is dropped from the value. The values of
// data fields are joined with '\n'; the last event field names the event;
// id, retry and unknown fields are ignored.

// lineState is where the scanner is in the current line.
type lineState uint8

const (
	lineStart      lineState = iota // at the first byte of a line
	lineName                        // in a field name
	lineValueFirst                  // after the ':' of a data or event field
	lineValue                       // in the value of a data or event field
	lineSkip                        // in a comment or another field
)

// fieldKind is the field of the current line.
type fieldKind uint8

const (
	fieldOther fieldKind = iota
	fieldData
	fieldEvent
)

// scan runs the line framing over p.
func (s *SSEScanner) scan(p []byte) {
	n := len(p)
	for i := 0; i < n; {
		c := p[i]
		if s.skipLF {
			s.skipLF = false
			dropLF := s.dropLF
			s.dropLF = false
			if c == '\n' {
				if dropLF {
					s.cut(i)
				}
				i++
				continue
			}
		}
		switch s.line {
		case lineStart:
			if c == '\n' || c == '\r' {
				s.blankLine(i)
				i++
				continue
			}
			if !s.inBlock {
				s.inBlock, s.blockLen, s.blockStart = true, 0, i
				s.dataLines, s.dataOff = 0, -1
			}
			if c == ':' {
				s.line = lineSkip
				i++
				continue
			}
			s.line, s.nameLen = lineName, 0
		case lineName:
			for ; i < n; i++ {
				if c = p[i]; c == ':' || c == '\n' || c == '\r' {
					break
				}
				if s.nameLen < len(s.name) {
					s.name[s.nameLen] = c
				}
				s.nameLen++
			}
			if i == n {
				return
			}
			s.classify()
			if c != ':' {
				s.endLine(c) // a field without a value
			} else if s.field == fieldOther {
				s.line = lineSkip
			} else {
				s.line = lineValueFirst
			}
			i++
		case lineValueFirst:
			s.line = lineValue
			if c == ' ' {
				i++
			}
			if s.field == fieldData && s.dataLines == 0 {
				s.dataOff = s.blockLen + i - max(s.blockStart, 0)
			}
		case lineValue, lineSkip:
			e := s.eol(p, i)
			if s.line == lineValue {
				s.value(p[i:e])
			}
			if i = e; e < n {
				s.endLine(p[e])
				i++
			}
		}
	}
}

// eol returns the index of the first '\r' or '\n' in p at or after i, or
// len(p).
func (s *SSEScanner) eol(p []byte, i int) int {
	if s.lf < i {
		s.lf = len(p)
		if j := bytes.IndexByte(p[i:], '\n'); j >= 0 {
			s.lf = i + j
		}
	}
	if j := bytes.IndexByte(p[i:s.lf], '\r'); j >= 0 {
		return i + j
	}
	return s.lf
}

// classify sets the field from the name read.
func (s *SSEScanner) classify() {
	switch string(s.name[:min(s.nameLen, len(s.name))]) {
	case "data":
		s.field = fieldData
	case "event":
		s.field, s.typLen = fieldEvent, 0
	default:
		s.field = fieldOther
	}
	if s.nameLen > len(s.name) {
		s.field = fieldOther
	}
}

// value handles part of the value of a data or event field.
func (s *SSEScanner) value(v []byte) {
	if s.field == fieldData {
		s.appendData(v)
		return
	}
	s.typLen += copy(s.typ[s.typLen:], v)
}

// endLine ends a non-blank line at its terminator c (0: end of stream).
func (s *SSEScanner) endLine(c byte) {
	if s.line == lineName {
		s.classify()
	}
	if s.field == fieldData && s.line != lineSkip {
		s.appendData(newline)
		s.dataLines++
	}
	s.line, s.field = lineStart, fieldOther
	s.skipLF = c == '\r'
}

var newline = []byte{'\n'}

// appendData adds bytes to the event's data: to the buffer up to limit,
// then through the JSONScanner.
func (s *SSEScanner) appendData(b []byte) {
	if s.big {
		s.js.Write(b)
		return
	}
	room := s.limit - len(s.data)
	if len(b) <= room {
		s.data = append(s.data, b...)
		return
	}
	s.data = append(s.data, b[:room]...)
	s.big = true
	s.js.resetPath(s.usagePath())
	s.js.Write(s.data)
	s.js.Write(b[room:])
}
