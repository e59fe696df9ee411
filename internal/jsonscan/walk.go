package jsonscan

import (
	"bytes"
	"encoding/binary"
	"math/bits"
	"strings"
)

// The walkers in this file take JSON that Valid has accepted.

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
