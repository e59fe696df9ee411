// Package budget decides which spend budgets apply to a request, holds a
// request's worst-case cost on all of them at once, and commits the actual
// cost afterwards.
//
// # Flow
//
// Compile turns the configuration's `budgets:` and `limits:` sections into
// an immutable *Policies (a reload compiles a new one and swaps the
// pointer). For each request the processor then calls
//
//   - at request headers: Policies.ApplicableKnown (only the budgets whose
//     match keys are all known before the body) and Engine.Exhausted;
//   - at the request body: Policies.Applicable with every dimension, then
//     Engine.Admit with the request's Claim (scopes, model, worst-case
//     amount, id, TTL): it reserves, refuses at a hard cap, or decides a
//     soft-cap downgrade, asks the caller's Downgrader for the claim of the
//     cheaper model and reserves that instead;
//   - at the end of the response: Engine.Settle with the actual cost (0 to
//     release).
//
// Each Engine call makes at most one Store call, except Admit past a soft
// cap (it releases what it reserved and reserves the cheaper model: three);
// Exhausted makes none when no scope could reject. Engine.Reserve is
// Admit's reservation without the soft caps.
//
// # Money
//
// Amounts are integer nano-USD (money.Nano) everywhere. Caps are parsed
// from the YAML scalar text with money.ParseUSD, so "0.3" is exactly
// 300_000_000 and "1e3" is an error rather than a float.
//
// # Configuration decisions
//
//   - Compile reports every problem at once (errors.Join of *ConfigError,
//     with the line of the offending key, or of the budget when the key is
//     missing). Keys are checked with internal/strictyaml: a misspelt
//     field gets a suggestion.
//   - A budget needs a period (hour, day, week, month, total) or a rolling
//     window, not both. It needs hard_usd or soft_usd; a soft-only budget
//     never blocks and only downgrades. soft_usd may equal but not exceed
//     hard_usd; caps may be 0 (hard_usd: 0 admits only allow_models) but
//     not negative. on_soft.downgrade needs soft_usd and
//     on_hard.allow_models needs hard_usd, or they could never act.
//   - alerts.thresholds are fractions of hard_usd (0.8, or "80%"), parsed
//     exactly from their text into millionths: above 0, at most 1, no two
//     equal, at most MaxThresholds, and a hard_usd above 0 to be fractions
//     of. They are sorted and kept on the Budget as one shared slice, which
//     travels unchanged with every budget state to the webhook exporter.
//   - Names are letters, digits, '.', '_' and '-': they travel in headers,
//     metrics labels and store keys.
//   - Match keys are any dimension, "model" included; a match value may not
//     be empty. Whether a key is a configured dimension is for the loader to
//     check against the identity section (Policies.Dimensions lists them).
//   - timezone defaults to UTC; "Local" is refused (it would depend on the
//     host). A rolling window ignores the time zone.
//
// # Periods and counter keys
//
// Calendar periods start at the local boundary in the budget's time zone,
// by wall-clock arithmetic: a day is 23 or 25 hours across a DST change, a
// week starts on Monday, and a day whose midnight a DST jump skips starts
// at the first instant that exists. Hour periods start at the local :00
// (correct wherever offsets change by whole hours, that is everywhere but
// Lord Howe Island). A counter key is the scope key plus the period start
// in Unix seconds, so a new period is a new key and nothing is ever reset.
// The scope key holds the budget name, the period kind and the sorted,
// escaped match values: changing a budget's period starts new counters,
// while changing its caps keeps the spend.
//
// A rolling window of length W is cut into epoch-aligned sub-buckets of
// W/10 (whole seconds, at least 1s). It counts the current bucket and
// ceil(W/bucket) earlier ones, so it never forgets spend younger than W but
// may remember spend up to one bucket older: it errs towards refusing.
// Spend lands in the bucket of its reservation. Its ResetsAt is the
// instant by which everything counted now has left the window.
//
// # Which budgets apply
//
// A budget applies when each of its match keys has a non-empty value equal
// to the match value or matched by "*"; a key the budget does not mention
// is one shared pool. The spec's precedence rule ("among budgets with the
// same set of match keys, an exact value replaces *") is applied among
// budgets with the same key set AND the same period kind: an exact
// acme-monthly replaces the tenant-monthly template for acme, but does not
// remove a tenant-hourly runaway guard. Within such a group a budget is
// dropped when another is at least as exact on every key and more exact on
// one; budgets more exact on different keys both apply. Scopes are
// returned, and every Engine decision is taken, in configuration order.
//
// # Caps
//
// A budget with a hard cap blocks a reservation when committed + reserved
// + amount would pass the cap, or when committed + reserved has already
// reached it (so a zero-cost request is refused by an exhausted budget, as
// at request headers), unless the model is in its allow_models; requests
// of allowed models still count. At request headers a budget with
// allow_models does not reject (the model is not known yet). A soft cap is
// passed when committed + reserved + amount exceeds it; the first scope
// whose on_soft.downgrade maps the model decides, and only one step is
// taken. Reservation.Remaining is the lowest hard cap minus committed and
// reserved (this request included) over the scopes with a hard cap,
// clamped at 0.
//
// # Reservations
//
// Reserve records the amount on all counters or on none, atomically, in
// one Store call. An unsettled reservation stops counting after
// limits.reservation_ttl (default 10m), so a crashed replica's holds
// expire. Settle carries the reservation's items, so the actual spend is
// committed even when the reservation has expired: spend is never lost.
// The Engine settles a Reservation at most once (ErrSettled), but allows a
// retry after a store error. A Reserve that fails with an unknown outcome
// (a timeout, a broken connection: the store may have applied it) is
// released by id in the background through the settle retrier, so a
// stall of a networked store leaves no reservation that nobody owns
// (release.go).
//
// Extend grows a reservation while its response streams, in one Store
// call: by the amount asked when every budget with a hard cap has that
// much room, else by the least room left (0: some budget is full, and the
// caller cuts the stream). The grant is held on every counter under the
// reservation's id, so Settle releases it with the rest; each Extend also
// renews the TTL, so a long stream does not lapse. Settle may race with
// Extend: it waits for an Extend in flight, so that it releases its grant
// too.
//
// # Rejections
//
// Rejection.Message has the exact form of the 402 answer. Its "spent" is
// committed + reserved, everything counted against the cap, so it explains
// the refusal even while other requests are in flight; Rejection keeps
// Spent, Reserved and Requested apart for logs and the admin API.
//
// # Stores
//
// Store is the consumer-side contract (see its doc): Reserve (all or
// nothing), Extend (as much as every budget has room for), Settle and
// Usage, each one atomic step; storetest.Run is its conformance suite and
// storetest.Bench and BenchExtend its benchmarks. Both stores live
// in packages of their own beside this one, as any other would: package
// memstore is exact for one replica and bounded in memory, and its
// snapshot file keeps it across restarts (a corrupt file is an error,
// never an empty store); package redisstore is the store shared by
// replicas, one Lua script per call. Item.Blocks is the cap rule a store
// in Go applies. StoreConfig is the `store:` section and package
// stores opens the store it names. docs/store.md documents both for
// operators: the Redis key layout, what a crash loses, store.on_error.
//
// # Listing scopes
//
// A "*" budget has one counter per value seen, which only the store
// knows. Engine.List (for the admin API) asks a Lister for the counter
// keys (memstore walks its map; redisstore pages with SCAN, never
// KEYS), maps each key back to its budget and scope with
// Policies.ParseCounterKey, keeps those of the current period whose
// budget still applies to their values, and reads them with Usage in
// batches. Budgets without a "*" key are always listed. Both bounds
// (keys read, scopes returned) are reported as Listing.Truncated.
package budget
