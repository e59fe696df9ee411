package memstore_test

import (
	"context"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/storetest"
)

func TestMemoryStoreConformance(t *testing.T) {
	storetest.Run(t, func(*testing.T) budget.Store { return memstore.New() })
}

func BenchmarkMemoryStore(b *testing.B) {
	storetest.Bench(b, func(*testing.B) budget.Store { return memstore.New() })
}

func BenchmarkExtend(b *testing.B) {
	storetest.BenchExtend(b, func(*testing.B) budget.Store { return memstore.New() })
}

func TestMemoryStorePrunesEndedPeriods(t *testing.T) {
	ctx, s := context.Background(), memstore.New()
	t0 := storetest.T0
	hourly := budget.Item{Key: "h@1", Limit: 10, Enforce: true, Expires: t0.Add(time.Hour)}
	daily := budget.Item{Key: "d@1", Limit: 10, Enforce: true, Expires: t0.Add(24 * time.Hour)}
	total := budget.Item{Key: "t@total", Limit: 10, Enforce: true}
	items := []budget.Item{hourly, daily, total}
	require.NoError(t, s.Settle(ctx, "a", 1, items, t0))
	out, err := s.Reserve(ctx, "b", 1, items, 2*time.Hour, t0)
	require.NoError(t, err)
	require.True(t, out.OK())

	tests := []struct {
		name         string
		at           time.Time
		counters     int
		reservations int
	}{
		{"all kept before the grace ends", t0.Add(time.Hour + memstore.Grace - time.Nanosecond), 3, 1},
		{"ended hour dropped, reservation expired", t0.Add(time.Hour + memstore.Grace), 2, 0},
		{"ended day dropped, total kept", t0.Add(24*time.Hour + memstore.Grace), 1, 0},
		{"total kept forever", t0.AddDate(10, 0, 0), 1, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := s.Usage(ctx, nil, tt.at)
			require.NoError(t, err)
			counters, reservations := s.Len()
			assert.Equal(t, tt.counters, counters)
			assert.Equal(t, tt.reservations, reservations)
		})
	}

}

func TestMemoryStoreSettleAfterPeriodEnd(t *testing.T) {
	ctx, s := context.Background(), memstore.New()
	t0 := storetest.T0
	daily := []budget.Item{{Key: "d@1", Limit: 10, Enforce: true, Expires: t0.Add(time.Hour)}}
	out, err := s.Reserve(ctx, "slow", 8, daily, 10*time.Minute, t0)
	require.NoError(t, err)
	require.True(t, out.OK())
	late := t0.Add(time.Hour + memstore.Grace/2)
	require.NoError(t, s.Settle(ctx, "slow", 5, daily, late))
	got, err := s.Usage(ctx, daily, late)
	require.NoError(t, err)
	assert.Equal(t, []budget.Counter{{Committed: 5}}, got, "spend is committed into the ended period")
}

func TestMemoryStoreReleasesEveryReservation(t *testing.T) {
	ctx, s := context.Background(), memstore.New()
	t0 := storetest.T0
	item := []budget.Item{{Key: "k", Limit: 1 << 40, Enforce: true}}
	for i := range 1000 {
		ttl := time.Duration(1+i%7) * time.Minute // out of order expiries
		out, err := s.Reserve(ctx, strconv.Itoa(i), 3, item, ttl, t0)
		require.NoError(t, err)
		require.True(t, out.OK())
	}
	for i := 0; i < 1000; i += 2 {
		require.NoError(t, s.Settle(ctx, strconv.Itoa(i), 1, item, t0))
	}
	got, err := s.Usage(ctx, item, t0)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: 500, Reserved: 1500}, got[0])

	got, err = s.Usage(ctx, item, t0.Add(7*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: 500}, got[0])
	_, reservations := s.Len()
	assert.Zero(t, reservations)
}

func TestMemoryStoreListerConformance(t *testing.T) {
	storetest.RunLister(t, func(*testing.T) storetest.ListerStore { return memstore.New() })
}

// BenchmarkMemoryStoreRolling is the store calls of one request on a
// calendar month, a calendar day and a rolling window of ten older
// buckets, as the engine makes them (Usage, Reserve, Settle), with the
// older buckets empty (fresh) or all holding spend (full).
func BenchmarkMemoryStoreRolling(b *testing.B) {
	ctx, t0 := context.Background(), storetest.T0
	const prefix = "spendguard:runaway-agent-guard|rolling|user=u0@"
	end := t0.Add(10 * time.Minute)
	rolling := budget.Item{Key: prefix + strconv.FormatInt(t0.Unix(), 10), Limit: 1 << 60, Enforce: true, Expires: end}
	for k := 1; k <= 10; k++ {
		rolling.Window = append(rolling.Window, prefix+strconv.FormatInt(t0.Unix()-int64(k)*60, 10))
	}
	items := []budget.Item{
		{Key: "spendguard:tenant-monthly|month|tenant=t0@1793487600", Limit: 1 << 60, Enforce: true, Expires: t0.AddDate(0, 1, 0)},
		{Key: "spendguard:fleet-daily|day|@1796083200", Limit: 1 << 60, Enforce: true, Expires: t0.AddDate(0, 0, 1)},
		rolling,
	}
	for _, full := range []bool{false, true} {
		name := "fresh"
		if full {
			name = "full"
		}
		b.Run(name, func(b *testing.B) {
			s := memstore.New()
			if full {
				for k, key := range rolling.Window {
					old := []budget.Item{{Key: key, Expires: end.Add(-time.Duration(k+1) * time.Minute)}}
					require.NoError(b, s.Settle(ctx, "seed", 1, old, t0))
				}
			}
			b.ReportAllocs()
			for i := 0; b.Loop(); i++ {
				if _, err := s.Usage(ctx, items, t0); err != nil {
					b.Fatal(err)
				}
				id := "r" + strconv.Itoa(i)
				if out, err := s.Reserve(ctx, id, 1000, items, 10*time.Minute, t0); err != nil || !out.OK() {
					b.Fatal(err, out)
				}
				if err := s.Settle(ctx, id, 500, items, t0); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

func TestMemoryStoreParkerConformance(t *testing.T) {
	storetest.RunParker(t, func(*testing.T) budget.Parker { return memstore.New() })
}

// TestMemoryStoreExtendRefusesOtherItems: the store keeps one amount per
// reservation, so a live one grows only on the budgets it was reserved on.
func TestMemoryStoreExtendRefusesOtherItems(t *testing.T) {
	ctx, s, t0 := context.Background(), memstore.New(), storetest.T0
	a := budget.Item{Key: "a", Limit: 100, Enforce: true}
	b := budget.Item{Key: "b", Limit: 100, Enforce: true}
	_, err := s.Reserve(ctx, "r1", 10, []budget.Item{a, b}, time.Minute, t0)
	require.NoError(t, err)
	for _, items := range [][]budget.Item{{a}, {b, a}, {a, b, {Key: "c"}}} {
		_, _, err := s.Extend(ctx, "r1", 1, items, time.Hour, t0)
		assert.ErrorIs(t, err, budget.ErrInvalidArgument)
	}
	got, err := s.Usage(ctx, []budget.Item{a, b}, t0.Add(time.Minute-time.Nanosecond))
	require.NoError(t, err)
	assert.Equal(t, []budget.Counter{{Reserved: 10}, {Reserved: 10}}, got, "unchanged, and not renewed")
	got, err = s.Usage(ctx, []budget.Item{a, b}, t0.Add(time.Minute))
	require.NoError(t, err)
	assert.Equal(t, []budget.Counter{{}, {}}, got)
}
