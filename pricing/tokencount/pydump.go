package tokencount

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"math/big"
	"strconv"
	"strings"
	"unicode/utf16"
)

// pyDumps writes the JSON value raw as Python's json.dumps writes the
// value json.loads reads from it, with the default options: ", " and ": "
// as separators, every character outside printable ASCII escaped as
// \uXXXX (lowercase, UTF-16 surrogate pairs past U+FFFF), integers as
// written (without leading "-" on zero), other numbers as Python's float
// repr (Infinity past the float range). vLLM builds the arguments string
// of an Anthropic tool_use block this way (json.dumps(block.input)), and
// the string is part of the prompt. An object with a key twice is
// refused (Python keeps the first key's place with the last value, which
// this writer does not reproduce).
func pyDumps(raw []byte) (string, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var b strings.Builder
	if err := pyValue(d, &b); err != nil {
		return "", err
	}
	if _, err := d.Token(); !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("%w: data after a JSON value", ErrUncountable)
	}
	return b.String(), nil
}

// pyValue writes the next value of d.
func pyValue(d *json.Decoder, b *strings.Builder) error {
	t, err := d.Token()
	if err != nil {
		return fmt.Errorf("%w: %v", ErrUncountable, err)
	}
	switch v := t.(type) {
	case json.Delim:
		if v == '[' {
			return pyArray(d, b)
		}
		if v == '{' {
			return pyObject(d, b)
		}
		return fmt.Errorf("%w: unexpected %q", ErrUncountable, v)
	case string:
		pyString(b, v)
	case json.Number:
		return pyNumber(b, string(v))
	case bool:
		b.WriteString(strconv.FormatBool(v))
	case nil:
		b.WriteString("null")
	}
	return nil
}

func pyArray(d *json.Decoder, b *strings.Builder) error {
	b.WriteByte('[')
	for i := 0; d.More(); i++ {
		if i > 0 {
			b.WriteString(", ")
		}
		if err := pyValue(d, b); err != nil {
			return err
		}
	}
	b.WriteByte(']')
	_, err := d.Token()
	return err
}

func pyObject(d *json.Decoder, b *strings.Builder) error {
	b.WriteByte('{')
	seen := make(map[string]struct{})
	for i := 0; d.More(); i++ {
		t, err := d.Token()
		if err != nil {
			return fmt.Errorf("%w: %v", ErrUncountable, err)
		}
		k, _ := t.(string)
		if _, dup := seen[k]; dup {
			return fmt.Errorf("%w: key %q twice in an object", ErrUncountable, k)
		}
		seen[k] = struct{}{}
		if i > 0 {
			b.WriteString(", ")
		}
		pyString(b, k)
		b.WriteString(": ")
		if err := pyValue(d, b); err != nil {
			return err
		}
	}
	b.WriteByte('}')
	_, err := d.Token()
	return err
}

// pyString writes s as json.dumps does with ensure_ascii.
func pyString(b *strings.Builder, s string) {
	const hex = "0123456789abcdef"
	u := func(c uint16) {
		b.WriteString(`\u`)
		b.WriteByte(hex[c>>12])
		b.WriteByte(hex[c>>8&0xf])
		b.WriteByte(hex[c>>4&0xf])
		b.WriteByte(hex[c&0xf])
	}
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r >= 0x20 && r < 0x7f:
			b.WriteRune(r)
		case r > 0xffff:
			hi, lo := utf16.EncodeRune(r)
			u(uint16(hi))
			u(uint16(lo))
		default:
			u(uint16(r))
		}
	}
	b.WriteByte('"')
}

// pyNumber writes the JSON number n as Python prints what json.loads
// makes of it: an int for an integer literal, else a float's repr.
func pyNumber(b *strings.Builder, n string) error {
	if !strings.ContainsAny(n, ".eE") {
		i, ok := new(big.Int).SetString(n, 10)
		if !ok {
			return fmt.Errorf("%w: number %q", ErrUncountable, n)
		}
		b.WriteString(i.String())
		return nil
	}
	f, err := strconv.ParseFloat(n, 64)
	switch {
	case err != nil && math.IsInf(f, 1):
		b.WriteString("Infinity")
		return nil
	case err != nil && math.IsInf(f, -1):
		b.WriteString("-Infinity")
		return nil
	case err != nil && f != 0:
		return fmt.Errorf("%w: number %q", ErrUncountable, n)
	}
	// repr: the shortest digits that round-trip, fixed notation for
	// decimal exponents from -4 to 15, else d.ddde±XX.
	exp := 0
	if f != 0 {
		e := strconv.FormatFloat(f, 'e', -1, 64)
		exp, _ = strconv.Atoi(e[strings.IndexByte(e, 'e')+1:])
	}
	if exp < -4 || exp >= 16 {
		b.WriteString(strconv.FormatFloat(f, 'e', -1, 64))
		return nil
	}
	s := strconv.FormatFloat(f, 'f', -1, 64)
	b.WriteString(s)
	if !strings.Contains(s, ".") {
		b.WriteString(".0")
	}
	return nil
}
