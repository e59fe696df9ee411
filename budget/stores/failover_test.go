package stores_test

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
	"github.com/spendguard/spendguard/budget/stores"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

// TestSentinelFailoverUnderLoadLosesNoSpend: three replicas of
// spendguard (lease stores through Sentinel) spend one cap while the
// primary is killed mid-load; Sentinel promotes the replica and the old
// primary comes back as its replica. Every lease sync waited for the
// replica (wait_replicas 1, the default with sentinel), and those whose
// answer the failover swallowed are sent again with their sequence
// numbers: after the replicas close, the promoted primary holds exactly
// what the requests settled, never past the cap.
func TestSentinelFailoverUnderLoadLosesNoSpend(t *testing.T) {
	sn := redistest.StartSentinel(t)
	prefix := uniquePrefix()
	const limit = money.Nano(50_000_000)
	it := budget.Item{Key: "tenant-daily|day|tenant=acme@1", Limit: limit, Enforce: true, Expires: time.Now().Add(24 * time.Hour)}
	cfg := budget.RedisConfig{
		Sentinel:  &budget.RedisSentinel{MasterName: redistest.SentinelMaster, Addresses: sn.SentinelAddrs()},
		KeyPrefix: prefix, Timeout: budget.DurationOf(300 * time.Millisecond),
		// Leases outlive the failover: none is forfeited, so the count
		// must be exact, not only never below the truth.
		Leases: budget.RedisLeases{SyncInterval: budget.DurationOf(50 * time.Millisecond), TTL: budget.DurationOf(2 * time.Minute)},
	}
	replicas := make([]*stores.RedisStore, 3)
	for i := range replicas {
		replicas[i] = openRedis(t, cfg, nil)
	}

	var settled, admitted, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for r, s := range replicas {
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(uint64(r), uint64(w)))
				for i := 0; ; i++ {
					select {
					case <-stop:
						return
					default:
					}
					id := fmt.Sprintf("r%d-w%d-%d", r, w, i)
					amount := money.Nano(1 + rng.IntN(20_000))
					out, err := s.Reserve(context.Background(), id, amount, []budget.Item{it}, time.Minute, time.Now())
					if err != nil {
						failed.Add(1) // 503 while the primary is gone
						time.Sleep(5 * time.Millisecond)
						continue
					}
					if !out.OK() {
						time.Sleep(time.Millisecond)
						continue
					}
					admitted.Add(1)
					actual := money.Nano(rng.Int64N(int64(amount) + 1))
					assert.NoError(t, s.Settle(context.Background(), id, actual, []budget.Item{it}, time.Now()))
					settled.Add(int64(actual))
				}
			}()
		}
	}
	waitUntil(t, func() bool { return admitted.Load() > 300 })
	sn.KillPrimary()
	sn.WaitFailover()
	sn.RestartOldPrimary() // back as the new primary's replica: syncs count again
	waitUntil(t, func() bool { return failed.Load() > 0 && admitted.Load() > 1500 })
	close(stop)
	wg.Wait()
	for _, s := range replicas {
		require.NoError(t, s.Close(), "the last syncs reach the promoted primary")
	}

	reader := openRedis(t, cfg, nil)
	got, err := reader.Redis().Sync(context.Background(), lease.SyncRequest{Holder: "reader", Seq: 1, Item: it, TTL: time.Second, Now: time.Now()})
	require.NoError(t, err)
	t.Logf("%d admitted, %d failed during the failover; %v settled, %v in Redis, cap %v",
		admitted.Load(), failed.Load(), money.Nano(settled.Load()), got.Committed, limit)
	assert.Equal(t, money.Nano(settled.Load()), got.Committed, "the promoted primary holds exactly what was settled")
	assert.LessOrEqual(t, got.Committed, limit)
	assert.Zero(t, got.Leased, "every lease given back")
}

func waitUntil(t *testing.T, cond func() bool) {
	t.Helper()
	eventually(t, 60*time.Second, "the load to progress", func() error {
		if !cond() {
			return fmt.Errorf("not yet")
		}
		return nil
	})
}
