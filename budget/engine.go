package budget

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
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
	// mu orders Extend's store call before Settle's (see Engine.Extend).
	mu sync.Mutex
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

// Claim is what one request asks of its budgets once its body is read:
// Amount (its worst case) held on every scope of Scopes for Model, under
// ID, for TTL.
type Claim struct {
	// ID must be unique among live reservations.
	ID     string
	Scopes []Scope
	Model  string
	Amount money.Nano
	// TTL is how long the reservation counts unless settled
	// (limits.reservation_ttl); DefaultReservationTTL when 0.
	TTL time.Duration
}

// Downgrader prices a request for the cheaper model a soft cap names,
// which only its caller can do (the model's price, the scopes that apply
// to it).
type Downgrader interface {
	// Downgrade returns the claim of the same request served with target
	// instead; false keeps the requested model.
	Downgrade(target string) (Claim, bool)
}

// mayReject reports whether b can reject model at the request headers: it
// has a hard cap that does not allow model, and, while the model is
// unknown (""), no allow list either.
func mayReject(b *Budget, model string) bool {
	return b.hasHard && !b.Allows(model) && (model != "" || len(b.allow) == 0)
}

// Reserve holds amount (the request's worst case) on every scope at once,
// or on none, in one Store call under id (which must be unique among live
// reservations). A scope blocks when its budget has a hard cap, does not
// allow model, and committed+reserved+amount would pass the cap (or has
// reached it); the Rejection names the first such scope. The reservation
// expires after p.ReservationTTL() unless settled. Reserve decides no
// soft cap: Admit does.
func (e *Engine) Reserve(ctx context.Context, p *Policies, scopes []Scope, model string, amount money.Nano, id string) (*Reservation, *Rejection, error) {
	res, rej, _, err := e.reserve(ctx, Claim{ID: id, Scopes: scopes, Model: model, Amount: amount, TTL: p.ReservationTTL()})
	return res, rej, err
}

// Admission is the outcome of Admit: a reservation or a refusal, for the
// requested model or, after a soft-cap downgrade, for the cheaper one.
type Admission struct {
	// Exactly one of Reservation and Rejection is set when Admit
	// returns no error.
	Reservation *Reservation
	Rejection   *Rejection
	// Downgrade is the model served instead, decided by the soft cap of
	// DowngradeBudget; "" when the requested model is served. It is set
	// with an error too when the store failed on the downgraded claim.
	Downgrade, DowngradeBudget string
}

// Admit is the request-body decision on claim c, in one Store call when
// no soft cap is passed. It reserves c as Reserve does and, on the
// counters that call read (before c's amount), looks for a soft cap that
// c passes (committed+reserved+amount above soft_usd) in a budget whose
// on_soft.downgrade maps c.Model: the first such scope in configuration
// order decides, and only one step is taken. Without one, the outcome is
// the reservation or the hard cap's refusal.
//
// With one, d.Downgrade(target) prices the request for the cheaper model.
// If it declines (or d is nil) the first outcome stands. Otherwise what
// was reserved is released and the downgraded claim reserved, so a
// request past a soft cap costs three store calls; Admission.Downgrade
// names the target, whatever the hard caps decide for it.
func (e *Engine) Admit(ctx context.Context, c Claim, d Downgrader) (Admission, error) {
	res, rej, before, err := e.reserve(ctx, c)
	if err != nil {
		return Admission{}, err
	}
	target, by := softDowngrade(c, before)
	if target == "" || d == nil {
		return Admission{Reservation: res, Rejection: rej}, nil
	}
	alt, ok := d.Downgrade(target)
	if !ok {
		return Admission{Reservation: res, Rejection: rej}, nil
	}
	if res != nil {
		if err := e.Settle(ctx, res, 0); err != nil {
			return Admission{}, fmt.Errorf("budget admit: releasing for a downgrade: %w", err)
		}
	}
	adm := Admission{Downgrade: target, DowngradeBudget: by}
	adm.Reservation, adm.Rejection, _, err = e.reserve(ctx, alt)
	return adm, err
}

// softDowngrade is the model a soft cap asks to serve instead of c.Model,
// and the budget whose cap it is, given the scopes' counters before c:
// "" when c passes no soft cap that maps its model.
func softDowngrade(c Claim, before []Counter) (target, budget string) {
	for i, s := range c.Scopes[:len(before)] {
		b := s.Budget
		to, ok := b.downgrade[c.Model]
		if !ok || !b.hasSoft || to == c.Model || money.Add(before[i].Used(), c.Amount) <= b.soft {
			continue
		}
		return to, b.name
	}
	return "", ""
}

// reserve reserves claim c, also returning the counters of its scopes
// as they were before the reservation.
func (e *Engine) reserve(ctx context.Context, c Claim) (*Reservation, *Rejection, []Counter, error) {
	scopes, amount := c.Scopes, c.Amount
	if amount < 0 {
		return nil, nil, nil, fmt.Errorf("budget reserve: negative amount %v", amount)
	}
	now := e.now()
	res := newReservation(len(scopes))
	res.ID, res.Amount, res.Scopes = c.ID, amount, scopes
	if len(scopes) == 0 {
		return res, nil, nil, nil
	}
	ttl := c.TTL
	if ttl <= 0 {
		ttl = DefaultReservationTTL
	}
	res.Items = e.keys.appendItems(res.Items, scopes, c.Model, now)
	out, err := e.store.Reserve(ctx, c.ID, amount, res.Items, ttl, now)
	if err != nil {
		if e.releaseUnknown(c.ID, res.Items, now, err) {
			return nil, nil, nil, fmt.Errorf("budget reserve (releasing in the background): %w", err)
		}
		return nil, nil, nil, fmt.Errorf("budget reserve: %w", err)
	}
	if !out.OK() {
		rej := rejection(scopes[out.Blocked], out.Counters[out.Blocked], amount, now)
		lowerable(rej, scopes, res.Items, out.Counters, amount)
		return nil, rej, out.Counters, nil
	}
	res.setRemaining(out.Counters)
	for i, c := range out.Counters {
		out.Counters[i].Reserved = max(c.Reserved-amount, 0) // as before this reservation
	}
	return res, nil, out.Counters, nil
}

// setRemaining sets Remaining, RemainingBudget and HasRemaining from the
// counters of res's scopes (counters[i] that of Scopes[i]) as they are
// with res reserved.
func (res *Reservation) setRemaining(counters []Counter) {
	res.Remaining, res.RemainingBudget, res.HasRemaining = 0, "", false
	for i, c := range counters {
		b := res.Scopes[i].Budget
		if !b.hasHard {
			continue
		}
		rem := max(b.hard-c.Used(), 0)
		if !res.HasRemaining || rem < res.Remaining {
			res.Remaining, res.RemainingBudget, res.HasRemaining = rem, b.name, true
		}
	}
}

// lowerable sets rej.Lowerable and rej.Room for a claim of amount on
// items (of scopes) that the store refused with counters (as they were
// before the claim): lowerable when every enforced item that blocks
// amount belongs to a budget with on_hard.lower_output_limit, and the
// room the least of Limit minus used over the enforced items.
func lowerable(rej *Rejection, scopes []Scope, items []Item, counters []Counter, amount money.Nano) {
	room, ok := money.Nano(-1), true
	for i, it := range items {
		if !it.Enforce {
			continue
		}
		used := counters[i].Used()
		if it.Blocks(used, amount) && !scopes[i].Budget.lower {
			ok = false
			break
		}
		r := money.Nano(0)
		if used < it.Limit {
			r = it.Limit - used
		}
		if room < 0 || r < room {
			room = r
		}
	}
	if ok && room >= 0 {
		rej.Lowerable, rej.Room = true, room
	}
}

// Settle commits actual (>= 0; 0 releases, as for an upstream error) on
// every counter of res and ends the reservation, in one Store call. A
// negative actual is refused (ErrInvalidArgument) without a store call,
// and res stays to be settled. The
// spend is committed even if the reservation has expired meanwhile. A
// second Settle of the same reservation returns ErrSettled; after a store
// error Settle may be tried again (a networked store may then count twice
// if the failed call had in fact been applied). Settle may run while
// another goroutine extends res: it waits for that Extend's store call,
// and releases what it granted too.
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
	// An Extend whose store call is under way finishes first, so that
	// this Settle releases its grant too; a later one sees res settled.
	res.mu.Lock()
	defer res.mu.Unlock()
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
