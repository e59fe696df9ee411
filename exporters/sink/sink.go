// Package sink is the vocabulary of reporting: the Event the processor
// emits once per request and that every exporter and the metrics receive,
// the budget states that travel with it, the Exporter contract the fan-out
// (package exporters) drives, the queue statistics it reports, and how a
// delivery error says whether a retry could help.
//
// It depends on nothing but the CostReport and money types, so the
// processor, every sink package (otlp, helicone, webhook, jsonlog,
// postgres), the fan-out and the metrics package can use it without
// importing each other; the app composes them.
package sink

import (
	"context"
	"math/bits"
	"time"

	"github.com/spendguard/spendguard/internal/money"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Event is one request as the processor reports it: its CostReport and
// what the report alone lacks. It is the only reporting type: the
// processor builds it, the app hands it to the metrics and the fan-out,
// and every exporter receives it as is. An Event and everything it points
// to are read-only once reported: several exporters read it concurrently,
// possibly long after the request ended.
type Event struct {
	// Report is the request's CostReport. Never nil.
	Report *spendguardv1.CostReport

	// RequestJSON is the request body as forwarded upstream (after a
	// soft-cap "model" rewrite), or nil when it was not captured (the
	// request was rejected before its body, or no exporter wants it; see
	// exporters.Fanout.WantsRequestBody). Only the Helicone exporter
	// reads it.
	RequestJSON []byte

	// Budgets are the states of the request's applicable budget scopes
	// after the request was settled (or rejected), in configuration order.
	// The webhook exporter detects cap crossings in them and the metrics
	// package exports them as per-scope gauges. nil when not captured.
	Budgets []BudgetState
}

// BudgetState is one budget scope's standing in its current period, right
// after a request was settled or rejected. Money is in nano-USD.
type BudgetState struct {
	// Budget is the budget's name.
	Budget string
	// Scope holds the values of the budget's match keys for this scope
	// (e.g. tenant -> acme); empty for a budget without match keys.
	Scope map[string]string
	// ScopeText names the scope for people: "tenant=acme,team=search"
	// (sorted by key) or "all".
	ScopeText string
	// Key identifies the scope's counters without the period (stable
	// across replicas and restarts).
	Key string

	// Rolling is true for a rolling window: it has no calendar period, so
	// PeriodStart moves with every sub-bucket.
	Rolling bool
	// PeriodWord names the period in messages: "today", "this month",
	// "in total", "in the last 10m".
	PeriodWord string
	// PeriodStart and ResetsAt bound the current period (both zero for a
	// total budget).
	PeriodStart time.Time
	ResetsAt    time.Time

	// Committed is the settled spend of the period; Reserved what
	// in-flight requests hold.
	Committed money.Nano
	Reserved  money.Nano

	// Soft and Hard are the caps, valid when HasSoft and HasHard.
	Soft, Hard       money.Nano
	HasSoft, HasHard bool

	// Thresholds are the budget's alerts.thresholds: fractions of Hard,
	// ascending, nil when it has none. The slice is the compiled budget's
	// own, shared by every state of the budget: read it, never modify it.
	Thresholds []float64

	// Blocked is true when this scope's hard cap rejected the request the
	// state travels with (its 402), even if Used is still below Hard: the
	// budget had room, but not for that request.
	Blocked bool
}

// Used is Committed plus Reserved: what counts against the caps.
func (s BudgetState) Used() money.Nano { return money.Add(s.Committed, s.Reserved) }

// SoftCrossed reports whether the scope has reached its soft cap.
func (s BudgetState) SoftCrossed() bool { return s.HasSoft && s.Used() >= s.Soft }

// HardReached reports whether the scope has reached its hard cap or has
// just refused a request for lack of room under it.
func (s BudgetState) HardReached() bool { return s.HasHard && (s.Used() >= s.Hard || s.Blocked) }

// Remaining is Hard minus Used, at least 0 (0 without a hard cap).
func (s BudgetState) Remaining() money.Nano {
	if !s.HasHard {
		return 0
	}
	return max(s.Hard-s.Used(), 0)
}

// ThresholdAmount is the spend at which the scope reaches fraction (in
// (0, 1], to a millionth, as alerts.thresholds are) of its hard cap: the
// least amount that is at least Hard × fraction, computed exactly in
// integers. 0 without a hard cap or for a hard cap of 0.
func (s BudgetState) ThresholdAmount(fraction float64) money.Nano {
	if !s.HasHard || s.Hard <= 0 {
		return 0
	}
	ppm := uint64(min(max(fraction, 0), 1)*1e6 + 0.5)
	hi, lo := bits.Mul64(uint64(s.Hard), ppm)
	q, r := bits.Div64(hi, lo, 1_000_000) // hi < 1e6: ppm <= 1e6
	if r != 0 {
		q++
	}
	return money.Nano(q)
}

// Exporter delivers batches of events to one destination. The fan-out
// calls Export from its own goroutines, never on a request's path, and
// retries a failed batch with backoff unless the error is Permanent.
//
// Contract:
//   - Export must honour ctx: return promptly once it is done (the
//     fan-out bounds every attempt and cancels everything at shutdown).
//   - A nil error means every event of the batch was delivered. A batch
//     is retried whole, so an exporter that delivers events one by one
//     should be run with a batch size of 1.
//   - Export must not modify the events.
type Exporter interface {
	Export(ctx context.Context, batch []*Event) error
}

// Closer is implemented by exporters that hold resources (files, HTTP
// connections); the fan-out calls Close once, after the last Export.
type Closer interface {
	Close(ctx context.Context) error
}

// FieldError is one problem in an exporter's configuration section: the
// field's YAML key (dotted below the section, e.g. "endpoint") and what is
// wrong. Package exporters adds the section path and the line.
type FieldError struct {
	Field string
	Msg   string
}

// QueueStats is one exporter's queue and delivery counters, as the fan-out
// reports them (the metrics show them at scrape time). Every item offered
// to the exporter ends up in exactly one of Sent, DroppedFull,
// DroppedFailed or DroppedShutdown (or is still counted in QueueDepth).
type QueueStats struct {
	Exporter        string // otlp, helicone, webhook, log, postgres
	QueueDepth      int    // items queued or being delivered
	QueueCapacity   int
	Sent            uint64 // items delivered
	Retries         uint64 // delivery attempts that were retried
	DroppedFull     uint64 // dropped because the queue was full
	DroppedFailed   uint64 // dropped after a permanent error or the last retry
	DroppedShutdown uint64 // not delivered before the shutdown deadline
}
