package lease

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// Backend is the shared record of counters and leases that every replica
// syncs with (Redis, budget/redisstore). Each call touches one counter:
// the keys of one scope (its Key and the Window buckets of a rolling
// budget), never two scopes, so a Redis Cluster serves it from one slot.
//
// A counter holds, shared by all replicas:
//
//	committed  settled spend
//	leased     the sum of the live leases of all holders
//	reserved   the sum of the reservations that holders last reported
//	           (a view for people: the leases cover them)
//
// A holder (one spendguard process) holds at most one lease per counter,
// with an expiry. A lease that expires is forfeited: its whole amount is
// added to committed (the holder may have spent all of it), remembered as
// the holder's forfeit, and credited back against the first spend the
// holder commits after that (a holder cut off from the backend for longer
// than its lease does not count twice). A holder that never comes back
// (a crashed process) keeps its forfeit counted as spent until a
// ForfeitSettler refunds what the ledger shows it did not spend; for
// that the backend keeps, beside the forfeit, the holder's Synced (all
// it committed there) and the reservations of its last Sync.
type Backend interface {
	// Sync applies one holder's change to one counter and sets its lease
	// there, atomically (see SyncRequest and SyncReply for the rules).
	Sync(ctx context.Context, r SyncRequest) (SyncReply, error)
}

// SyncRequest is one Backend.Sync call.
//
// The backend applies it only if Seq is above the last Seq it applied
// for Holder on Item.Key; otherwise (a retried call whose first try was
// applied, or a late duplicate) it applies nothing and answers with the
// state as it is, which makes a retry after a timeout safe.
//
// Applying it:
//  1. forfeits the expired leases of other holders on Item.Key and its
//     Window buckets (a bucket whose leased amount is 0 has none);
//  2. adds Commit to committed on Item.Key, less what is credited
//     against the holder's forfeit there (credit = min(Commit, forfeit)),
//     and Commit to the holder's Synced there;
//  3. computes room = Item.Limit - (committed + leased by other holders +
//     reserved outside leases) summed over Item.Key and Item.Window, or
//     no bound when Item.Enforce is false, and 0 when that is negative;
//  4. sets the holder's lease to Need + ask + extra, where ask =
//     min(Ask, max(room-Need, 0)), and extra = Extra when Extra <=
//     max(room-Need-ask, 0) / (2*H) (integer division), H being the
//     number of live holders on Item.Key this holder included, and 0
//     otherwise: far from the cap a holder gets the headroom it asks
//     for, and no holder takes more than half of what is left; near the
//     cap a lease is exactly what the holder must have plus what it asks
//     for, so no headroom is stranded at a replica that does not use it
//     while another needs it. All exact in nano-USD (no saturation: the
//     lease is never above room+Need, and a holder's Need is covered by
//     its previous lease);
//  5. sets the holder's reported reservations to Reserved, and its lease
//     expiry to Now+TTL; a lease of 0 with Reserved 0 removes the holder
//     from the counter's holders (its last Seq, Synced and forfeit stay).
//
// A forfeit (step 1) keeps the holder's last reported reservations beside
// its forfeit, for SettleForfeit, as long as the forfeit is not 0; the
// holder's next applied Sync drops them (its Reserved is current again).
type SyncRequest struct {
	Holder string // unique per process (never reused)
	Seq    uint64 // strictly increasing per Holder over all its calls
	Item   budget.Item
	// Commit is spend settled by the holder since its last applied Sync
	// on Item.Key, added to committed once.
	Commit money.Nano
	// Reserved is what the holder's live reservations on Item.Key hold
	// now (reported, not enforced: the lease covers it).
	Reserved money.Nano
	// Need is granted whatever the room: what the holder has already
	// admitted and not yet committed (its reservations).
	Need money.Nano
	// Ask is what the holder wants beyond Need for a request it is
	// admitting (granted in part when the room is short), and Extra the
	// headroom it would like beyond that for requests to come.
	Ask, Extra money.Nano
	TTL        time.Duration
	Now        time.Time
}

// SyncReply is the state after a Sync (applied or not).
type SyncReply struct {
	// Applied is false when Seq was not above the last one applied.
	Applied bool
	// Lease is the holder's lease on Item.Key now.
	Lease money.Nano
	// Committed, Leased and Reserved are the counter's totals over
	// Item.Key and Item.Window (Leased includes this holder's lease;
	// Reserved is the sum of the reported reservations).
	Committed, Leased, Reserved money.Nano
	// Holders is the number of live holders on Item.Key, this one
	// included when it holds a lease.
	Holders int
	// Forfeited is what of this holder's lease on Item.Key was forfeited
	// (expired before this call) and not yet credited back.
	Forfeited money.Nano
}

// ErrInvalid is returned by a Backend for a request that breaks the
// rules above (negative amounts, Ask or Extra below 0, TTL <= 0, an empty
// Holder or Key, Seq 0), and by a ForfeitSettler for a SettleForfeit
// request that breaks its rules; the backend then changed nothing.
var ErrInvalid = errors.New("lease: invalid request")

// Validate checks r against the rules every Backend enforces.
func (r *SyncRequest) Validate() error {
	if r.Holder == "" || r.Item.Key == "" || r.Seq == 0 || r.Commit < 0 || r.Reserved < 0 ||
		r.Need < 0 || r.Ask < 0 || r.Extra < 0 || r.TTL <= 0 || r.Item.Limit < 0 {
		return ErrInvalid
	}
	return nil
}

// ForfeitSettler is implemented by a Backend that can reconcile a dead
// holder's forfeit with what it really spent (the Model and
// budget/redisstore). It is kept out of Backend: only the loop that
// reconciles with the ledger needs it.
type ForfeitSettler interface {
	// SettleForfeit refunds the part of Holder's forfeit on Item.Key that
	// the ledger shows it did not spend (see SettleForfeitRequest).
	SettleForfeit(ctx context.Context, r SettleForfeitRequest) (SettleForfeitReply, error)
}

// SettleForfeitRequest is one ForfeitSettler.SettleForfeit call: Holder
// is dead (its process is gone and its holder id is never used again),
// and Spent is what the ledger says it settled in total on Item.Key's
// period, every one of its rows there shipped.
//
// Only Item.Key is read; its Window, Limit and Enforce are ignored. Each
// bucket of a rolling window is a counter of its own, with the forfeits
// taken there: settle a bucket's by passing the bucket as Item.Key with
// the Spent the ledger has for that bucket. (Forfeits on a bucket nobody
// settles end with the window, when the bucket's keys expire.)
//
// The backend keeps, per holder and counter, Synced (the sum of the
// Commit amounts of its applied Syncs there, before any credit against
// its forfeit) and the Reserved of its last applied Sync. A holder's
// share of committed is Synced + forfeit until its forfeit is settled
// (barring saturation at 2^63-1). Atomically on
// Item.Key, SettleForfeit:
//  1. refuses with ErrHolderLive, changing nothing, when Holder holds a
//     lease (or reported reservations) there that has not expired at Now;
//     forfeits it, as a Sync's step 1 would, when it has expired;
//  2. takes f, the holder's forfeit not yet credited back; when f is 0
//     (nothing was forfeited, it was credited back by the holder's own
//     commits, or a previous call settled it) it applies nothing else;
//  3. otherwise keeps keep = max(Spent - Synced, 0) + reserved, where
//     reserved is what the holder reported at its last Sync: the spend it
//     settled and never sent, and the reservations it had in flight then
//     (nobody knows what they cost, so they stay charged in full);
//  4. refunds refund = max(f - keep, 0) (never more than f): committed
//     -= refund, stopping at 0 (committed holds the holder's Synced + f
//     unless it saturated at 2^63-1 or was changed by hand);
//  5. removes the holder's forfeit, Synced and last reservations there,
//     so a second call applies nothing.
//
// The holder's share of committed is then max(Spent, Synced) + reserved,
// or Synced + f when that is less: above the truth by at most the
// reservations it had in flight, never below what it reported (a ledger
// that misses rows refunds less, never more). Exact in nano-USD.
type SettleForfeitRequest struct {
	Item   budget.Item
	Holder string
	// Spent is the holder's settled spend on Item.Key's period according
	// to the ledger (0 or more).
	Spent money.Nano
	Now   time.Time
}

// SettleForfeitReply is what a SettleForfeit did.
type SettleForfeitReply struct {
	// Refund is what was taken off committed (0 when not applied).
	Refund money.Nano
	// Forfeit is the holder's forfeit that was settled, f (0 when not
	// applied).
	Forfeit money.Nano
	// Applied is false when there was no forfeit to settle.
	Applied bool
}

// ErrHolderLive is returned by SettleForfeit for a holder that still
// holds a live lease on the counter: it is not dead, or its lease has
// not expired yet. Settle it after the lease TTL has passed.
var ErrHolderLive = errors.New("lease: the holder still holds a live lease on the counter; settle its forfeit once the lease has expired")

// Validate checks r: a Holder and an Item.Key, and Spent 0 or more.
func (r *SettleForfeitRequest) Validate() error {
	if r.Holder == "" || r.Item.Key == "" || r.Spent < 0 {
		return fmt.Errorf("%w: settle forfeit needs a holder, a key and a spend of 0 or more", ErrInvalid)
	}
	return nil
}
