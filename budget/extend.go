package budget

import (
	"context"
	"fmt"
	"time"

	"github.com/spendguard/spendguard/internal/money"
)

// Extend grows res by up to want on all its budgets at once, in one Store
// call (Store.Extend), and renews its expiry to ttl from now
// (DefaultReservationTTL when ttl <= 0). It returns what was granted,
// between 0 and want: want when every budget with a hard cap that does
// not allow the model has that much room, else the least room left, so 0
// means some budget is full. granted is added to res.Amount, and
// Remaining, RemainingBudget and HasRemaining are read again from the
// store's counters (this reservation included), as Reserve sets them; a
// Reservation without Scopes (rebuilt from its Items alone) keeps its
// own. A reservation whose TTL had passed is held again, for granted
// alone (res.Amount still counts what it held before). A reservation without budgets grants want in full with no store
// call.
//
// A negative want is refused (ErrInvalidArgument) and a settled res
// returns ErrSettled, both without a store call. After a store error
// nothing was granted (a networked store may still have applied the
// call: the Settle of res releases that too).
//
// Call Extend from one goroutine at a time for a given res; Amount and
// the Remaining fields are written by Extend, so read them in that
// goroutine too. Settle may run concurrently from another goroutine: an
// Extend whose store call has begun completes before Settle's store call,
// which then releases its grant, and an Extend that starts after Settle
// returns ErrSettled (or proceeds, if that Settle failed and res is to be
// settled again).
func (e *Engine) Extend(ctx context.Context, res *Reservation, want money.Nano, ttl time.Duration) (money.Nano, error) {
	if res == nil {
		return 0, fmt.Errorf("budget extend: %w: no reservation", ErrInvalidArgument)
	}
	if want < 0 {
		return 0, fmt.Errorf("budget extend: %w: negative amount %v", ErrInvalidArgument, want)
	}
	res.mu.Lock()
	defer res.mu.Unlock()
	if res.settled.Load() {
		return 0, ErrSettled
	}
	if len(res.Items) == 0 {
		res.Amount = money.Add(res.Amount, want)
		return want, nil
	}
	if ttl <= 0 {
		ttl = DefaultReservationTTL
	}
	granted, out, err := e.store.Extend(ctx, res.ID, want, res.Items, ttl, e.now())
	if err == nil && (granted < 0 || granted > want || len(out.Counters) != len(res.Items)) {
		err = fmt.Errorf("store granted %v of %v with %d counters for %d budgets", granted, want, len(out.Counters), len(res.Items))
	}
	if err != nil {
		return 0, fmt.Errorf("budget extend: %w", err)
	}
	res.Amount = money.Add(res.Amount, granted)
	if len(res.Scopes) == len(res.Items) {
		res.setRemaining(out.Counters)
	}
	return granted, nil
}
