package budget

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/spendguard/spendguard/internal/money"
)

// Engine applies budgets to requests on top of a Store. It holds no
// configuration: the scopes (from Policies.Applicable) carry their
// budgets, so a reloaded Policies takes effect with the next request. An
// Engine is safe for concurrent use.
type Engine struct {
	store Store
	now   func() time.Time
	keys  *keyCache
	retry *retrier // nil unless RetrySettles
}

// NewEngine returns an Engine on store that reads the time from now
// (time.Now when nil).
func NewEngine(store Store, now func() time.Time) *Engine {
	if now == nil {
		now = time.Now
	}
	return &Engine{store: store, now: now, keys: newKeyCache()}
}

// ErrSettled is returned by Settle for a reservation settled before.
var ErrSettled = errors.New("budget: reservation already settled")

// Reservation is the worst-case amount held on every applicable budget of
// one request, until Settle.
type Reservation struct {
	ID     string
	Amount money.Nano
	Scopes []Scope
	Items  []Item // Items[i] is the counter of Scopes[i]
	// Remaining is the lowest hard cap minus committed and reserved
	// (this reservation included) over the scopes with a hard cap, at
	// least 0, and RemainingBudget names that budget. HasRemaining is false
	// when no scope has a hard cap.
	Remaining       money.Nano
	RemainingBudget string
	HasRemaining    bool

	settled atomic.Bool
}

// inlineItems is how many items a Reservation holds without a second
// allocation: more than most requests have budgets.
const inlineItems = 4

// newReservation returns a Reservation whose Items (empty) have room for n
// items, in one allocation when n is small.
func newReservation(n int) *Reservation {
	if n == 0 {
		return &Reservation{}
	}
	if n > inlineItems {
		return &Reservation{Items: make([]Item, 0, n)}
	}
	r := &struct {
		res   Reservation
		items [inlineItems]Item
	}{}
	r.res.Items = r.items[:0:n]
	return &r.res
}

// Exhausted is the request-headers check: it returns a Rejection for the
// first scope whose committed+reserved has reached its hard cap, unless
// the budget still serves the model. model may be "" (not known yet): a
// budget with on_hard.allow_models then does not reject here, since the
// body may ask for an allowed model. It makes at most one Usage call, and
// none when no scope has a hard cap that could reject.
func (e *Engine) Exhausted(ctx context.Context, scopes []Scope, model string) (*Rejection, error) {
	now := e.now()
	cand := scopes // usually every scope may reject
	for i, s := range scopes {
		if !mayReject(s.Budget, model) {
			// Built here, not in a helper: this slice does not escape, so
			// the compiler keeps a small one on the stack.
			cand = slices.Clip(scopes[:i])
			for _, s := range scopes[i+1:] {
				if mayReject(s.Budget, model) {
					cand = append(cand, s)
				}
			}
			break
		}
	}
	if len(cand) == 0 {
		return nil, nil
	}
	counters, err := e.usage(ctx, cand, model, now)
	if err != nil {
		return nil, fmt.Errorf("budget usage: %w", err)
	}
	for i, c := range counters {
		if c.Used() >= cand[i].Budget.hard {
			return rejection(cand[i], c, 0, now), nil
		}
	}
	return nil, nil
}

// mayReject reports whether b can reject model at the request headers: it
// has a hard cap that does not allow model, and, while the model is
// unknown (""), no allow list either.
func mayReject(b *Budget, model string) bool {
	return b.hasHard && !b.Allows(model) && (model != "" || len(b.allow) == 0)
}

// SoftDowngrade returns the model to serve instead of model, and the
// budget that decided it, when committed+reserved+amount passes the soft
// cap of an applicable budget whose on_soft.downgrade maps model; the
// first such budget in scope (configuration) order wins and only one step
// is taken (the target is not looked up again). It returns "" when
// nothing applies, without calling the store when no scope maps model.
func (e *Engine) SoftDowngrade(ctx context.Context, scopes []Scope, model string, amount money.Nano) (target, budget string, err error) {
	now := e.now()
	var cand []Scope
	for _, s := range scopes {
		if _, ok := s.Budget.downgrade[model]; ok && s.Budget.hasSoft {
			cand = append(cand, s)
		}
	}
	if len(cand) == 0 {
		return "", "", nil
	}
	counters, err := e.store.Usage(ctx, e.keys.items(cand, model, now), now)
	if err != nil {
		return "", "", fmt.Errorf("budget usage: %w", err)
	}
	for i, c := range counters {
		b := cand[i].Budget
		if money.Add(c.Used(), amount) > b.soft {
			return b.downgrade[model], b.name, nil
		}
	}
	return "", "", nil
}

// Reserve holds amount (the request's worst case) on every scope at once,
// or on none, in one Store call under id (which must be unique among live
// reservations). A scope blocks when its budget has a hard cap, does not
// allow model, and committed+reserved+amount would pass the cap (or has
// reached it); the Rejection names the first such scope. The reservation
// expires after p.ReservationTTL() unless settled.
func (e *Engine) Reserve(ctx context.Context, p *Policies, scopes []Scope, model string, amount money.Nano, id string) (*Reservation, *Rejection, error) {
	res, rej, _, err := e.reserve(ctx, p, scopes, model, amount, id)
	return res, rej, err
}

// Admission is the outcome of Admit: a reservation, a refusal, or a
// soft-cap downgrade.
type Admission struct {
	Reservation *Reservation
	Rejection   *Rejection
	// Downgrade is the model to serve instead, decided by the soft cap of
	// DowngradeBudget; nothing is held then.
	Downgrade, DowngradeBudget string
}

// Admit is SoftDowngrade and Reserve in one Store call: it reserves amount
// for model as Reserve does and decides the soft-cap downgrade as
// SoftDowngrade does, on the counters that call read (before this
// request's amount). Without a downgrade, the outcome is Reserve's. With
// one, a reservation made is released again (a second Store call, only
// then) and Admit returns the target: the caller prices the request for
// it and calls Reserve. So a request below every soft cap costs one round
// trip to a networked store.
func (e *Engine) Admit(ctx context.Context, p *Policies, scopes []Scope, model string, amount money.Nano, id string) (Admission, error) {
	res, rej, before, err := e.reserve(ctx, p, scopes, model, amount, id)
	if err != nil {
		return Admission{}, err
	}
	for i, s := range scopes {
		b := s.Budget
		target, ok := b.downgrade[model]
		if !ok || !b.hasSoft || target == model || money.Add(before[i].Used(), amount) <= b.soft {
			continue
		}
		if res != nil {
			if err := e.Settle(ctx, res, 0); err != nil {
				return Admission{}, fmt.Errorf("budget admit: releasing for a downgrade: %w", err)
			}
		}
		return Admission{Downgrade: target, DowngradeBudget: b.name}, nil
	}
	return Admission{Reservation: res, Rejection: rej}, nil
}

// reserve is Reserve, also returning the counters of the scopes as they
// were before the reservation.
func (e *Engine) reserve(ctx context.Context, p *Policies, scopes []Scope, model string, amount money.Nano, id string) (*Reservation, *Rejection, []Counter, error) {
	if amount < 0 {
		return nil, nil, nil, fmt.Errorf("budget reserve: negative amount %v", amount)
	}
	now := e.now()
	res := newReservation(len(scopes))
	res.ID, res.Amount, res.Scopes = id, amount, scopes
	if len(scopes) == 0 {
		return res, nil, nil, nil
	}
	ttl := DefaultReservationTTL
	if p != nil {
		ttl = p.ttl
	}
	res.Items = e.keys.appendItems(res.Items, scopes, model, now)
	out, err := e.store.Reserve(ctx, id, amount, res.Items, ttl, now)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("budget reserve: %w", err)
	}
	if !out.OK() {
		rej := rejection(scopes[out.Blocked], out.Counters[out.Blocked], amount, now)
		return nil, rej, out.Counters, nil
	}
	for i, c := range out.Counters {
		b := scopes[i].Budget
		out.Counters[i].Reserved = max(c.Reserved-amount, 0) // as before this reservation
		if !b.hasHard {
			continue
		}
		rem := max(b.hard-c.Used(), 0)
		if !res.HasRemaining || rem < res.Remaining {
			res.Remaining, res.RemainingBudget, res.HasRemaining = rem, b.name, true
		}
	}
	return res, nil, out.Counters, nil
}

// Settle commits actual (>= 0; 0 releases, as for an upstream error) on
// every counter of res and ends the reservation, in one Store call. A
// negative actual is refused (ErrInvalidArgument) without a store call,
// and res stays to be settled. The
// spend is committed even if the reservation has expired meanwhile. A
// second Settle of the same reservation returns ErrSettled; after a store
// error Settle may be tried again (a networked store may then count twice
// if the failed call had in fact been applied).
func (e *Engine) Settle(ctx context.Context, res *Reservation, actual money.Nano) error {
	if res == nil {
		return nil
	}
	if actual < 0 { // a response never lowers spend; res may still be settled
		return fmt.Errorf("budget settle: %w: negative actual %v", ErrInvalidArgument, actual)
	}
	if !res.settled.CompareAndSwap(false, true) {
		return ErrSettled
	}
	if len(res.Items) == 0 {
		return nil
	}
	now := e.now()
	if err := e.store.Settle(ctx, res.ID, actual, res.Items, now); err != nil {
		if e.retry != nil && e.retry.later(res.ID, actual, res.Items, now, err) {
			return fmt.Errorf("budget settle (retrying in the background): %w", err)
		}
		res.settled.Store(false)
		return fmt.Errorf("budget settle: %w", err)
	}
	return nil
}

// itemsFor returns the store items of scopes at now, in scope order.
func itemsFor(scopes []Scope, model string, now time.Time) []Item {
	items := make([]Item, len(scopes))
	for i, s := range scopes {
		items[i] = itemFor(s, model, now)
	}
	return items
}

func itemFor(s Scope, model string, now time.Time) Item {
	b := s.Budget
	it := Item{Limit: b.hard, Enforce: b.hasHard && !b.Allows(model)}
	switch b.period {
	case PeriodTotal:
		it.Key = s.Key + "@total"
	case PeriodRolling:
		it.Key, it.Window = rollingKeys(s.Key, b, now)
		_, it.Expires = b.Window(now) // when the current bucket leaves the window
	default:
		start, end := b.Window(now)
		it.Key = counterKey(s.Key, start)
		it.Expires = end
	}
	return it
}

// counterKey is a scope key plus the Unix second its period starts at.
func counterKey(scopeKey string, start time.Time) string {
	var sb strings.Builder
	sb.Grow(len(scopeKey) + 21)
	writeKey(&sb, scopeKey, start.Unix())
	return sb.String()
}

// rollingKeys returns the counter key of the current sub-bucket and those
// of the earlier buckets in the window, all cut from one allocation.
func rollingKeys(scopeKey string, b *Budget, now time.Time) (string, []string) {
	back := int(b.rolling.bucketsBack())
	step := int64(b.rolling.bucket / time.Second)
	cur := b.bucketStart(now).Unix()
	var sb strings.Builder
	sb.Grow((back + 1) * (len(scopeKey) + 21))
	ends := make([]int, back+1)
	for k := range ends {
		writeKey(&sb, scopeKey, cur-int64(k)*step)
		ends[k] = sb.Len()
	}
	all := sb.String()
	window := make([]string, back)
	for k := range window {
		window[k] = all[ends[k]:ends[k+1]]
	}
	return all[:ends[0]], window
}

func writeKey(sb *strings.Builder, scopeKey string, unix int64) {
	var num [20]byte
	sb.WriteString(scopeKey)
	sb.WriteByte('@')
	sb.Write(strconv.AppendInt(num[:0], unix, 10))
}
