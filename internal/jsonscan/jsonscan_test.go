package jsonscan

import (
	"encoding/binary"
	"encoding/json"
	"math/bits"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
)

// docs are documents where a hand-written reader could part from
// encoding/json: every number and literal shape, escapes, bytes that are
// not UTF-8, whitespace, nesting at the depth limit, and malformed JSON.
var docs = []string{
	`{"a":"b","a":"c"}`, `{"con\u0074ent":1,"r\u00e9le":[]}`, "{\"ro\xffle\":{},\"ro\xfele\":2}",
	`{"s":"\ud800x\u00e9\xff\"\\\/\b\f\n\r\t"}`,
	"{ \"a\" : [ 1 , 2 ] ,\n\t\"b\" : { } }\r\n",
	`[-0,1e0,-2.5e-3,0.0,1E+2,true,false,null,{"a":[]},""]`,
	`123456789012345678901`, `"x"`, `null`, `{}`, `[]`, ``, ` `,
	`{"a":1,}`, `{"a":1`, `{"a" 1}`, `{"a":1}x`, `01`, `1.`, `1e`, `-`, `.5`, `+1`,
	`"\x01"`, "\"\x01\"", `"\q"`, `"\u12"`, `"\u12g4"`, `tru`, `nul`, `[1,]`, `[,1]`,
	`{"a":1,,"b":2}`, `{1:2}`, "\xef\xbb\xbf{}", `[[[[[]]]]]`, `[[[[[]]]]`,
	strings.Repeat("[", MaxDepth) + strings.Repeat("]", MaxDepth),
	strings.Repeat("[", MaxDepth+1) + strings.Repeat("]", MaxDepth+1),
}

func FuzzValid(f *testing.F) {
	for _, s := range docs {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		want := json.Valid(b)
		if got := Valid(b); got != want {
			t.Fatalf("Valid(%q) = %v, encoding/json says %v", b, got, want)
		}
		members, valid, object := ValidMembers(b, nil)
		if valid != want {
			t.Fatalf("ValidMembers(%q) says valid %v, encoding/json %v", b, valid, want)
		}
		start := SkipSpace(b, 0)
		if isObject := start < len(b) && b[start] == '{'; object != isObject {
			t.Fatalf("ValidMembers(%q) says object %v", b, object)
		}
		if valid && object {
			assert.Equal(t, Members(b[start:], nil), members, "%q", b)
		}
	})
}

func TestSkipValueMatchesValid(t *testing.T) {
	for _, s := range docs {
		b := []byte(s)
		if !Valid(b) {
			continue
		}
		i := SkipSpace(b, 0)
		assert.Equal(t, len(strings.TrimRight(s, " \t\r\n")), SkipValue(b, i), "%q", s)
	}
}

// BenchmarkValid is the validating pass over a 1 KiB document.
func BenchmarkValid(b *testing.B) {
	body := []byte(`{"model":"m","messages":[` + strings.Repeat(`{"role":"user","content":"Summarise the report in three bullet points."},`, 14) +
		`{"role":"user","content":[{"type":"text","text":"Keep it short."}]}],"max_tokens":256,"temperature":0.2}`)
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if !Valid(body) {
			b.Fatal("invalid")
		}
	}
}

func TestObjectLastDuplicateWins(t *testing.T) {
	b := []byte(` {"a":1, "b" : [2, {"c":3}] ,"a":"x","\u0062":null}`)
	start := SkipSpace(b, 0)
	o := Members(b[start:], nil)
	assert.Len(t, o, 4)
	assert.Equal(t, `"x"`, string(o.Get("a")))
	assert.Equal(t, `null`, string(o.Get("b")), "an escaped key is the same name")
	assert.Nil(t, o.Get("c"), "members of nested objects are not the object's")
	m, ok := o.Lookup("a")
	assert.True(t, ok)
	assert.Equal(t, `"x"`, string(b[start+m.Offset:start+m.Offset+len(m.Value)]))
	assert.False(t, o.Unique(0))
	assert.False(t, o.Unique(1), `"\u0062" replaces "b"`)
	assert.True(t, o.Unique(2))
}

func TestString(t *testing.T) {
	for raw, want := range map[string]string{
		`"plain"`: "plain", ` "é" `: "é", `"a\"b\\c"`: `a"b\c`, `"\u00e9"`: "é", "\"\xff\"": "\uFFFD",
	} {
		got, ok := String([]byte(raw))
		assert.True(t, ok, raw)
		assert.Equal(t, want, got, raw)
	}
	_, ok := String([]byte(`12`))
	assert.False(t, ok)
}

// TestPlainRun compares the eight-at-a-time run with a byte loop on every
// byte value at every position of a block.
func TestPlainRun(t *testing.T) {
	plain := func(b []byte) int {
		i := 0
		for i < len(b) && b[i] >= 0x20 && b[i] != '"' && b[i] != '\\' {
			i++
		}
		return i
	}
	b := []byte(strings.Repeat("plain text, é and 中 ", 2))
	for pos := range b {
		for c := range 256 {
			saved := b[pos]
			b[pos] = byte(c)
			assert.Equal(t, plain(b), PlainRun(b), "byte %#x at %d", c, pos)
			b[pos] = saved
		}
	}
}

// FuzzKeys checks KeyIs, sameKey (through Unique) and Verbatim against
// what encoding/json decodes, on keys that are valid JSON strings.
func FuzzKeys(f *testing.F) {
	for _, k := range []string{"content", `con\u0074ent`, "r\u00e9le", "ro\xffle", `a\nb`, `\ud800`, "\xef\xbf\xbd", "\xff", `\\`, "", "a\\\\b"} {
		f.Add([]byte(k), []byte("content"))
	}
	f.Fuzz(func(t *testing.T, a, b []byte) {
		qa, qb := append(append([]byte{'"'}, a...), '"'), append(append([]byte{'"'}, b...), '"')
		if !Valid(qa) || !Valid(qb) {
			return
		}
		var da, db string
		if json.Unmarshal(qa, &da) != nil || json.Unmarshal(qb, &db) != nil {
			t.Fatalf("%q or %q does not decode", qa, qb)
		}
		assert.Equal(t, !strings.Contains(string(a), `\`) && utf8.Valid(a), Verbatim(a), "Verbatim(%q)", a)
		o := Object{{Key: a}, {Key: b}}
		assert.Equal(t, da != db, o.Unique(0), "%q and %q", a, b)
		for _, name := range []string{"content", "role", "n", "", `a\b`, string(b)} {
			if !isASCII(name) {
				continue
			}
			assert.Equal(t, da == name, KeyIs(a, name), "KeyIs(%q, %q)", a, name)
		}
	})
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// TestVerbatimLong puts a backslash or a byte that is not UTF-8 at every
// position of a string longer than a word.
func TestVerbatimLong(t *testing.T) {
	b := []byte(strings.Repeat("plain é 中 text ", 3))
	assert.True(t, Verbatim(b))
	for pos := range b {
		for _, c := range []byte{'\\', 0xff} {
			saved := b[pos]
			b[pos] = c
			assert.False(t, Verbatim(b), "%#x at %d", c, pos)
			b[pos] = saved
		}
	}
}

func TestMembersEnd(t *testing.T) {
	_, end := MembersEnd([]byte(`{"a":{"b":[]}} ,{}`), nil)
	assert.Equal(t, 14, end)
}

// FuzzDecodedLen checks DecodedLen against what encoding/json decodes the
// same string to.
func FuzzDecodedLen(f *testing.F) {
	for _, s := range []string{
		``, `plain`, `line\nbreak`, `\"quoted\"`, `tab\tand\\slash\/`, `\u00e9t\u00E9`,
		`\ud83d\ude00`, `\ud83d`, `\ude00\ud83d`, `\ud83d\u0041`, `\ud83dx`, `caf` + "\xc3\xa9",
		"\xff\xfe bad", "\xe2\x82", `\u12`, `\x`, `trailing\`, "ctl\x01", `a"b`, "日本語\\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, inner []byte) {
		n, ok := DecodedLen(inner)
		var s string
		err := json.Unmarshal(append(append([]byte{'"'}, inner...), '"'), &s)
		if (err == nil) != ok {
			t.Fatalf("DecodedLen(%q) ok=%v, encoding/json: %v", inner, ok, err)
		}
		if ok && n != len(s) {
			t.Fatalf("DecodedLen(%q) = %d, encoding/json decodes %d bytes: %q", inner, n, len(s), s)
		}
	})
}

// TestValidStringsEveryPosition puts each kind of special sequence at
// every position of strings short and long (the long ones are searched
// with IndexByte), alone and in pairs, and checks Valid against
// encoding/json.
func TestValidStringsEveryPosition(t *testing.T) {
	specials := []string{`\"`, `\\`, `\n`, `\u00e9`, `\ud83d\ude00`, "\x01", `\`, `\u12`, `\x`, `"`, "\xff", `\\"`}
	for _, n := range []int{0, 1, 7, 8, 9, 15, 16, 17, 40, 100} {
		for _, a := range specials {
			for pos := 0; pos <= n; pos++ {
				for _, b := range []string{"", `\n`, `\"`, "\x1f"} {
					plain := strings.Repeat("a", n)
					s := `{"k":"` + plain[:pos] + a + plain[pos:] + b + `","z":1}`
					if got, want := Valid([]byte(s)), json.Valid([]byte(s)); got != want {
						t.Fatalf("Valid(%q) = %v, encoding/json says %v", s, got, want)
					}
				}
			}
		}
	}
}

// checkValidStringLen checks ValidStringLen on the string at b[i] against
// validString and DecodedLen.
func checkValidStringLen(t *testing.T, b []byte, i int) {
	t.Helper()
	end, n := ValidStringLen(b, i)
	if want := validString(b, i); end != want {
		t.Fatalf("ValidStringLen(%q, %d) ends at %d, validString at %d", b, i, end, want)
	}
	if end < 0 {
		return
	}
	if want, ok := DecodedLen(b[i+1 : end-1]); !ok || n != want {
		t.Fatalf("ValidStringLen(%q, %d) = %d, DecodedLen %d (ok %v)", b, i, n, want, ok)
	}
}

// TestValidStringLenEveryPosition puts each kind of special sequence
// (escapes, quotes, control and non-ASCII bytes, UTF-8 cut short) at every
// position of plain runs short and long, so that it falls in every part
// of ValidStringLen: the 32-byte words of textRun and their tail, after
// mediumString where IndexByte takes over, and in plainASCII's words.
func TestValidStringLenEveryPosition(t *testing.T) {
	specials := []string{`\"`, `\\`, `\n`, `\u00e9`, `\ud83d\ude00`, `\ud83d`, `\ud83d\u0041`, "\x01", "\x7f", `\`, `\u12`, `\x`,
		`"`, "\xff", "\xe2\x82", "é", "日本", "😀", `\\"`, " ", "~"}
	tails := []string{"", `\n`, `\"`, "\x1f", "é", "\xff"}
	for _, n := range []int{0, 1, 7, 8, 9, 31, 32, 33, 40, 63, 64, 65, 100, 255, 256, 257, 300, 333} {
		for _, a := range specials {
			for pos := 0; pos <= n; pos++ {
				for _, tail := range tails {
					plain := strings.Repeat("a", n)
					s := `"` + plain[:pos] + a + plain[pos:] + tail + `"`
					checkValidStringLen(t, []byte(s), 0)
					checkValidStringLen(t, []byte(s+`,1`), 0)
					checkValidStringLen(t, []byte(s[:len(s)-1]), 0) // not closed
				}
			}
		}
	}
}

// FuzzValidStringLen checks ValidStringLen on any bytes after a quote.
func FuzzValidStringLen(f *testing.F) {
	f.Add([]byte(`plain"`), uint16(0))
	f.Add([]byte(`line\nbreak\u00e9\ud83d\ude00"x`), uint16(300))
	f.Add([]byte("caf\xc3\xa9 \xff\"\x01"), uint16(40))
	f.Fuzz(func(t *testing.T, inner []byte, pad uint16) {
		// pad plain bytes first move the bytes past mediumString.
		b := append([]byte(`"`+strings.Repeat("p", int(pad%600))), inner...)
		checkValidStringLen(t, b, 0)
	})
}

// TestVerbatimShort checks the loop Verbatim reads short strings with: a
// backslash, a byte that is not UTF-8 or a cut or whole character at every
// position of every length up to and past 16.
func TestVerbatimShort(t *testing.T) {
	for n := range 20 {
		for pos := 0; pos <= n; pos++ {
			for _, c := range []string{`\`, "\xff", "\xe2\x82", "é", "中", "é\\"} {
				s := strings.Repeat("a", pos) + c + strings.Repeat("b", n-pos)
				want := !strings.Contains(s, `\`) && utf8.ValidString(s)
				assert.Equal(t, want, Verbatim([]byte(s)), "%q", s)
			}
		}
	}
}

// DecodedLen, the tests' reference for ValidStringLen, returns the length
// in bytes of what the contents of a JSON string (the bytes between its
// quotes) decode to, as encoding/json decodes it: escapes count as the UTF-8 length of
// their character, a surrogate pair as one 4-byte character, and a lone
// surrogate or a byte that is not valid UTF-8 as the 3-byte U+FFFD that
// replaces it. ok is false when s is not the inside of a valid string (an
// unknown or cut escape, a quote or a control byte); FuzzDecodedLen checks
// it against encoding/json.
func DecodedLen(s []byte) (n int, ok bool) {
	for i := 0; i < len(s); {
		run := asciiRun(s[i:])
		n += run
		i += run
		if i == len(s) {
			return n, true
		}
		switch c := s[i]; {
		case c == '\\':
			w, used, ok := escapeLen(s[i:])
			if !ok {
				return 0, false
			}
			n += w
			i += used
		case c < ' ' || c == '"':
			return 0, false
		default: // not ASCII
			r, size := utf8.DecodeRune(s[i:])
			if r == utf8.RuneError && size == 1 {
				n += len(string(utf8.RuneError))
			} else {
				n += size
			}
			i += size
		}
	}
	return n, true
}

// asciiRun is PlainRun that also stops at a byte that is not ASCII.
func asciiRun(b []byte) int {
	i := 0
	for ; i+8 <= len(b); i += 8 {
		v := binary.LittleEndian.Uint64(b[i:])
		if z := zeroBytes(v^(ones*'"')) | zeroBytes(v^(ones*'\\')) | (v-ones*0x20)&^v&highs | v&highs; z != 0 {
			return i + bits.TrailingZeros64(z)/8
		}
	}
	for i < len(b) && b[i] >= 0x20 && b[i] < utf8.RuneSelf && b[i] != '"' && b[i] != '\\' {
		i++
	}
	return i
}
