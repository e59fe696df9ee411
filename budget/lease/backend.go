package lease

import (
	"context"
	"errors"
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
// than its lease does not count twice). Forfeits are never refunded
// otherwise.
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
//     against the holder's forfeit there (credit = min(Commit, forfeit));
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
//     from the counter altogether.
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
// Holder or Key, Seq 0); the backend then changed nothing.
var ErrInvalid = errors.New("lease: invalid sync request")

// Validate checks r against the rules every Backend enforces.
func (r *SyncRequest) Validate() error {
	if r.Holder == "" || r.Item.Key == "" || r.Seq == 0 || r.Commit < 0 || r.Reserved < 0 ||
		r.Need < 0 || r.Ask < 0 || r.Extra < 0 || r.TTL <= 0 || r.Item.Limit < 0 {
		return ErrInvalid
	}
	return nil
}
