// Package jsonscan reads JSON documents in place: Valid checks a document
// in one pass, accepting exactly what encoding/json accepts (FuzzValid
// checks it); the walkers then hand out the raw bytes of members and
// elements without decoding anything into Go maps or slices. spendguard
// reads every request body this way, on the hot path.
package jsonscan

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

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

// validString checks the string starting at b[i] (a quote) and returns
// the index after its closing quote, or -1. A short string is read eight
// bytes at a time (PlainRun); the rest of a longer one is searched with
// bytes.IndexByte for its next quote and backslash, and only the bytes in
// between are tested for control characters. The quote found is kept
// until an escape passes it (an escaped quote), so a string with many
// escapes is still read once. Bytes that are not UTF-8 are accepted, as
// encoding/json accepts them.
func validString(b []byte, i int) int {
	quote := -1 // index of the next quote at or after i, -1 until searched
	for i++; i < len(b); i++ {
		// Eight bytes at a time for a short stretch (a key, the start of
		// a text, the text after an escape)...
		lim := min(len(b), i+shortString)
		i += PlainRun(b[i:lim])
		if i == lim {
			// ...then, in a long stretch, find the next quote and
			// backslash with IndexByte and test the bytes before the
			// first of them for control characters.
			if quote < i {
				q := bytes.IndexByte(b[i:], '"')
				if q < 0 {
					return -1
				}
				quote = i + q
			}
			end := quote
			if bs := bytes.IndexByte(b[i:quote], '\\'); bs >= 0 {
				end = i + bs
			}
			if hasControl(b[i:end]) {
				return -1
			}
			i = end
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1
		case c < 0x20:
			return -1
		}
		// A backslash.
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
	return -1
}

// shortString is how many bytes of a string validString reads before it
// searches for the closing quote with bytes.IndexByte instead, which pays
// off only on longer strings.
const shortString = 32

// hasControl reports whether b holds a byte below 0x20, eight bytes at a
// time.
func hasControl(b []byte) bool {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if (v-ones*0x20)&^v&highs != 0 {
			return true
		}
	}
	for ; i < len(b); i++ {
		if b[i] < 0x20 {
			return true
		}
	}
	return false
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

// PlainRun is the number of leading bytes of b that a JSON string holds
// as they are: no quote, backslash or control character. It tests eight
// bytes at a time; the lowest byte a test flags is the first that is not
// plain (a higher one may be flagged wrongly, never a lower one).
func PlainRun(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if z := zeroBytes(v^(ones*'"')) | zeroBytes(v^(ones*'\\')) | (v-ones*0x20)&^v&highs; z != 0 {
			return i + bits.TrailingZeros64(z)/8
		}
	}
	for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
		i++
	}
	return i
}

// Eight bytes at a time: ones*c repeats byte c in each byte of a word.
const ones, highs = 0x0101010101010101, 0x8080808080808080

// zeroBytes is not 0 when a byte of v is 0: it sets the high bit of the
// lowest such byte, and possibly of higher bytes (a borrow from the zero
// byte can carry into them), never of lower ones.
func zeroBytes(v uint64) uint64 { return (v - ones) & ^v & highs }

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

// The walkers below take JSON that Valid has accepted.

// SkipValue returns the end of the value that starts at b[i].
func SkipValue(b []byte, i int) int {
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
// first quote after it not escaped by an odd run of backslashes. Most
// strings are short keys: the first eight bytes are tested in one go
// before bytes.IndexByte, whose call costs more than a short string.
func skipString(b []byte, i int) int {
	i++
	if i+8 <= len(b) {
		v := binary.LittleEndian.Uint64(b[i:])
		if z := zeroBytes(v ^ (ones * '"')); z != 0 {
			if q := i + bits.TrailingZeros64(z)/8; b[q-1] != '\\' {
				return q + 1
			}
		}
	}
	for {
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

// Member is one member of a JSON object: its key as written (between the
// quotes, escapes not decoded), its value, and where the value starts in
// the bytes given to Members.
type Member struct {
	Key    []byte
	Value  []byte
	Offset int
}

// Object is the members of a JSON object in document order, read in
// place. A decoder into a map keeps the last of duplicate keys: Get,
// Lookup and Unique do the same.
type Object []Member

// Members appends the members of the object b (starting with '{') to dst.
func Members(b []byte, dst Object) Object {
	dst, _ = MembersEnd(b, dst)
	return dst
}

// MembersEnd is Members that also returns the end of the object: the
// index just past its closing brace. b may go on after the object.
func MembersEnd(b []byte, dst Object) (Object, int) {
	i := SkipSpace(b, 1)
	if b[i] == '}' {
		return dst, i + 1
	}
	for {
		kend := skipString(b, i)
		key := b[i+1 : kend-1]
		i = SkipSpace(b, SkipSpace(b, kend)+1) // past the colon
		vend := SkipValue(b, i)
		dst = append(dst, Member{Key: key, Value: b[i:vend], Offset: i})
		i = SkipSpace(b, vend)
		if b[i] == '}' {
			return dst, i + 1
		}
		i = SkipSpace(b, i+1)
	}
}

// Get returns the value of the last member named key, nil when none.
func (o Object) Get(key string) []byte {
	m, _ := o.Lookup(key)
	return m.Value
}

// Lookup returns the last member named key.
func (o Object) Lookup(key string) (Member, bool) {
	for i := len(o) - 1; i >= 0; i-- {
		if KeyIs(o[i].Key, key) {
			return o[i], true
		}
	}
	return Member{}, false
}

// Unique reports whether member i is the last with its name.
func (o Object) Unique(i int) bool {
	for _, m := range o[i+1:] {
		if sameKey(o[i].Key, m.Key) {
			return false
		}
	}
	return true
}

// KeyIs reports whether a key as written decodes to name, which is
// ASCII: a key without escapes matches it byte for byte (a byte that is
// not UTF-8 would decode to U+FFFD, which name does not hold either).
//
// The lengths settle most keys: decoding makes a key shorter (an escape
// stands for fewer bytes than it takes) or leaves it as it is, unless it
// holds bytes that are not UTF-8, and those never decode to ASCII. So a
// key shorter than name does not match, and one as long as name matches
// only when it is name itself, without escapes.
func KeyIs(raw []byte, name string) bool {
	switch {
	case len(raw) < len(name):
		return false
	case len(raw) == len(name):
		return string(raw) == name && strings.IndexByte(name, '\\') < 0
	}
	return bytes.IndexByte(raw, '\\') >= 0 && decodeKey(raw) == name
}

// sameKey reports whether two keys as written decode to the same name.
func sameKey(a, b []byte) bool {
	if bytes.Equal(a, b) {
		return true
	}
	if Verbatim(a) && Verbatim(b) {
		return false
	}
	return decodeKey(a) == decodeKey(b)
}

// Verbatim reports whether the contents of a JSON string (the bytes
// between its quotes) decode to themselves: no escape, and valid UTF-8.
// bytes.IndexByte looks for a backslash, then a loop tests sixteen bytes
// at a time for one that is not ASCII; only a string that has one needs
// utf8.Valid. A short string (a key) is read in one loop instead: the
// call of IndexByte costs more than it.
func Verbatim(s []byte) bool {
	if len(s) < 16 {
		for i, c := range s {
			if c == '\\' {
				return false
			}
			if c >= utf8.RuneSelf {
				return bytes.IndexByte(s[i:], '\\') < 0 && utf8.Valid(s[i:])
			}
		}
		return true
	}
	if bytes.IndexByte(s, '\\') >= 0 {
		return false
	}
	i := 0
	for ; i+16 <= len(s); i += 16 {
		if (binary.LittleEndian.Uint64(s[i:])|binary.LittleEndian.Uint64(s[i+8:]))&highs != 0 {
			return utf8.Valid(s[i:])
		}
	}
	for ; i < len(s); i++ {
		if s[i] >= utf8.RuneSelf {
			return utf8.Valid(s[i:])
		}
	}
	return true
}

func decodeKey(raw []byte) string {
	s, _ := String(append(append([]byte{'"'}, raw...), '"'))
	return s
}

// String decodes the JSON string raw (false when raw is not a string),
// copying it only when it has no escapes and is valid UTF-8; otherwise
// encoding/json decodes it (a byte that is not UTF-8 becomes U+FFFD).
func String(raw []byte) (string, bool) {
	raw = bytes.TrimSpace(raw)
	if len(raw) < 2 || raw[0] != '"' {
		return "", false
	}
	if inner := raw[1 : len(raw)-1]; Verbatim(inner) {
		return string(inner), true
	}
	var s string
	if json.Unmarshal(raw, &s) != nil {
		return "", false
	}
	return s, true
}

// escapeLen measures the escape at the start of s: the length of the
// character it decodes to and the bytes it takes (two \u escapes for a
// surrogate pair).
func escapeLen(s []byte) (width, used int, ok bool) {
	if len(s) < 2 {
		return 0, 0, false
	}
	switch s[1] {
	case '"', '\\', '/', 'b', 'f', 'n', 'r', 't':
		return 1, 2, true
	case 'u':
	default:
		return 0, 0, false
	}
	r, ok := hex4(s[2:])
	if !ok {
		return 0, 0, false
	}
	if !utf16.IsSurrogate(r) {
		return utf8.RuneLen(r), 6, true
	}
	// A high surrogate followed by an escaped low one is one character;
	// anything else is U+FFFD and the next escape stands alone.
	if len(s) >= 12 && s[6] == '\\' && s[7] == 'u' {
		if r2, ok := hex4(s[8:]); ok && utf16.DecodeRune(r, r2) != utf8.RuneError {
			return 4, 12, true
		}
	}
	return len(string(utf8.RuneError)), 6, true
}

// hex4 decodes the four hex digits at the start of s.
func hex4(s []byte) (rune, bool) {
	if len(s) < 4 {
		return 0, false
	}
	var r rune
	for _, c := range s[:4] {
		switch {
		case '0' <= c && c <= '9':
			c -= '0'
		case 'a' <= c && c <= 'f':
			c = c - 'a' + 10
		case 'A' <= c && c <= 'F':
			c = c - 'A' + 10
		default:
			return 0, false
		}
		r = r<<4 | rune(c)
	}
	return r, true
}

// ValidStringLen is validString and the decoded length in one pass: it
// checks the string that starts at b[i] (a quote) and returns the index
// after its closing quote, or -1, and the length in bytes of what the
// string decodes to, as the tests' DecodedLen measures it. A request's
// prompt text is read once this way, to validate and to measure it.
//
// It reads a stretch of up to mediumString bytes 32 at a time (textRun);
// the rest of a longer one is searched with bytes.IndexByte for its next
// quote and backslash, and the bytes in between are then tested 32 at a
// time for one that is a control character or not ASCII (plainASCII). Such
// a stretch of text that is not ASCII is tested for control characters and
// checked with utf8.Valid as a whole; only one that is not valid UTF-8 is
// read a character at a time.
func ValidStringLen(b []byte, i int) (end, n int) {
	quote := -1 // index of the next quote at or after i, -1 until searched
	for i++; i < len(b); {
		lim := min(len(b), i+mediumString)
		run := textRun(b[i:lim])
		n += run
		i += run
		if i == lim {
			// A long stretch of ASCII: the bytes before the next quote
			// or backslash.
			var stop int
			if stop, quote = nextSpecial(b, i, quote); stop < 0 {
				return -1, 0
			}
			run := plainASCII(b[i:stop])
			n += run
			i += run
		}
		switch c := b[i]; {
		case c == '"':
			return i + 1, n
		case c == '\\':
			w, used, ok := escapeLen(b[i:])
			if !ok {
				return -1, 0
			}
			n += w
			i += used
		case c < 0x20:
			return -1, 0
		default:
			// Not ASCII: the text up to the next quote or backslash.
			var stop int
			if stop, quote = nextSpecial(b, i, quote); stop < 0 || hasControl(b[i:stop]) {
				return -1, 0
			}
			n += utf8Len(b[i:stop])
			i = stop
		}
	}
	return -1, 0
}

// mediumString is how many bytes of a string ValidStringLen reads with
// textRun before it searches for the next quote and backslash with
// bytes.IndexByte instead: two calls of it cost more than textRun on a
// string of a few hundred bytes (a chat message).
const mediumString = 256

// textRun is the number of leading bytes of b that a JSON string holds as
// they are and that are ASCII: no quote, backslash, control character or
// byte above 0x7f. In a word v, the lowest byte whose high bit is set in
// (v^'"' - 1) | (v^'\\' - 1) | (v - 0x20) | v (bytewise) is the first such
// byte: below it no byte borrows, above it a borrow may flag more. It
// tests 32 bytes at a time, the four words' flags or-ed together, then
// finds the byte in the flagged stretch eight at a time.
func textRun(b []byte) int {
	i := 0
	for ; i+32 <= len(b); i += 32 {
		if special(binary.LittleEndian.Uint64(b[i:]))|special(binary.LittleEndian.Uint64(b[i+8:]))|
			special(binary.LittleEndian.Uint64(b[i+16:]))|special(binary.LittleEndian.Uint64(b[i+24:])) != 0 {
			break
		}
	}
	for ; i+8 <= len(b); i += 8 {
		if z := special(binary.LittleEndian.Uint64(b[i:])); z != 0 {
			return i + bits.TrailingZeros64(z)/8
		}
	}
	for i < len(b) && b[i] >= 0x20 && b[i] < utf8.RuneSelf && b[i] != '"' && b[i] != '\\' {
		i++
	}
	return i
}

// special flags the bytes of v that end textRun (see there).
func special(v uint64) uint64 {
	quote, backslash := v^(ones*'"'), v^(ones*'\\') // zero where v has one
	return ((quote - ones) | (backslash - ones) | notPlain(v)) & highs
}

// nextSpecial returns the index of the first quote or backslash at or
// after i, or -1 when b has no quote there. quote is the index of the
// first quote at or after some earlier i, or -1: it is searched for again
// only once i has passed it (an escape held it); the quote found is
// returned for the next call.
func nextSpecial(b []byte, i, quote int) (stop, nextQuote int) {
	if quote < i {
		q := bytes.IndexByte(b[i:], '"')
		if q < 0 {
			return -1, -1
		}
		quote = i + q
	}
	if bs := bytes.IndexByte(b[i:quote], '\\'); bs >= 0 {
		return i + bs, quote
	}
	return quote, quote
}

// plainASCII is the number of leading bytes of b that are ASCII and not
// control characters. In a word v, the lowest byte whose high bit is set
// in (v - 0x20...) | v is the first that is below 0x20 or above 0x7f (a
// borrow from it may flag higher bytes too, never lower ones). Long
// stretches are tested 32 bytes at a time, the four words' flags or-ed
// together: a word is flagged only when it holds such a byte.
func plainASCII(b []byte) int {
	i := 0
	for ; i+32 <= len(b); i += 32 {
		v0, v1 := binary.LittleEndian.Uint64(b[i:]), binary.LittleEndian.Uint64(b[i+8:])
		v2, v3 := binary.LittleEndian.Uint64(b[i+16:]), binary.LittleEndian.Uint64(b[i+24:])
		if (notPlain(v0)|notPlain(v1)|notPlain(v2)|notPlain(v3))&highs != 0 {
			break
		}
	}
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if z := notPlain(v) & highs; z != 0 {
			return i + bits.TrailingZeros64(z)/8
		}
	}
	for i < len(b) && b[i] >= 0x20 && b[i] < utf8.RuneSelf {
		i++
	}
	return i
}

// notPlain sets the high bit of the bytes of v that end plainASCII (see
// there), and of others only above them.
func notPlain(v uint64) uint64 { return (v - ones*0x20) | v }

// utf8Len is the length of what the bytes s (no quote, backslash or
// control character) decode to: s itself when it is valid UTF-8, else
// with each byte that is not UTF-8 replaced by the 3-byte U+FFFD.
func utf8Len(s []byte) int {
	if utf8.Valid(s) {
		return len(s)
	}
	n := 0
	for i := 0; i < len(s); {
		r, size := utf8.DecodeRune(s[i:])
		if r == utf8.RuneError && size == 1 {
			n += len(string(utf8.RuneError))
		} else {
			n += size
		}
		i += size
	}
	return n
}
