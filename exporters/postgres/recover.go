package postgres

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/internal/money"
)

// Restorer is a budget store that can be seeded with committed spend
// (memstore.Store): RestoreCommitted raises a counter, never adds.
type Restorer interface {
	RestoreCommitted(it budget.Item, committed money.Nano)
}

// RecoveryStats says what Recover found.
type RecoveryStats struct {
	Groups   int       // aggregated ledger groups read
	Counters int       // counters restored
	Since    time.Time // earliest start time read (zero: the whole ledger)
}

// rollingNever stands for "no rolling window": no row is that late.
var rollingNever = time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)

// Recover rebuilds into store the spend of every current period of p at
// now: the charged cost (allowed and downgraded requests) of the ledger
// rows that started since p.RecoverySince(now), placed with
// p.CurrentItems by their scope, served model and start time. Rows are
// aggregated in PostgreSQL by scope, model and quarter-hour (calendar
// periods start at quarter-hours in every zone in use), or by second
// within the reach of a rolling window. The counters are raised to the
// ledger's sums, never added to, so spend already restored from a
// snapshot is not counted twice.
func (l *Ledger) Recover(ctx context.Context, p *budget.Policies, store Restorer, now time.Time) (RecoveryStats, error) {
	sums, st, err := l.currentSpend(ctx, p, now, "")
	if err != nil {
		return st, err
	}
	for _, s := range sums {
		store.RestoreCommitted(s.Item, s.Spent)
	}
	st.Counters = len(sums)
	return st, nil
}

// ItemSpend is what the ledger holds for one counter of a current
// period.
type ItemSpend struct {
	Item  budget.Item
	Spent money.Nano
}

// InstanceSpend is what one instance's rows charged each counter of the
// current periods of p at now, placed as Recover places them.
func (l *Ledger) InstanceSpend(ctx context.Context, p *budget.Policies, instance string, now time.Time) ([]ItemSpend, error) {
	if instance == "" {
		return nil, errors.New("ledger: no instance")
	}
	sums, _, err := l.currentSpend(ctx, p, now, instance)
	return sums, err
}

// currentSpend sums the charged cost of the rows (of instance, when not
// "") per counter of the current periods of p at now.
func (l *Ledger) currentSpend(ctx context.Context, p *budget.Policies, now time.Time, instance string) ([]ItemSpend, RecoveryStats, error) {
	since, all := p.RecoverySince(now)
	st := RecoveryStats{Since: since}
	if all {
		since = time.Time{}
		st.Since = time.Time{}
	}
	rolling, ok := p.RollingSince(now)
	if !ok {
		rolling = rollingNever
	}
	rows, err := l.pool.Query(ctx, `
		SELECT scope, served_model,
		       CASE WHEN start_time >= $2 THEN date_trunc('second', start_time)
		            ELSE date_bin('15 minutes', start_time, TIMESTAMPTZ '2000-01-01 00:00:00+00') END,
		       least(sum(cost_nano_usd), 9223372036854775807)::bigint
		FROM spendguard_ledger
		WHERE decision IN ('allowed', 'downgraded') AND cost_nano_usd > 0 AND start_time >= $1
		  AND ($3 = '' OR instance = $3)
		GROUP BY 1, 2, 3`, since, rolling, instance)
	if err != nil {
		return nil, st, fmt.Errorf("ledger recovery: %w", err)
	}
	sums := map[string]money.Nano{}
	items := map[string]budget.Item{}
	var (
		scope map[string]string
		model string
		at    time.Time
		cost  int64
	)
	_, err = pgx.ForEachRow(rows, []any{&scope, &model, &at, &cost}, func() error {
		st.Groups++
		dims := maps.Clone(scope)
		if dims == nil {
			dims = map[string]string{}
		}
		dims[identity.ModelDimension] = model // budgets see the served model, as the processor's do
		for _, it := range p.CurrentItems(dims, at, now) {
			sums[it.Key] = money.Add(sums[it.Key], money.Nano(cost))
			items[it.Key] = it
		}
		scope = nil // jsonb decodes into a non-nil map by merging
		return nil
	})
	if err != nil {
		return nil, st, fmt.Errorf("ledger recovery: %w", err)
	}
	out := make([]ItemSpend, 0, len(items))
	for k, it := range items {
		out = append(out, ItemSpend{Item: it, Spent: sums[k]})
	}
	return out, st, nil
}
