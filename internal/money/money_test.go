package money

import (
	"fmt"
	"math"
	"math/rand/v2"
	"strconv"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseUSD(t *testing.T) {
	good := map[string]Nano{
		"0": 0, "0.60": 600_000_000, "1000": 1000 * PerUSD, "+2.5": 2_500_000_000, "-2.5": -2_500_000_000,
		".5": 500_000_000, "5.": 5 * PerUSD, "0.000000001": 1, " 3 ": 3 * PerUSD, "9223372036": 9223372036 * PerUSD,
	}
	for in, want := range good {
		got, err := ParseUSD(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", ".", "-", "1e3", "0x10", "1_000", "0.0000000001", "1.2.3", "abc", "9223372037", "9223372036.9", "NaN", "inf"} {
		_, err := ParseUSD(in)
		assert.ErrorIs(t, err, ErrSyntax, in)
	}
}

func TestFixed(t *testing.T) {
	tests := []struct {
		n        Nano
		decimals int
		want     string
	}{
		{1000_020_000_000, 2, "1000.02"},
		{12_345_000_000, 2, "12.35"},
		{-12_345_000_000, 2, "-12.35"},
		{4_999_999, 2, "0.00"},
		{5_000_000, 2, "0.01"},
		{-4, 6, "0.000000"},
		{123_456_789, 6, "0.123457"},
		{123_456_789, 9, "0.123456789"},
		{7 * PerUSD, 0, "7"},
		{math.MaxInt64, 6, "9223372036.854776"},
	}
	for _, tt := range tests {
		assert.Equal(t, tt.want, tt.n.Fixed(tt.decimals), "%d", tt.n)
	}
	assert.Equal(t, "0.600000", Nano(600_000_000).USD())
}

func TestMulDivCeil(t *testing.T) {
	assert.Equal(t, int64(7200), MulDivCeil(12, 600_000_000, 1_000_000))
	assert.Equal(t, int64(1), MulDivCeil(1, 1, 1_000_000), "rounds up, never under-charges")
	assert.Equal(t, int64(0), MulDivCeil(0, 5, 7))
	// 10^10 tokens × 10^12 nano/M overflows 64 bits in the product only.
	assert.Equal(t, int64(10_000_000_000_000_000), MulDivCeil(10_000_000_000, 1_000_000_000_000, 1_000_000))
	assert.Equal(t, int64(math.MaxInt64), MulDivCeil(math.MaxInt64, math.MaxInt64, 1), "saturates")
}

func TestAddSaturates(t *testing.T) {
	assert.Equal(t, Nano(math.MaxInt64), Add(math.MaxInt64, 1))
	assert.Equal(t, Nano(math.MinInt64), Add(math.MinInt64, -1))
	assert.Equal(t, Nano(3), Add(1, 2))
}

func FuzzParseUSD(f *testing.F) {
	for _, s := range []string{"0.60", "-1", "1e3", "99999999999"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n, err := ParseUSD(s)
		if err != nil {
			return
		}
		back, err := ParseUSD(n.Fixed(9))
		require.NoError(t, err)
		assert.Equal(t, n, back, "printing with 9 decimals round-trips")
	})
}

// fixedRef is Fixed as it was written first, with fmt.
func fixedRef(n Nano, decimals int) string {
	decimals = min(max(decimals, 0), 9)
	neg := n < 0
	u := uint64(n)
	if neg {
		u = uint64(-n)
	}
	unit := uint64(1)
	for range 9 - decimals {
		unit *= 10
	}
	u = (u + unit/2) / unit
	scale := uint64(1)
	for range decimals {
		scale *= 10
	}
	s := strconv.FormatUint(u/scale, 10)
	if decimals > 0 {
		s += "." + fmt.Sprintf("%0*d", decimals, u%scale)
	}
	if neg && u != 0 {
		s = "-" + s
	}
	return s
}

func TestAppendFixedMatchesReference(t *testing.T) {
	r := rand.New(rand.NewPCG(7, 8))
	values := []Nano{0, 1, -1, 5, -5, 499_999_999, 500_000_000, 999_999_999, math.MaxInt64, math.MinInt64 + 1}
	for range 20000 {
		values = append(values, Nano(r.Int64N(1<<62)-1<<61), Nano(r.Int64N(1_000_000_000)))
	}
	for _, n := range values {
		for d := -1; d <= 10; d++ {
			want := fixedRef(n, d)
			require.Equal(t, want, n.Fixed(d), "%d with %d decimals", n, d)
			require.Equal(t, "x"+want, string(n.AppendFixed([]byte("x"), d)))
		}
	}
}
