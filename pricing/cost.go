package pricing

import (
	"math"
	"math/bits"

	"github.com/spendguard/spendguard/internal/money"
)

// tokensPerPriceUnit is the number of tokens a Price is quoted for.
const tokensPerPriceUnit = 1_000_000

// Breakdown is the cost of one request in nano-USD.
type Breakdown struct {
	Input  money.Nano // prompt tokens, cached and uncached
	Output money.Nano // completion tokens
	Audio  money.Nano // audio seconds (Usage.Seconds at Price.PerSecond)
	Total  money.Nano // Input + Output + Audio
}

// Cost prices u with p, exactly, in integer arithmetic:
//
//	Input  = ceil(((Prompt-CachedPrompt)*p.Input + CachedPrompt*p.CachedInput) / 1e6)
//	Output = ceil((Completion*p.Output) / 1e6)
//	Audio  = Seconds*p.PerSecond
//	Total  = Input + Output + Audio
//
// Each component is rounded up once, from the exact 128-bit sum of its
// products, so a request is never charged less than its exact cost and at
// most 1 nano-USD more per component. Negative token counts and prices count
// as 0, CachedPrompt is clamped to [0, Prompt], and a result too large for
// money.Nano saturates at math.MaxInt64 instead of wrapping.
func (p Price) Cost(u Usage) Breakdown {
	prompt := nonNeg(u.Prompt)
	cached := min(nonNeg(u.CachedPrompt), prompt)
	completion := nonNeg(u.Completion)

	in := mulAddDivCeil(uint64(prompt-cached), nonNegNano(p.Input),
		uint64(cached), nonNegNano(p.CachedInput), tokensPerPriceUnit)
	out := mulAddDivCeil(uint64(completion), nonNegNano(p.Output), 0, 0, tokensPerPriceUnit)
	audio := mulAddDivCeil(uint64(nonNeg(u.Seconds)), nonNegNano(p.PerSecond), 0, 0, 1)
	return Breakdown{Input: in, Output: out, Audio: audio, Total: money.Add(money.Add(in, out), audio)}
}

// mulAddDivCeil returns ceil((a*x + b*y) / d) for d > 0, computed in 128
// bits, saturating at math.MaxInt64.
func mulAddDivCeil(a, x, b, y, d uint64) money.Nano {
	hi1, lo1 := bits.Mul64(a, x)
	hi2, lo2 := bits.Mul64(b, y)
	lo, carry := bits.Add64(lo1, lo2, 0)
	hi, over := bits.Add64(hi1, hi2, carry)
	if over != 0 {
		return math.MaxInt64
	}
	lo, carry = bits.Add64(lo, d-1, 0)
	hi, over = bits.Add64(hi, 0, carry)
	if over != 0 || hi >= d { // the quotient would not fit in 64 bits
		return math.MaxInt64
	}
	q, _ := bits.Div64(hi, lo, d)
	if q > math.MaxInt64 {
		return math.MaxInt64
	}
	return money.Nano(q)
}

func nonNeg(n int64) int64 { return max(n, 0) }

func nonNegNano(n money.Nano) uint64 { return uint64(max(n, 0)) }
