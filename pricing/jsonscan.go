package pricing

import (
	"bytes"
	"encoding/json"
	"unicode/utf8"
)

// A request body is read in one validating pass and then walked in place:
// no value is decoded into Go maps or slices, and only the strings
// spendguard keeps (model, user) are copied. valid accepts exactly the
// documents encoding/json accepts (FuzzValid checks it), so a body is
// invalid here when and only when json.Unmarshal would fail on its syntax.

// maxDepth is encoding/json's nesting limit.
const maxDepth = 10000

// valid reports whether b is one JSON value, with optional whitespace
// around it.
func valid(b []byte) bool {
	i := skipWS(b, 0)
	end := validValue(b, i, 0)
	return end >= 0 && skipWS(b, end) == len(b)
}

// validValue returns the end of the valid value that starts at b[i], or -1.
func validValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{', c == '[':
		if depth >= maxDepth {
			return -1
		}
		return validContainer(b, i, depth+1)
	case c == 't':
		return literal(b, i, "true")
	case c == 'f':
		return literal(b, i, "false")
	case c == 'n':
		return literal(b, i, "null")
	case c == '-' || isDigit(c):
		return validNumber(b, i)
	}
	return -1
}

// validContainer checks the object or array at b[i].
func validContainer(b []byte, i, depth int) int {
	object := b[i] == '{'
	closer := byte(']')
	if object {
		closer = '}'
	}
	i = skipWS(b, i+1)
	if i < len(b) && b[i] == closer {
		return i + 1
	}
	for {
		if object {
			if i >= len(b) || b[i] != '"' {
				return -1
			}
			if i = validString(b, i); i < 0 {
				return -1
			}
			if i = skipWS(b, i); i >= len(b) || b[i] != ':' {
				return -1
			}
			i = skipWS(b, i+1)
		}
		if i = validValue(b, i, depth); i < 0 {
			return -1
		}
		if i = skipWS(b, i); i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = skipWS(b, i+1)
		case closer:
			return i + 1
		default:
			return -1
		}
	}
}

// validString checks the string at b[i] (a quote): no control character,
// only JSON's escapes. Bytes that are not UTF-8 are accepted, as
// encoding/json accepts them.
func validString(b []byte, i int) int {
	for i++; i < len(b); i++ {
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		case c == '\\':
			i++
			if i >= len(b) {
				return -1
			}
			switch b[i] {
			case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
			case 'u':
				if i+4 >= len(b) {
					return -1
				}
				for _, h := range b[i+1 : i+5] {
					if !isHex(h) {
						return -1
					}
				}
				i += 4
			default:
				return -1
			}
		}
	}
	return -1
}

// validNumber checks -?(0|[1-9][0-9]*)(.[0-9]+)?([eE][+-]?[0-9]+)? at
// b[i]; what follows it is the caller's to check.
func validNumber(b []byte, i int) int {
	if b[i] == '-' {
		i++
	}
	switch {
	case i < len(b) && b[i] == '0':
		i++
	case i < len(b) && isDigit(b[i]):
		i = digits(b, i)
	default:
		return -1
	}
	if i < len(b) && b[i] == '.' {
		if i+1 >= len(b) || !isDigit(b[i+1]) {
			return -1
		}
		i = digits(b, i+1)
	}
	if i < len(b) && (b[i] == 'e' || b[i] == 'E') {
		i++
		if i < len(b) && (b[i] == '+' || b[i] == '-') {
			i++
		}
		if i >= len(b) || !isDigit(b[i]) {
			return -1
		}
		i = digits(b, i)
	}
	return i
}

func digits(b []byte, i int) int {
	for i < len(b) && isDigit(b[i]) {
		i++
	}
	return i
}

func literal(b []byte, i int, lit string) int {
	if len(b)-i < len(lit) || string(b[i:i+len(lit)]) != lit {
		return -1
	}
	return i + len(lit)
}

func skipWS(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }

// The walkers below take JSON that valid has accepted.

// skipValue returns the end of the value that starts at b[i].
func skipValue(b []byte, i int) int {
	switch b[i] {
	case '"':
		return skipString(b, i)
	case '{', '[':
		depth := 0
		for ; i < len(b); i++ {
			switch b[i] {
			case '"':
				i = skipString(b, i) - 1
			case '{', '[':
				depth++
			case '}', ']':
				if depth--; depth == 0 {
					return i + 1
				}
			}
		}
		return len(b)
	}
	for i < len(b) && !isSpace(b[i]) && b[i] != ',' && b[i] != ']' && b[i] != '}' {
		i++
	}
	return i
}

// skipString returns the end of the string that starts at b[i]: the
// first quote after it not escaped by an odd run of backslashes.
func skipString(b []byte, i int) int {
	for i++; ; {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return len(b)
		}
		i += q
		n := 0
		for n < i && b[i-1-n] == '\\' {
			n++
		}
		if n%2 == 0 {
			return i + 1
		}
		i++
	}
}

// member is one member of a JSON object: its key as written (between the
// quotes, escapes not decoded) and its value.
type member struct {
	key []byte
	val json.RawMessage
}

// object is the members of a JSON object in document order, read in
// place. A decoder into a map would keep the last of duplicate keys:
// get and unique do the same.
type object []member

// members appends the members of the object b (starting with '{') to dst.
func members(b []byte, dst object) object {
	i := skipWS(b, 1)
	if b[i] == '}' {
		return dst
	}
	for {
		kend := skipString(b, i)
		key := b[i+1 : kend-1]
		i = skipWS(b, skipWS(b, kend)+1) // past the colon
		vend := skipValue(b, i)
		dst = append(dst, member{key: key, val: b[i:vend]})
		i = skipWS(b, vend)
		if b[i] == '}' {
			return dst
		}
		i = skipWS(b, i+1)
	}
}

// get returns the value of the last member named key, nil when none.
func (o object) get(key string) json.RawMessage {
	for i := len(o) - 1; i >= 0; i-- {
		if keyIs(o[i].key, key) {
			return o[i].val
		}
	}
	return nil
}

// unique reports whether member i is the last with its name.
func (o object) unique(i int) bool {
	for _, m := range o[i+1:] {
		if sameKey(o[i].key, m.key) {
			return false
		}
	}
	return true
}

// keyIs reports whether a key as written decodes to name, which is
// ASCII: a key without escapes matches it byte for byte (a byte that is
// not UTF-8 would decode to U+FFFD, which name does not hold either).
func keyIs(raw []byte, name string) bool {
	if bytes.IndexByte(raw, '\\') < 0 {
		return string(raw) == name
	}
	return decodeKey(raw) == name
}

// sameKey reports whether two keys as written decode to the same name.
func sameKey(a, b []byte) bool {
	if plainKey(a) && plainKey(b) {
		return bytes.Equal(a, b)
	}
	return decodeKey(a) == decodeKey(b)
}

func plainKey(k []byte) bool { return bytes.IndexByte(k, '\\') < 0 && utf8.Valid(k) }

func decodeKey(raw []byte) string {
	s, _ := asString(append(append([]byte{'"'}, raw...), '"'))
	return s
}

// elements walks the values of an array.
type elements struct {
	b []byte
	i int
}

// newElements starts a walk of the array b (starting with '[').
func newElements(b []byte) elements { return elements{b: b, i: skipWS(b, 1)} }

// next returns the next value, false after the last.
func (e *elements) next() (json.RawMessage, bool) {
	if e.i >= len(e.b) || e.b[e.i] == ']' {
		return nil, false
	}
	end := skipValue(e.b, e.i)
	v := e.b[e.i:end]
	e.i = skipWS(e.b, end)
	if e.i < len(e.b) && e.b[e.i] == ',' {
		e.i = skipWS(e.b, e.i+1)
	}
	return v, true
}
