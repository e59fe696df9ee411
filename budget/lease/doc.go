// Package lease admits requests against budget leases: a budget.Store
// that keeps, for every counter it uses, a slice of the counter's
// remaining budget borrowed from a shared Backend (Redis), and decides
// Reserve, Extend and Settle locally, in memory and exactly, against
// that slice.
//
// # Why
//
// A store shared by many replicas would otherwise cost a round trip per
// decision (reserve, settle, the headers check): at a few milliseconds to
// Redis that is most of a request's overhead, and one shard of a Redis
// Cluster would see every request of a fleet-wide budget. With leases, a
// replica talks to the backend once per counter per sync interval while
// it is far from the cap, whatever its request rate.
//
// # Exactness
//
// The backend grants a lease only out of a counter's room (its hard cap
// minus committed spend, the other holders' leases and reservations kept
// outside leases), atomically, so at every moment committed + leased +
// reserved <= hard cap across all replicas. A replica admits a request
// only when every enforced counter of the request has, in its lease, room
// for the request's amount beyond what the replica already holds there
// (its reservations, the spend it settled and has not sent yet, and that
// spend on the older buckets of a rolling window). When the lease is
// short it syncs that counter at once, asking for the request's amount:
// near the cap every request costs that one round trip, and the backend
// grants no headroom beyond the ask once the headroom asked for is more
// than a share of what is left (Backend): near the cap a lease is exactly
// what the replica holds plus the request it admits. A request is
// refused only when the backend could not grant its amount.
//
// A refusal may be early by the headroom other replicas took while the
// budget was far from its cap and have not used yet: it is given back at
// their next sync (an idle replica's within two sync intervals).
//
// # Settled spend
//
// Settle never waits for the backend: the spend is added to the counter
// locally and sent with the counter's next sync, at the latest one sync
// interval later (Options.SyncInterval), and at Close. A replica that
// crashes loses nothing the backend has not already counted: its leases
// expire after Options.LeaseTTL and the backend then counts them in full
// as spent (more than the truth by at most the unused part of the lease;
// see Backend), until a ForfeitSettler reconciles each forfeit with the
// spend the ledger recorded for the dead holder: it then stays above the
// truth by at most the reservations the holder had in flight at its last
// sync.
//
// # Failures
//
// A sync whose outcome is unknown (a timeout) is sent again with the same
// sequence number before anything else on that counter, so it applies
// once. While the backend cannot be reached, a replica keeps admitting
// within its leases until they expire locally (the time they were asked
// for plus the lease TTL), then fails the calls that need a sync, which
// store.on_error turns into 503s or unmetered requests. Forget drops every
// lease, for a backend that lost its data.
package lease
