package storetest

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// Bench benchmarks a store on the calls of one request: Reserve on three
// budgets (a shared fleet pool, a tenant and a user) then Settle, serially
// and from parallel goroutines, and Usage. Run it with -benchmem.
func Bench(b *testing.B, newStore func(b *testing.B) budget.Store) {
	b.Run("ReserveSettle", func(b *testing.B) {
		s, ctx := newStore(b), context.Background()
		items := requestItems(b.Name(), 0)
		b.ReportAllocs()
		for i := 0; b.Loop(); i++ {
			reserveSettle(b, ctx, s, "r"+strconv.Itoa(i), items)
		}
	})
	b.Run("ReserveSettleParallel", func(b *testing.B) {
		s, ctx := newStore(b), context.Background()
		var worker atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := worker.Add(1)
			items := requestItems(b.Name(), w)
			prefix := "w" + strconv.FormatInt(w, 10) + "-"
			for i := 0; pb.Next(); i++ {
				reserveSettle(b, ctx, s, prefix+strconv.Itoa(i), items)
			}
		})
	})
	b.Run("Usage", func(b *testing.B) {
		s, ctx := newStore(b), context.Background()
		items := requestItems(b.Name(), 0)
		reserveSettle(b, ctx, s, "seed", items)
		b.ReportAllocs()
		for b.Loop() {
			if _, err := s.Usage(ctx, items, T0); err != nil {
				b.Fatal(err)
			}
		}
	})
}

// requestItems are the counters of one request: the fleet pool is shared
// by all workers, the tenant and user counters are per worker.
func requestItems(prefix string, worker int64) []budget.Item {
	w := strconv.FormatInt(worker, 10)
	limit := money.Nano(1) << 62
	return []budget.Item{
		{Key: prefix + "/fleet-daily|day|@1796083200", Limit: limit, Enforce: true, Expires: periodEnd},
		{Key: prefix + "/tenant-monthly|month|tenant=t" + w + "@1796083200", Limit: limit, Enforce: true, Expires: periodEnd},
		{Key: prefix + "/user-daily|day|user=u" + w + "@1796083200", Limit: limit, Enforce: true, Expires: periodEnd},
	}
}

func reserveSettle(b *testing.B, ctx context.Context, s budget.Store, id string, items []budget.Item) {
	out, err := s.Reserve(ctx, id, 2*money.PerUSD, items, 10*time.Minute, T0)
	if err != nil || !out.OK() {
		b.Fatalf("reserve %s: %v %+v", id, err, out)
	}
	if err := s.Settle(ctx, id, money.PerUSD, items, T0); err != nil {
		b.Fatal(err)
	}
}

// BenchExtend benchmarks Store.Extend as a streamed response calls it:
// one live reservation on the three budgets of a request, grown again and
// again by a small amount (serially, and one stream per goroutine in
// parallel, all on the shared fleet counter). Run it with -benchmem.
func BenchExtend(b *testing.B, newStore func(b *testing.B) budget.Store) {
	b.Run("Extend", func(b *testing.B) {
		s, ctx := newStore(b), context.Background()
		items := requestItems(b.Name(), 0)
		b.ReportAllocs()
		extendLoop(b, ctx, s, "stream", items, b.Loop)
	})
	b.Run("ExtendParallel", func(b *testing.B) {
		s, ctx := newStore(b), context.Background()
		var worker atomic.Int64
		b.ReportAllocs()
		b.RunParallel(func(pb *testing.PB) {
			w := worker.Add(1)
			extendLoop(b, ctx, s, "stream"+strconv.FormatInt(w, 10), requestItems(b.Name(), w), pb.Next)
		})
	})
}

// extendLoop reserves id, extends it while next says so, and settles it.
func extendLoop(b *testing.B, ctx context.Context, s budget.Store, id string, items []budget.Item, next func() bool) {
	out, err := s.Reserve(ctx, id, money.PerUSD, items, 10*time.Minute, T0)
	if err != nil || !out.OK() {
		b.Fatalf("reserve %s: %v %+v", id, err, out)
	}
	for next() {
		granted, _, err := s.Extend(ctx, id, money.PerUSD/1000, items, 10*time.Minute, T0)
		if err != nil || granted != money.PerUSD/1000 {
			b.Fatalf("extend %s: granted %v, %v", id, granted, err)
		}
	}
	if err := s.Settle(ctx, id, money.PerUSD, items, T0); err != nil {
		b.Fatal(err)
	}
}
