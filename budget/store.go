package budget

import (
	"context"
	"errors"
	"math"
	"time"

	"github.com/spendguard/spendguard/internal/money"
)

// Store keeps the spend counters and the in-flight reservations. Every
// method is one atomic step (for a networked store: one round trip), safe
// for concurrent use by many goroutines and many replicas sharing the
// store. The package storetest checks an implementation against this
// contract.
//
// A counter holds a committed amount (settled spend) and a reserved amount
// (the sum of the live reservations on it). A counter key already names
// its period, so a new period is a new key: the store never resets
// anything, and may drop a counter some time after its Item.Expires.
//
// A reservation is live from Reserve until it is settled or until its TTL
// has passed (now >= reserve time + ttl, or last Extend time + ttl, since
// Extend renews it): from then on it no longer counts
// in Reserved, so the reservations of a crashed replica stop blocking
// traffic by themselves.
//
// Amounts saturate: a committed or reserved amount that an addition would
// carry past 2^63-1 nano-USD stays at 2^63-1 (the spend is kept, and every
// enforced item on it blocks), a release never takes Reserved below 0, and
// Usage sums saturate the same way. A call the store refused (an invalid
// argument, a stored value it cannot read) has changed nothing; only a
// networked call whose answer was lost (a timeout) may have been applied.
//
// A Store must not keep the items slice it is given after the call
// returns (the strings in it are immutable and may be kept): callers reuse
// it.
type Store interface {
	// Reserve checks every item and, only if none blocks, records amount
	// as reserved under id on the Key of every item (all or nothing).
	// Item i blocks when it is enforced and used+amount > Limit (exactly,
	// not a saturated sum) or used >= Limit, where used is committed+reserved summed over its Key
	// and Window. Outcome.Blocked is the index of the first blocking item
	// (-1 when the amount was reserved) and Outcome.Counters the state of
	// every item: after the reservation when it succeeded, before it
	// otherwise. The Keys of items must be distinct; id must not name a
	// live reservation (ErrDuplicateReservation); amount must be >= 0 and
	// ttl > 0. An IdempotentSettler also refuses, with
	// ErrDuplicateReservation, an id it has settled within its window of
	// settled ids: a Reserve that reaches it after the engine released
	// the id (its caller gave up on it) must hold nothing. Other stores
	// may take a settled id again.
	Reserve(ctx context.Context, id string, amount money.Nano, items []Item, ttl time.Duration, now time.Time) (Outcome, error)

	// Settle ends reservation id: it removes its reservation (if still
	// live) and adds actual (>= 0; 0 releases) to the committed amount of
	// the Key of every item. The items are the ones given to Reserve: the
	// spend is committed even when the reservation has expired or is
	// unknown, so spend is never lost. Settle is not idempotent: settle
	// each reservation exactly once.
	Settle(ctx context.Context, id string, actual money.Nano, items []Item, now time.Time) error

	// Extend grows reservation id by up to want, on every item at once, and
	// sets its expiry to now+ttl (so a long response does not outlive it).
	// The room of item i is Limit-used (0 once used >= Limit) when it is
	// enforced, unbounded otherwise, used being committed+reserved summed
	// over its Key and Window as in Reserve; granted is the smaller of want
	// and the least room (0 <= granted <= want, exactly: no sum is
	// saturated). granted is added to the amount of id and to the reserved
	// amount of the Key of every item, so a later Settle releases the
	// reservation with its extensions. When id is not live (settled,
	// expired or unknown) it is created afresh holding granted alone: what
	// it held before no longer counts. An IdempotentSettler refuses
	// instead (an error wrapping ErrSettled, nothing granted) to extend
	// an id it has settled within its window of settled ids, so an Extend
	// that reaches it after the Settle holds nothing. Outcome.Counters is the state of
	// every item after the call and Outcome.Blocked the index of the first
	// item whose room is granted when that is below want (-1 when want was
	// granted in full). The items are the ones given to Reserve for id (a
	// store may refuse others with ErrInvalidArgument), with distinct Keys;
	// want must be >= 0 (0 only renews the expiry) and ttl > 0.
	Extend(ctx context.Context, id string, want money.Nano, items []Item, ttl time.Duration, now time.Time) (granted money.Nano, out Outcome, err error)

	// Usage returns, for every item, committed and reserved summed over its
	// Key and Window (zero for counters that do not exist).
	Usage(ctx context.Context, items []Item, now time.Time) ([]Counter, error)
}

// Item is one budget's counter in a store call.
type Item struct {
	// Key is the counter that amounts are recorded on: a Scope's Key plus
	// the period start.
	Key string
	// Window lists earlier counters whose amounts also count against
	// Limit: the older sub-buckets of a rolling window (nil otherwise).
	Window []string
	// Limit is the hard cap; it only blocks when Enforce is set.
	Limit money.Nano
	// Enforce is false for an item that is counted but never blocks: a
	// budget without hard cap, or one whose allow_models has the model.
	Enforce bool
	// Expires is the instant after which no window reads Key any more (the
	// period end); zero means never (total).
	Expires time.Time
}

// Counter is the state of one item.
type Counter struct {
	Committed money.Nano
	Reserved  money.Nano
}

// Used is committed plus reserved: what counts against a cap.
func (c Counter) Used() money.Nano { return money.Add(c.Committed, c.Reserved) }

// Outcome is the result of Store.Reserve and Store.Extend.
type Outcome struct {
	// Blocked is the index of the first item that blocked (for Extend:
	// that cut the grant below what was asked), or -1.
	Blocked int
	// Counters is the state of every item (see Store.Reserve and
	// Store.Extend).
	Counters []Counter
}

// OK reports whether the amount was reserved (for Extend: granted in
// full).
func (o Outcome) OK() bool { return o.Blocked < 0 }

// Blocks is the rule of Store.Reserve for one item whose Key and Window
// hold used (committed plus reserved) before the reservation: it reports
// whether reserving amount more is refused. It is exact for every amount:
// used+amount > Limit is tested as amount > Limit-used (used < Limit
// there, so the difference cannot overflow), since a saturating sum would
// let any amount through a cap of 2^63-1. A store written in Go (the
// memory store) calls it; the Redis store applies the same rule in Lua.
func (it Item) Blocks(used, amount money.Nano) bool {
	return it.Enforce && (used >= it.Limit || amount > it.Limit-used)
}

// Room is the rule of Store.Extend for one item whose Key and Window hold
// used (committed plus reserved): how much more it can take. It is
// Limit-used (exact: used < Limit there) for an enforced item, 0 once used
// has reached Limit, and the largest amount (2^63-1, no bound) for an item
// that is not enforced. Blocks(used, amount) is amount > Room(used), or
// any amount at all once an enforced item's used has reached Limit.
func (it Item) Room(used money.Nano) money.Nano {
	switch {
	case !it.Enforce:
		return math.MaxInt64
	case used >= it.Limit:
		return 0
	default:
		return it.Limit - max(used, 0) // a counter is never negative; guard anyway
	}
}

// Errors of Store calls.
var (
	// ErrDuplicateReservation: Reserve with the id of a live reservation.
	ErrDuplicateReservation = errors.New("budget: reservation id is already in use")
	// ErrInvalidArgument: a negative amount, a non-positive ttl, an empty
	// reservation id.
	ErrInvalidArgument = errors.New("budget: invalid store argument")
	// ErrStoreLost: the store lost its data (a Redis restarted without
	// persistence, a FLUSHALL, a failover to a replica that had not
	// caught up) and has not been re-established since. Calls fail with
	// it so that store.on_error decides between 503 and serving unmetered.
	ErrStoreLost = errors.New("budget: the store lost its data")
)
