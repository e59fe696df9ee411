package app

import (
	"context"
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
// rebuilding. A ledger that cannot be read stops the start: serving with
// forgotten spend would let budgets be overspent.
func (in *Instance) recoverFromLedger() error {
	l := in.Ledger
	store, ok := in.Store.(postgres.Restorer)
	if l == nil || !ok {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), l.StartTimeout())
	defer cancel()
	st, err := l.Recover(ctx, in.CurrentConfig().Snapshot.Budgets, store, time.Now())
	if err != nil {
		return err
	}
	in.Log.Info("memory store counters rebuilt from the spend ledger",
		zap.Int("counters", st.Counters), zap.Int("ledger_groups", st.Groups), zap.Time("since", st.Since))
	return nil
}
