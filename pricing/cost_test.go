package pricing

import (
	"math"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spendguard/spendguard/internal/money"
)

func TestCost(t *testing.T) {
	llama70 := Price{Input: 600_000_000, CachedInput: 300_000_000, Output: 800_000_000} // 0.60 / 0.30 / 0.80
	tiny := Price{Input: 1, CachedInput: 1, Output: 1}                                  // 0.000000001 per million
	big := Price{Input: 1000 * money.PerUSD, CachedInput: 1000 * money.PerUSD, Output: 1000 * money.PerUSD}
	tests := []struct {
		name  string
		price Price
		usage Usage
		want  Breakdown
	}{
		{
			name: "12 prompt, 100 completion", price: llama70,
			usage: Usage{Prompt: 12, Completion: 100},
			// 12*0.60e9/1e6 = 7200; 100*0.80e9/1e6 = 80000
			want: Breakdown{Input: 7_200, Output: 80_000, Total: 87_200},
		},
		{
			name: "cached prompt at its own price", price: llama70,
			usage: Usage{Prompt: 12, CachedPrompt: 4, Completion: 100},
			// (8*0.60e9 + 4*0.30e9)/1e6 = 4800 + 1200
			want: Breakdown{Input: 6_000, Output: 80_000, Total: 86_000},
		},
		{
			name: "a million of each", price: llama70,
			usage: Usage{Prompt: 1_000_000, Completion: 1_000_000},
			want:  Breakdown{Input: 600_000_000, Output: 800_000_000, Total: 1_400_000_000},
		},
		{
			name: "fraction of a nano rounds up", price: Price{Input: 60_000_001, CachedInput: 60_000_001, Output: 60_000_000},
			usage: Usage{Prompt: 1, Completion: 1},
			// 60.000001 -> 61; 60 exactly -> 60
			want: Breakdown{Input: 61, Output: 60, Total: 121},
		},
		{
			name: "one token at the smallest price", price: tiny,
			usage: Usage{Prompt: 1, Completion: 1},
			want:  Breakdown{Input: 1, Output: 1, Total: 2},
		},
		{
			name: "one ceil over the cached and uncached sum", price: tiny,
			usage: Usage{Prompt: 2, CachedPrompt: 1},
			// ceil((1*1 + 1*1)/1e6) = 1, not ceil(1e-6)+ceil(1e-6) = 2
			want: Breakdown{Input: 1, Total: 1},
		},
		{
			name: "an exact multiple is not rounded, one token more is", price: tiny,
			usage: Usage{Prompt: 2_000_000, Completion: 3_000_001},
			want:  Breakdown{Input: 2, Output: 4, Total: 6},
		},
		{
			name: "zero usage", price: llama70,
			want: Breakdown{},
		},
		{
			name: "free model", price: Price{},
			usage: Usage{Prompt: 1 << 40, Completion: 1 << 40},
			want:  Breakdown{},
		},
		{
			name: "cached clamped to prompt", price: llama70,
			usage: Usage{Prompt: 10, CachedPrompt: 50},
			want:  Breakdown{Input: 3_000, Total: 3_000}, // all 10 cached
		},
		{
			name: "negative counts are zero", price: llama70,
			usage: Usage{Prompt: -5, CachedPrompt: -1, Completion: -7},
			want:  Breakdown{},
		},
		{
			name: "negative cached is zero", price: llama70,
			usage: Usage{Prompt: 10, CachedPrompt: -3},
			want:  Breakdown{Input: 6_000, Total: 6_000},
		},
		{
			name: "huge counts past int64 products", price: big,
			usage: Usage{Prompt: 1_000_000_000_000, CachedPrompt: 1, Completion: 3_000_000_000_000},
			// 1e12 tokens * 1e12 nano/M = 1e24 (overflows int64) / 1e6 = 1e18
			want: Breakdown{Input: 1_000_000_000_000_000_000, Output: 3_000_000_000_000_000_000, Total: 4_000_000_000_000_000_000},
		},
		{
			name: "saturates instead of wrapping", price: big,
			usage: Usage{Prompt: math.MaxInt64, Completion: math.MaxInt64},
			want:  Breakdown{Input: math.MaxInt64, Output: math.MaxInt64, Total: math.MaxInt64},
		},
		{
			name: "sum saturates", price: Price{Input: 6 * money.PerUSD, Output: 6 * money.PerUSD},
			usage: Usage{Prompt: 1 << 60, Completion: 1 << 60},
			// each 2^60*6e9/1e6 = 6.9e21: saturated
			want: Breakdown{Input: math.MaxInt64, Output: math.MaxInt64, Total: math.MaxInt64},
		},
		{
			name: "total saturates when the parts do not", price: Price{Input: 1_000_000, Output: 1_000_000},
			usage: Usage{Prompt: math.MaxInt64/2 + 1, Completion: math.MaxInt64/2 + 1},
			want:  Breakdown{Input: math.MaxInt64/2 + 1, Output: math.MaxInt64/2 + 1, Total: math.MaxInt64},
		},
		{
			name: "largest result that fits", price: Price{Input: 1_000_000, CachedInput: 1_000_000},
			usage: Usage{Prompt: math.MaxInt64, CachedPrompt: 12345},
			want:  Breakdown{Input: math.MaxInt64, Total: math.MaxInt64},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			assert.Equal(t, tt.want, tt.price.Cost(tt.usage))
		})
	}
}

func TestCostNeverUnderCharges(t *testing.T) {
	// For every split, Input*1e6 covers the exact cost and exceeds it by
	// less than 1e6 (less than one nano-USD).
	p := Price{Input: 123_456_789, CachedInput: 61_728_394, Output: 987_654_321}
	for prompt := int64(0); prompt < 300; prompt += 7 {
		for cached := int64(0); cached <= prompt; cached += 5 {
			got := p.Cost(Usage{Prompt: prompt, CachedPrompt: cached, Completion: prompt})
			exactIn := (prompt-cached)*int64(p.Input) + cached*int64(p.CachedInput)
			exactOut := prompt * int64(p.Output)
			assert.GreaterOrEqual(t, int64(got.Input)*1e6, exactIn)
			assert.Less(t, int64(got.Input)*1e6-exactIn, int64(1e6))
			assert.GreaterOrEqual(t, int64(got.Output)*1e6, exactOut)
			assert.Less(t, int64(got.Output)*1e6-exactOut, int64(1e6))
			assert.Equal(t, got.Input+got.Output, got.Total)
		}
	}
}
