package metrics

import (
	"context"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/internal/mono"
)

// InstrumentStore returns s with every call timed into
// spendguard_store_operation_duration_seconds (operation reserve, settle,
// usage or extend). It adds no behaviour: errors and results pass through. A
// method added to budget.Store later passes through untimed. With a nil
// *Metrics it returns s itself.
func (m *Metrics) InstrumentStore(s budget.Store) budget.Store {
	if m == nil {
		return s
	}
	if _, ok := s.(budget.IdempotentSettler); ok {
		return idempotentTimedStore{timedStore{Store: s, m: m}}
	}
	return timedStore{Store: s, m: m}
}

// idempotentTimedStore keeps the store's promise that a Settle may be
// sent again, so the engine still retries through the instrumentation.
type idempotentTimedStore struct{ timedStore }

func (idempotentTimedStore) SettleIsIdempotent() {}

// timedStore times each call on the monotonic clock alone (mono.Now),
// which costs about half a time.Now. The series it observes are resolved
// once (observeStore).
type timedStore struct {
	budget.Store
	m *Metrics
}

func (t timedStore) Reserve(ctx context.Context, id string, amount money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (budget.Outcome, error) {
	start := mono.Now()
	out, err := t.Store.Reserve(ctx, id, amount, items, ttl, now)
	t.m.observeStore(opReserve, mono.Now()-start, err)
	return out, err
}

func (t timedStore) Settle(ctx context.Context, id string, actual money.Nano, items []budget.Item, now time.Time) error {
	start := mono.Now()
	err := t.Store.Settle(ctx, id, actual, items, now)
	t.m.observeStore(opSettle, mono.Now()-start, err)
	return err
}

func (t timedStore) Usage(ctx context.Context, items []budget.Item, now time.Time) ([]budget.Counter, error) {
	start := mono.Now()
	out, err := t.Store.Usage(ctx, items, now)
	t.m.observeStore(opUsage, mono.Now()-start, err)
	return out, err
}

func (t timedStore) Extend(ctx context.Context, id string, want money.Nano, items []budget.Item, ttl time.Duration, now time.Time) (money.Nano, budget.Outcome, error) {
	start := mono.Now()
	granted, out, err := t.Store.Extend(ctx, id, want, items, ttl, now)
	t.m.observeStore(opExtend, mono.Now()-start, err)
	return granted, out, err
}
