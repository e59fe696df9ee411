package app

import (
	"context"
	"errors"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/internal/money"
)

// A replica killed while it held budget leases (kill -9, OOM) leaves them
// to expire; each is then forfeited: counted in full as spent, as the
// replica may have spent all of it. Once another process has shipped what
// the dead one left in its ledger spool, the ledger knows what it really
// spent, and this loop gives back the difference (lease.ForfeitSettler):
// the dead replica's share of each counter becomes what its rows show,
// plus the reservations it had in flight at its last sync (nobody knows
// what those cost). Every replica runs the loop; a forfeit is settled
// once however many do (the backend removes it as it settles it).

// forfeitInterval is how often the ledger is asked for dead processes:
// three lease lifetimes (a dead holder's leases have expired by the
// round after it is known dead), at most 30s.
func forfeitInterval(ttl time.Duration) time.Duration {
	return min(max(3*ttl, time.Second), 30*time.Second)
}

// watchForfeits starts the loop when the store holds leases in Redis and
// a ledger is configured; stop ends it.
func (in *Instance) watchForfeits(stop <-chan struct{}) {
	rs := stores.AsRedis(in.Store)
	if rs == nil || rs.Leases() == nil || in.Ledger == nil {
		return
	}
	settler := rs.Redis()
	every := forfeitInterval(in.CurrentConfig().File.Store.Redis.Leases.LeaseTTL())
	go func() {
		t := time.NewTicker(every)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			ctx, cancel := context.WithTimeout(context.Background(), every)
			in.settleForfeits(ctx, settler, time.Now())
			cancel()
		}
	}()
}

// settleForfeits settles the forfeits of every process the ledger knows
// to be dead and drained, and marks each one done once all of its
// counters were settled (a live lease, not yet expired, is settled at a
// later round).
func (in *Instance) settleForfeits(ctx context.Context, s lease.ForfeitSettler, now time.Time) {
	dead, err := in.Ledger.DrainedInstances(ctx)
	if err != nil {
		in.Log.Debug("forfeit settlement: the ledger cannot be read", zap.Error(err))
		return
	}
	policies := in.CurrentConfig().Snapshot.Budgets
	for _, holder := range dead {
		spends, err := in.Ledger.InstanceSpend(ctx, policies, holder, now)
		if err != nil {
			in.Log.Debug("forfeit settlement: the ledger cannot be read", zap.Error(err))
			return
		}
		var refunded, forfeited money.Nano
		settled, pending := 0, false
		for _, sp := range spends {
			if len(sp.Item.Window) > 0 {
				continue // a rolling window's forfeits end with the window
			}
			rep, err := s.SettleForfeit(ctx, lease.SettleForfeitRequest{Item: sp.Item, Holder: holder, Spent: sp.Spent, Now: now})
			if err != nil {
				pending = true
				if !errors.Is(err, lease.ErrHolderLive) {
					in.Log.Warn("forfeit settlement failed; retried later", zap.String("holder", holder), zap.String("counter", sp.Item.Key), zap.Error(err))
				}
				continue
			}
			if rep.Applied {
				settled++
				refunded, forfeited = money.Add(refunded, rep.Refund), money.Add(forfeited, rep.Forfeit)
			}
		}
		if pending {
			continue
		}
		if err := in.Ledger.MarkReconciled(ctx, holder, now); err != nil {
			in.Log.Debug("forfeit settlement: the ledger cannot be written", zap.Error(err))
			return
		}
		if settled > 0 {
			in.Log.Info("budget leases of a replica that died settled against its ledger rows",
				zap.String("holder", holder), zap.Int("counters", settled),
				zap.Stringer("forfeited_usd", forfeited), zap.Stringer("refunded_usd", refunded))
		}
	}
}
