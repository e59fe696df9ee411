package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/lease/leasetest"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

// TestLeaseConformance runs the lease.Backend suite on Redis.
func TestLeaseConformance(t *testing.T) {
	leasetest.Run(t, func(t *testing.T) lease.Backend {
		s, _, _ := newStore(t)
		return s
	})
}

var _ lease.Backend = (*redisstore.Store)(nil)

// BenchmarkSync is one holder's Sync on one counter far from its cap (a
// commit, a reported reservation and a lease renewed each call), on a
// private redis-server: wall time per call, and the server's own time.
func BenchmarkSync(b *testing.B) {
	srv := redistest.Start(b)
	c := srv.Client()
	s := redisstore.New(c, redisstore.Options{Timeout: 5 * time.Second})
	ctx := context.Background()
	it := budget.Item{Key: "tenant|day|tenant=acme@1", Limit: 1 << 62, Enforce: true, Expires: t0.Add(time.Hour)}
	if err := c.ConfigResetStat(ctx).Err(); err != nil {
		b.Fatal(err)
	}
	for i := uint64(1); b.Loop(); i++ {
		out, err := s.Sync(ctx, lease.SyncRequest{
			Holder: "replica-1", Seq: i, Item: it, Commit: money.PerUSD, Reserved: 2 * money.PerUSD,
			Need: 2 * money.PerUSD, Ask: money.PerUSD, Extra: 100 * money.PerUSD, TTL: 10 * time.Second, Now: t0,
		})
		if err != nil || !out.Applied {
			b.Fatal(err, out)
		}
	}
	reportServerTime(b, c)
}
