// Package money holds spendguard's one representation of money: an integer
// count of nano-USD (1e-9 USD). Counters, reservations and prices never use
// floating point; USD strings are parsed and printed exactly.
package money

import (
	"errors"
	"fmt"
	"math"
	"math/bits"
	"strconv"
	"strings"
)

// Nano is an amount of money in nano-USD. One USD is 1_000_000_000 Nano.
type Nano int64

// PerUSD is the number of Nano in one USD.
const PerUSD Nano = 1_000_000_000

// ErrSyntax reports a string that is not a plain decimal USD amount.
var ErrSyntax = errors.New("not a decimal USD amount")

// ParseUSD parses a decimal USD amount such as "0.60", "1000" or "-2.5"
// exactly (no floating point). At most 9 fractional digits are accepted,
// since a Nano cannot represent more.
func ParseUSD(s string) (Nano, error) {
	t := strings.TrimSpace(s)
	neg := false
	if strings.HasPrefix(t, "-") {
		neg, t = true, t[1:]
	} else if strings.HasPrefix(t, "+") {
		t = t[1:]
	}
	whole, frac, hasDot := strings.Cut(t, ".")
	if whole == "" && (!hasDot || frac == "") {
		return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
	}
	if len(frac) > 9 {
		return 0, fmt.Errorf("%q: more than 9 decimal places: %w", s, ErrSyntax)
	}
	for _, part := range []string{whole, frac} {
		for _, c := range part {
			if c < '0' || c > '9' {
				return 0, fmt.Errorf("%q: %w", s, ErrSyntax)
			}
		}
	}
	var w int64
	if whole != "" {
		var err error
		w, err = strconv.ParseInt(whole, 10, 64)
		if err != nil || w > math.MaxInt64/int64(PerUSD) {
			return 0, fmt.Errorf("%q: out of range: %w", s, ErrSyntax)
		}
	}
	var f int64
	if frac != "" {
		f, _ = strconv.ParseInt(frac+strings.Repeat("0", 9-len(frac)), 10, 64)
	}
	if Nano(w)*PerUSD > math.MaxInt64-Nano(f) {
		return 0, fmt.Errorf("%q: out of range: %w", s, ErrSyntax)
	}
	n := Nano(w)*PerUSD + Nano(f)
	if neg {
		n = -n
	}
	return n, nil
}

// USD formats n as USD with exactly 6 decimals, rounding half away from
// zero, as the admin API and headers print money ("12.345678").
func (n Nano) USD() string { return n.Fixed(6) }

// Fixed formats n as USD with the given number of decimals (0..9), rounding
// half away from zero.
func (n Nano) Fixed(decimals int) string { return string(n.AppendFixed(nil, decimals)) }

// AppendFixed appends n formatted as Fixed does to b, without allocating
// when b has room.
func (n Nano) AppendFixed(b []byte, decimals int) []byte {
	decimals = min(max(decimals, 0), 9)
	neg := n < 0
	u := uint64(n)
	if neg {
		u = uint64(-n)
	}
	unit := uint64(1)
	for i := 0; i < 9-decimals; i++ {
		unit *= 10
	}
	u = (u + unit/2) / unit
	scale := uint64(1)
	for i := 0; i < decimals; i++ {
		scale *= 10
	}
	if neg && u != 0 {
		b = append(b, '-')
	}
	b = strconv.AppendUint(b, u/scale, 10)
	if decimals > 0 {
		b = append(b, '.')
		frac := u % scale
		for d := scale / 10; d > 0; d /= 10 {
			b = append(b, byte('0'+frac/d%10))
		}
	}
	return b
}

// String formats n with 6 decimals, for logs and messages.
func (n Nano) String() string { return n.USD() }

// MulDivCeil returns ceil(a*b/d) for non-negative a, b and positive d,
// computed in 128 bits so that large token counts times large prices do
// not overflow. It saturates at math.MaxInt64.
func MulDivCeil(a, b, d int64) int64 {
	if a <= 0 || b <= 0 || d <= 0 {
		return 0
	}
	hi, lo := bits.Mul64(uint64(a), uint64(b))
	// Add d-1 for the ceiling, carrying into hi.
	var carry uint64
	lo, carry = bits.Add64(lo, uint64(d-1), 0)
	hi += carry
	if hi >= uint64(d) {
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, uint64(d))
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(q)
}

// Add returns a+b, saturating at the int64 limits instead of wrapping.
func Add(a, b Nano) Nano {
	s := a + b
	if a > 0 && b > 0 && s < 0 {
		return math.MaxInt64
	}
	if a < 0 && b < 0 && s >= 0 {
		return math.MinInt64
	}
	return s
}
