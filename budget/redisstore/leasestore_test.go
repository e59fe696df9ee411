package redisstore_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/storetest"
	"github.com/spendguard/spendguard/internal/money"
)

// TestLeaseStoreConformance: a replica deciding within leases of Redis
// keeps the budget.Store contract exactly.
func TestLeaseStoreConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) budget.Store {
		s, _, _ := newStore(t)
		ls := lease.New(s, lease.Options{SyncInterval: -1, Now: func() time.Time { return storetest.T0 }})
		t.Cleanup(func() { _ = ls.Close(context.Background()) })
		return ls
	})
}

// TestLeaseReplicasShareACapExactly: four replicas (each with its
// background loop) spend one cap in Redis until refused: Redis ends with
// exactly what the requests settled, never past the cap, no lease left.
func TestLeaseReplicasShareACapExactly(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	const limit = 5_000_000
	it := budget.Item{Key: "cap|day|tenant=a@1", Limit: limit, Enforce: true, Expires: time.Now().Add(24 * time.Hour)}
	stores := make([]*lease.Store, 4)
	for r := range stores {
		stores[r] = lease.New(s, lease.Options{Holder: fmt.Sprint("replica-", r), SyncInterval: 20 * time.Millisecond})
	}
	var settled, admitted atomic.Int64
	var wg sync.WaitGroup
	for r, ls := range stores {
		for w := range 20 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(r), uint64(w)))
				for i, refused := 0, 0; refused < 3; i++ {
					id := fmt.Sprintf("r%d-%d-%d", r, w, i)
					amount := money.Nano(1 + rng.IntN(5000))
					out, err := ls.Reserve(ctx, id, amount, []budget.Item{it}, time.Minute, time.Now())
					if !assert.NoError(t, err) {
						return
					}
					if !out.OK() {
						refused++
						continue
					}
					admitted.Add(1)
					actual := money.Nano(rng.Int64N(int64(amount) + 1))
					assert.NoError(t, ls.Settle(ctx, id, actual, []budget.Item{it}, time.Now()))
					settled.Add(int64(actual))
				}
			}()
		}
	}
	wg.Wait()
	var syncs uint64
	for _, ls := range stores {
		require.NoError(t, ls.Close(ctx))
		syncs += ls.Stats().Syncs
	}
	r, err := s.Sync(ctx, lease.SyncRequest{Holder: "reader", Seq: 1, Item: it, TTL: time.Second, Now: time.Now()})
	require.NoError(t, err)
	t.Logf("%d admitted, %d round trips (%.3f per request), %v of %v spent", admitted.Load(), syncs,
		float64(syncs)/float64(admitted.Load()), r.Committed, money.Nano(limit))
	assert.Equal(t, money.Nano(settled.Load()), r.Committed, "Redis holds exactly what was settled")
	assert.LessOrEqual(t, r.Committed, money.Nano(limit))
	assert.Zero(t, r.Leased, "every lease given back")
	assert.Greater(t, r.Committed, money.Nano(limit)*8/10)
}
