package usage

import "github.com/spendguard/spendguard/internal/jsonscan"

// StatusScanner keeps the top-level "id" and "status" strings of one JSON
// body fed to it in chunks: what a Responses API object says of itself
// ({"id":"resp_…","object":"response","status":"queued",…}). It runs
// beside the JSONScanner, which finds the usage and validates the body;
// it does not validate, and on a body that is not valid JSON what it
// reports is unspecified (but it never fails or grows without bound).
//
// As for the model, the last member of a name counts whatever it holds:
// a member that is not a string, or a string longer than maxModelBytes,
// reports "". Keys and values are compared and reported decoded. The zero
// value is ready to use; Reset makes it ready for the next body. It
// allocates only for the raw bytes of the two strings it keeps.
type StatusScanner struct {
	depth   int
	inStr   bool
	escape  bool
	want    statusWant // what the next string at depth 1 is
	str     statusStr  // what the current string is
	key     []byte     // the raw key being read (up to maxStatusKey bytes)
	keyLong bool       // the key is longer than any wanted one
	target  int        // member the next value belongs to: 0 none, else 1 + its index in statusKeys
	raw     [2][]byte  // raw JSON strings of the members, "" when the last one was no string
	done    [2]bool    // raw[i] is a whole string (its closing quote was read)
	long    bool       // the value being captured passed maxModelBytes
}

type statusWant uint8

const (
	wantNothing statusWant = iota
	wantKey
	wantValue
)

type statusStr uint8

const (
	strOther statusStr = iota
	strKey
	strValue
)

// statusKeys are the members kept; maxStatusKey bounds the raw bytes of a
// key worth decoding (an escaped "status" is at most 6*6+2 bytes).
var statusKeys = [2]string{"id", "status"}

const maxStatusKey = 40

// Reset forgets the previous body, keeping small buffers for reuse.
func (s *StatusScanner) Reset() {
	key, id, st := s.key[:0], s.raw[0][:0], s.raw[1][:0]
	*s = StatusScanner{key: key}
	s.raw[0], s.raw[1] = id, st
}

// ID is the top-level "id" string of the body so far, "" when none.
func (s *StatusScanner) ID() string { return s.member(0) }

// Status is the top-level "status" string of the body so far, "" when none.
func (s *StatusScanner) Status() string { return s.member(1) }

func (s *StatusScanner) member(i int) string {
	if !s.done[i] {
		return ""
	}
	v, _ := jsonscan.String(s.raw[i])
	return v
}

// Write feeds the next chunk of the body; it never retains p.
func (s *StatusScanner) Write(p []byte) {
	for i := 0; i < len(p); i++ {
		c := p[i]
		if s.inStr {
			s.stringByte(c)
			continue
		}
		switch c {
		case '"':
			s.inStr, s.str = true, strOther
			if s.depth == 1 {
				switch s.want {
				case wantKey:
					s.str, s.key, s.keyLong = strKey, append(s.key[:0], c), false
				case wantValue:
					if s.target > 0 {
						s.str, s.long = strValue, false
						s.raw[s.target-1] = append(s.raw[s.target-1][:0], c)
					}
				}
				s.want = wantNothing
			}
		case '{', '[':
			s.depth++
			if s.depth == 1 && c == '{' {
				s.want = wantKey
			} else if s.depth == 2 {
				s.want = wantNothing // a nested value: the member holds no string
			}
		case '}', ']':
			if s.depth > 0 {
				s.depth--
			}
		case ',':
			if s.depth == 1 {
				s.want, s.target = wantKey, 0
			}
		case ':':
			if s.depth == 1 {
				s.want = wantValue
			}
		}
	}
}

// stringByte handles a byte inside a string, whose opening quote was
// seen.
func (s *StatusScanner) stringByte(c byte) {
	switch s.str {
	case strKey:
		if len(s.key) < maxStatusKey {
			s.key = append(s.key, c)
		} else {
			s.keyLong = true
		}
	case strValue:
		if s.long {
			break
		}
		r := &s.raw[s.target-1]
		if len(*r) >= maxModelBytes {
			s.long, *r = true, (*r)[:0]
			break
		}
		*r = append(*r, c)
	}
	if s.escape {
		s.escape = false
		return
	}
	switch c {
	case '\\':
		s.escape = true
	case '"':
		s.inStr = false
		switch {
		case s.str == strKey:
			s.endKey()
		case s.str == strValue && !s.long:
			s.done[s.target-1] = true
		}
	}
}

// endKey decides which member the value after the key just read belongs
// to; a kept member is forgotten at once, so that a value that is not a
// string reports "".
func (s *StatusScanner) endKey() {
	s.target = 0
	if s.keyLong {
		return
	}
	k, _ := jsonscan.String(s.key)
	for i, name := range statusKeys {
		if k == name {
			s.target = i + 1
			s.raw[i], s.done[i] = s.raw[i][:0], false
		}
	}
}
