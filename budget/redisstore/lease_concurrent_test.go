package redisstore_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/internal/money"
)

// TestLeaseConcurrentReplicasStayUnderCap: four replicas sync one capped
// counter at once, each spending at most its lease and committing it at
// its next Sync (Need 0). After every call committed + leased is within
// the limit, and at the end committed is exactly what they spent, which
// is at most the limit: leases never let the budget be overspent.
func TestLeaseConcurrentReplicasStayUnderCap(t *testing.T) {
	s, _, _ := newStore(t)
	const limit = money.Nano(1_000_000)
	it := budget.Item{Key: "s@1", Limit: limit, Enforce: true, Expires: t0.Add(time.Hour)}
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		spent money.Nano
	)
	for r := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(uint64(r), 1))
			holder := "replica-" + strconv.Itoa(r)
			var pending, total money.Nano
			for seq := uint64(1); seq <= 60; seq++ {
				// Headroom of a twentieth of the cap: granted in full far
				// from it, not at all near it.
				req := lease.SyncRequest{Holder: holder, Seq: seq, Item: it, Commit: pending, Extra: limit / 20, TTL: time.Minute, Now: t0.Add(time.Duration(seq) * time.Millisecond)}
				if seq == 60 {
					req.Extra = 0
				}
				out, err := s.Sync(context.Background(), req)
				if !assert.NoError(t, err) || !assert.True(t, out.Applied) {
					return
				}
				assert.LessOrEqual(t, out.Committed+out.Leased, limit, "%s call %d: %+v", holder, seq, out)
				total += pending
				pending = 0
				if out.Lease > 0 {
					pending = money.Nano(rng.Int64N(int64(out.Lease) + 1))
				}
			}
			assert.Zero(t, pending, "the last lease is 0")
			mu.Lock()
			spent += total
			mu.Unlock()
		}()
	}
	wg.Wait()
	out, err := s.Sync(context.Background(), lease.SyncRequest{Holder: "observer", Seq: 1, Item: it, TTL: time.Minute, Now: t0.Add(time.Second)})
	require.NoError(t, err)
	assert.Equal(t, lease.SyncReply{Applied: true, Committed: spent}, out)
	assert.LessOrEqual(t, spent, limit)
	assert.Greater(t, spent, limit/2, "the replicas could spend most of the budget")
}
