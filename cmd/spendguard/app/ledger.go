package app

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/exporters/postgres"
)

// recoverFromLedger rebuilds the memory store's counters for the current
// periods of every budget from the spend ledger, when both are
// configured, before anything is served. Counters are raised to the
// ledger's sums, never added to: with a snapshot loaded, each counter
// ends up with the larger of the snapshot's and the ledger's amount, so
// nothing is counted twice (docs/ledger.md). A Redis store needs no
// rebuilding. The rows the spool still holds from before a restart are
// shipped first, so that the sums include them. A ledger that cannot be
// read within start_timeout stops the start: serving with forgotten spend
// would let budgets be overspent (docs/ledger.md).
func (in *Instance) recoverFromLedger() error {
	l := in.Ledger
	store, ok := in.Store.(postgres.Restorer)
	if l == nil || !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.StartTimeout())
	defer cancel()
	if err := l.WaitShipped(ctx); err != nil {
		return fmt.Errorf("the memory store rebuilds its counters from the ledger at start, and PostgreSQL was not writable within exporters.postgres.start_timeout: %w", err)
	}
	st, err := l.Recover(ctx, in.CurrentConfig().Snapshot.Budgets, store, time.Now())
	if err != nil {
		return err
	}
	in.Log.Info("memory store counters rebuilt from the spend ledger",
		zap.Int("counters", st.Counters), zap.Int("ledger_groups", st.Groups), zap.Time("since", st.Since))
	return nil
}
