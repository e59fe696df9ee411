package budget

import (
	"fmt"
	"time"

	"github.com/spendguard/spendguard/internal/money"
)

// Rejection says which budget refused a request, with what the 402 answer
// needs.
type Rejection struct {
	Budget     string     // x-spendguard-budget
	Scope      string     // x-spendguard-scope, e.g. "tenant=acme"
	Spent      money.Nano // committed in the period
	Reserved   money.Nano // held by in-flight requests in the period
	Requested  money.Nano // this request's worst case (0 at request headers)
	Hard       money.Nano
	PeriodWord string    // "this month", "in total", ...
	ResetsAt   time.Time // in the budget's time zone; zero for total

	// Lowerable is set on a refusal of Admit (or Reserve) whose every
	// blocking budget has on_hard.lower_output_limit: the request may be
	// claimed again for at most Room, with its output limit lowered to
	// fit. Room is the largest amount every enforced budget of the claim
	// could still hold when it was refused (the least hard cap minus
	// committed and reserved, at least 0); it is 0 when Lowerable is
	// false. A request refused at the request headers (Exhausted) is never
	// lowerable.
	Lowerable bool
	Room      money.Nano
}

// Message is the 402 error message, for example
//
//	budget tenant-monthly exhausted for tenant=acme: spent 1000.02 of 1000.00 USD this month; resets 2026-12-01T00:00:00+01:00
//
// "spent" is Spent+Reserved, everything that counts against the cap, so the
// message shows why the request was refused even while other requests are
// in flight. When the budget still has room but not for this request's
// worst case (Requested), the message says so:
//
//	budget tenant-monthly cannot cover this request for tenant=acme: spent 999.50 of 1000.00 USD this month and the request may cost up to 0.80; resets ...
//
// When the request alone may cost more than the whole cap (AloneExceedsCap),
// no reset can help and the message says so instead, without the reset:
//
//	budget tenant-monthly can never cover this request for tenant=acme: the request alone may cost up to 1200.00 USD, more than the budget's whole cap of 1000.00 USD this month; lower max_tokens or send a smaller prompt
//
// Amounts have 2 decimals when the cap is at least 1 USD, else 6, so that
// small caps stay readable. The reset is RFC 3339 in the budget's time zone
// and is left out for total budgets.
func (r *Rejection) Message() string {
	decimals := 2
	if r.Hard < money.PerUSD {
		decimals = 6
	}
	if r.AloneExceedsCap() {
		return fmt.Sprintf("budget %s can never cover this request for %s: the request alone may cost up to %s USD, more than the budget's whole cap of %s USD %s; lower max_tokens or send a smaller prompt",
			r.Budget, r.Scope, r.Requested.Fixed(decimals), r.Hard.Fixed(decimals), r.PeriodWord)
	}
	used := money.Add(r.Spent, r.Reserved)
	var msg string
	if used >= r.Hard || r.Requested <= 0 {
		msg = fmt.Sprintf("budget %s exhausted for %s: spent %s of %s USD %s",
			r.Budget, r.Scope, used.Fixed(decimals), r.Hard.Fixed(decimals), r.PeriodWord)
	} else {
		msg = fmt.Sprintf("budget %s cannot cover this request for %s: spent %s of %s USD %s and the request may cost up to %s",
			r.Budget, r.Scope, used.Fixed(decimals), r.Hard.Fixed(decimals), r.PeriodWord, r.Requested.Fixed(decimals))
	}
	if !r.ResetsAt.IsZero() {
		msg += "; resets " + r.ResetsAt.Format(time.RFC3339)
	}
	return msg
}

// AloneExceedsCap reports whether the request's worst case (Requested)
// is more than the budget's whole cap: it is refused even on an empty
// counter, so retrying after the reset cannot help.
func (r *Rejection) AloneExceedsCap() bool { return r.Requested > r.Hard }

// RetryAfter returns the whole seconds from now until the reset, rounded
// up (0 if the reset has passed), for the retry-after header; ok is false
// for total budgets, which never reset, and for a request that alone
// exceeds the cap, which no reset lets through.
func (r *Rejection) RetryAfter(now time.Time) (seconds int, ok bool) {
	if r.ResetsAt.IsZero() || r.AloneExceedsCap() {
		return 0, false
	}
	d := r.ResetsAt.Sub(now)
	if d <= 0 {
		return 0, true
	}
	return int((d + time.Second - 1) / time.Second), true
}

func rejection(s Scope, c Counter, requested money.Nano, now time.Time) *Rejection {
	b := s.Budget
	_, resets := b.Window(now)
	return &Rejection{
		Budget:     b.name,
		Scope:      s.String(),
		Spent:      c.Committed,
		Reserved:   c.Reserved,
		Requested:  requested,
		Hard:       b.hard,
		PeriodWord: b.PeriodWord(),
		ResetsAt:   resets,
	}
}
