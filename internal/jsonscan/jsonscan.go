// Package jsonscan reads JSON documents in place: Valid checks a document
// in one pass, accepting exactly what encoding/json accepts (FuzzValid
// checks it); the walkers then hand out the raw bytes of members and
// elements without decoding anything into Go maps or slices. spendguard
// reads every request body this way, on the hot path.
//
// The files: jsonscan.go validates a document, strings.go validates,
// measures and decodes its strings, walk.go walks what Valid accepted
// (values, an object's members, an array's elements).
package jsonscan

// maxDepth is encoding/json's nesting limit.
const MaxDepth = 10000

// Valid reports whether b is one JSON value, with optional whitespace
// around it.
func Valid(b []byte) bool {
	i := SkipSpace(b, 0)
	end := validValue(b, i, 0)
	return end >= 0 && SkipSpace(b, end) == len(b)
}

// ValidMembers is Valid and, when b holds an object, Members in the same
// pass: it appends the members of the top-level object to dst, their
// offsets relative to the object's first byte. object is false (and dst
// unchanged) when b is valid JSON but not an object.
func ValidMembers(b []byte, dst Object) (members Object, valid, object bool) {
	start := SkipSpace(b, 0)
	if start == len(b) || b[start] != '{' {
		return dst, Valid(b), false
	}
	n := len(dst)
	i := SkipSpace(b, start+1)
	if i < len(b) && b[i] == '}' {
		return dst, SkipSpace(b, i+1) == len(b), true
	}
	for {
		if i >= len(b) || b[i] != '"' {
			return dst[:n], false, true
		}
		kend := validString(b, i)
		if kend < 0 {
			return dst[:n], false, true
		}
		key := b[i+1 : kend-1]
		if i = SkipSpace(b, kend); i >= len(b) || b[i] != ':' {
			return dst[:n], false, true
		}
		i = SkipSpace(b, i+1)
		vend := validValue(b, i, 1)
		if vend < 0 {
			return dst[:n], false, true
		}
		dst = append(dst, Member{Key: key, Value: b[i:vend], Offset: i - start})
		if i = SkipSpace(b, vend); i >= len(b) {
			return dst[:n], false, true
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case '}':
			return dst, SkipSpace(b, i+1) == len(b), true
		default:
			return dst[:n], false, true
		}
	}
}

// ValidValue returns the end of the valid JSON value that starts at b[i]
// (no whitespace before it), or -1 when b holds no complete valid value
// there. depth is how deep in containers the value is: a container deeper
// than MaxDepth is invalid, as for encoding/json.
func ValidValue(b []byte, i, depth int) int { return validValue(b, i, depth) }

// validValue returns the end of the valid value that starts at b[i], or -1.
func validValue(b []byte, i, depth int) int {
	if i >= len(b) {
		return -1
	}
	switch c := b[i]; {
	case c == '"':
		return validString(b, i)
	case c == '{', c == '[':
		if depth >= MaxDepth {
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
	i = SkipSpace(b, i+1)
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
			if i = SkipSpace(b, i); i >= len(b) || b[i] != ':' {
				return -1
			}
			i = SkipSpace(b, i+1)
		}
		if i = validValue(b, i, depth); i < 0 {
			return -1
		}
		if i = SkipSpace(b, i); i >= len(b) {
			return -1
		}
		switch b[i] {
		case ',':
			i = SkipSpace(b, i+1)
		case closer:
			return i + 1
		default:
			return -1
		}
	}
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

// SkipSpace returns the index of the first byte from i that is not JSON
// whitespace.
func SkipSpace(b []byte, i int) int {
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	return i
}

func isSpace(c byte) bool { return c == ' ' || c == '\t' || c == '\n' || c == '\r' }
func isDigit(c byte) bool { return '0' <= c && c <= '9' }
func isHex(c byte) bool   { return isDigit(c) || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F' }
