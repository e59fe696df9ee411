package app

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/internal/money"
)

// A Redis store that lost its data (a restart without persistence, a
// FLUSHALL, a failover to a replica that had nothing) is noticed by its
// epoch keys (redisstore.Guard). From then on the store refuses every
// decision (store.on_error: 503 or unmetered), each replica drops its
// leases, and this file rebuilds what Redis forgot: the committed spend of
// every current period, from the ledger, raised into Redis (never added,
// so several replicas rebuilding at once, or a rebuild run twice, count
// nothing twice). Only then is the store re-established and traffic
// admitted again. Without a ledger there is nothing to rebuild from: the
// loss is logged as an error and the store re-established at once, the
// current periods starting again from what Redis still holds.

// The wait between two rebuild attempts: doubled from the first, up to
// the max.
const (
	storeLossFirstRetry = time.Second
	storeLossMaxRetry   = 30 * time.Second
)

// watchStoreLoss wires a Redis store's loss to its rebuild, and rebuilds
// at start when the store is new or was emptied while no replica ran.
// stop ends the retries (Shutdown).
func (in *Instance) watchStoreLoss(stop <-chan struct{}) {
	rs := stores.AsRedis(in.Store)
	if rs == nil {
		return
	}
	rs.OnLost(func(ev redisstore.LostEvent) {
		go in.recoverStoreLoss(rs, ev, stop)
	})
	if !rs.Created() || in.Ledger == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), in.Ledger.StartTimeout())
	defer cancel()
	if n, err := in.rebuildRedis(ctx, rs); err != nil {
		in.Log.Error("the Redis store holds no epoch (new, emptied, or written by an older version) and rebuilding its counters from the spend ledger failed; budgets count from what Redis holds",
			zap.Error(err))
	} else {
		in.Log.Info("the Redis store holds no epoch (new, emptied, or written by an older version): counters of the current periods rebuilt from the spend ledger",
			zap.Int("counters_raised", n))
	}
}

// recoverStoreLoss rebuilds the lost store and re-establishes it,
// retrying with backoff until it works or stop is closed.
func (in *Instance) recoverStoreLoss(rs *stores.RedisStore, ev redisstore.LostEvent, stop <-chan struct{}) {
	wait := storeLossFirstRetry
	for {
		err := in.rebuildAndReestablish(rs)
		if err == nil {
			return
		}
		in.Log.Error("the Redis store lost its data and is not re-established yet; decisions fail until it is",
			zap.Stringer("loss", ev), zap.Duration("retry_in", wait), zap.Error(err))
		select {
		case <-stop:
			return
		case <-time.After(wait):
		}
		wait = min(2*wait, storeLossMaxRetry)
	}
}

func (in *Instance) rebuildAndReestablish(rs *stores.RedisStore) error {
	if in.Ledger == nil {
		in.Log.Error("the Redis store lost its data and no spend ledger (exporters.postgres) is configured to rebuild it from: the current periods of every budget start again from what Redis still holds; configure the ledger so that a loss costs no spend")
	} else {
		ctx, cancel := context.WithTimeout(context.Background(), in.Ledger.StartTimeout())
		n, err := in.rebuildRedis(ctx, rs)
		cancel()
		if err != nil {
			return fmt.Errorf("rebuilding from the ledger: %w", err)
		}
		in.Log.Warn("the Redis store lost its data: counters of the current periods rebuilt from the spend ledger",
			zap.Int("counters_raised", n))
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := rs.Reestablish(ctx); err != nil {
		return fmt.Errorf("re-establishing the epoch: %w", err)
	}
	return nil
}

// rebuildRedis raises every counter of the current periods in Redis to
// the ledger's sum, and returns how many it raised.
func (in *Instance) rebuildRedis(ctx context.Context, rs *stores.RedisStore) (int, error) {
	// This replica's spooled rows first, so that the sums include them.
	if err := in.Ledger.WaitShipped(ctx); err != nil {
		return 0, err
	}
	r := &redisRaiser{ctx: ctx, rs: rs.Redis(), now: time.Now()}
	if _, err := in.Ledger.Recover(ctx, in.CurrentConfig().Snapshot.Budgets, r, r.now); err != nil {
		return 0, err
	}
	return r.raised, r.err
}

// redisRaiser is the postgres.Restorer of a Redis store: each counter
// raised in one call (redisstore.Store.RaiseCommitted), the first error
// kept.
type redisRaiser struct {
	ctx    context.Context
	rs     *redisstore.Store
	now    time.Time
	raised int
	err    error
}

func (r *redisRaiser) RestoreCommitted(it budget.Item, committed money.Nano) {
	if r.err != nil {
		return
	}
	ok, err := r.rs.RaiseCommitted(r.ctx, it, committed, r.now)
	if err != nil {
		r.err = errors.Join(r.err, fmt.Errorf("counter %s: %w", it.Key, err))
		return
	}
	if ok {
		r.raised++
	}
}
