package redisstore_test

import (
	"context"
	"math"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

// dump is the content of every key under prefix (DUMP's serialization),
// to compare the state before and after a call that must change nothing.
func dump(t *testing.T, c *redis.Client, prefix string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, k := range redistest.Keys(t, c, prefix) {
		v, err := c.Dump(context.Background(), k).Result()
		require.NoError(t, err)
		out[k] = v
	}
	return out
}

// corruptions put a stored value that Redis cannot take on the counter
// named key.
var corruptions = []struct {
	name    string
	corrupt func(t *testing.T, c *redis.Client, s *redisstore.Store, key string)
}{
	{"CommittedNotAnAmount", func(t *testing.T, c *redis.Client, s *redisstore.Store, key string) {
		require.NoError(t, c.HSet(context.Background(), s.CounterKey(key), "c", "12abc").Err())
	}},
	{"CommittedBeyondInt64", func(t *testing.T, c *redis.Client, s *redisstore.Store, key string) {
		require.NoError(t, c.HSet(context.Background(), s.CounterKey(key), "c", "9223372036854775808").Err())
	}},
	{"ReservationAmountNotAnAmount", func(t *testing.T, c *redis.Client, s *redisstore.Store, key string) {
		require.NoError(t, c.HSet(context.Background(), s.CounterKey(key), "i:r1", "1.5").Err())
	}},
	{"ReservationSetWrongType", func(t *testing.T, c *redis.Client, s *redisstore.Store, key string) {
		require.NoError(t, c.Set(context.Background(), s.ReservationsKey(key), "x", 0).Err())
	}},
}

// TestFailedSettleChangesNothing: a settle over three budgets, one of
// which Redis cannot take (a stored value that is not an amount, a key of
// the wrong type), fails without changing any counter, without releasing
// any reservation and without leaving its settle marker, so the engine's
// retry commits the spend once when the key is repaired. Before the
// scripts computed everything first, the first budget was charged, the
// marker set, and the retry found the marker and dropped the spend.
func TestFailedSettleChangesNothing(t *testing.T) {
	for _, tt := range corruptions {
		t.Run(tt.name, func(t *testing.T) {
			s, c, prefix := newStore(t)
			ctx := context.Background()
			items := []budget.Item{
				item("a", 10*money.PerUSD, t0.Add(time.Hour)),
				item("b", 10*money.PerUSD, t0.Add(time.Hour)),
				item("c", math.MaxInt64, time.Time{}),
			}
			require.NoError(t, s.Settle(ctx, "seed", 2*money.PerUSD, items, t0))
			out, err := s.Reserve(ctx, "r1", 5*money.PerUSD, items, time.Minute, t0)
			require.NoError(t, err)
			require.True(t, out.OK())
			// a reservation that has expired by the settle: the script would
			// release it on the way, but must not when it fails
			_, err = s.Reserve(ctx, "old", money.PerUSD, items[:1], time.Second, t0)
			require.NoError(t, err)

			bKeys := []string{s.CounterKey("b"), s.ReservationsKey("b")}
			saved := map[string]string{}
			for _, k := range bKeys {
				saved[k] = c.Dump(ctx, k).Val()
			}
			tt.corrupt(t, c, s, "b")
			before := dump(t, c, prefix)

			err = s.Settle(ctx, "r1", 3*money.PerUSD, items, t0.Add(2*time.Second))
			require.Error(t, err)
			assert.Equal(t, before, dump(t, c, prefix), "nothing written")
			n, err := c.Exists(ctx, prefix+"d:r1").Result()
			require.NoError(t, err)
			assert.Zero(t, n, "no settle marker")

			for k, v := range saved { // repair b
				require.NoError(t, c.RestoreReplace(ctx, k, 0, v).Err())
			}
			for range 2 { // the retry, and a retry of the retry
				require.NoError(t, s.Settle(ctx, "r1", 3*money.PerUSD, items, t0.Add(2*time.Second)))
			}
			u, err := s.Usage(ctx, items, t0.Add(2*time.Second))
			require.NoError(t, err)
			want := budget.Counter{Committed: 5 * money.PerUSD}
			assert.Equal(t, []budget.Counter{want, want, want}, u, "charged once, every reservation released")
		})
	}
}

// TestFailedExtendChangesNothing: an Extend over three budgets, one of
// which Redis cannot take, fails without growing or renewing anything
// and without releasing the expired reservation it would sweep.
func TestFailedExtendChangesNothing(t *testing.T) {
	for _, tt := range corruptions {
		t.Run(tt.name, func(t *testing.T) {
			s, c, prefix := newStore(t)
			ctx := context.Background()
			items := []budget.Item{
				item("a", 10*money.PerUSD, t0.Add(time.Hour)),
				item("b", 10*money.PerUSD, t0.Add(time.Hour)),
				item("c", math.MaxInt64, time.Time{}),
			}
			_, err := s.Reserve(ctx, "r1", 5*money.PerUSD, items, time.Minute, t0)
			require.NoError(t, err)
			_, err = s.Reserve(ctx, "old", money.PerUSD, items[:1], time.Second, t0)
			require.NoError(t, err)
			tt.corrupt(t, c, s, "b")
			before := dump(t, c, prefix)

			granted, _, err := s.Extend(ctx, "r1", money.PerUSD, items, time.Hour, t0.Add(2*time.Second))
			require.Error(t, err)
			assert.Zero(t, granted)
			assert.Equal(t, before, dump(t, c, prefix), "nothing written")
		})
	}
}

// TestScriptsRefuseBadArguments: each script checks its arguments before
// its first write. Called with arguments Store never sends, it answers an
// error and changes nothing, not even the release of an expired
// reservation that a valid call would sweep.
func TestScriptsRefuseBadArguments(t *testing.T) {
	s, c, prefix := newStore(t)
	ctx := context.Background()
	a := item("a", 10*money.PerUSD, t0.Add(time.Hour))
	_, err := s.Reserve(ctx, "old", money.PerUSD, []budget.Item{a}, time.Second, t0)
	require.NoError(t, err)
	require.NoError(t, s.Settle(ctx, "seed", money.PerUSD, []budget.Item{a}, t0))
	later := strconv.FormatInt(t0.Add(2*time.Second).UnixMicro(), 10) // after "old" expired
	ck, zk, mk := s.CounterKey(a.Key), s.ReservationsKey(a.Key), prefix+"d:r1"

	type call struct {
		script *redis.Script
		keys   []string
		args   []any
	}
	reserve := func(amount, limit, enforce string) call {
		return call{redisstore.ReserveScript, []string{ck, zk, mk}, []any{later, "r1", amount, later, 1, enforce, limit, 0, 0}}
	}
	extend := func(want, limit, expiry string) call {
		return call{redisstore.ExtendScript, []string{ck, zk, mk}, []any{later, "r1", want, expiry, 1, 1, limit, 0, 0}}
	}
	settle := func(actual, markTTL, keyTTL string) call {
		return call{redisstore.SettleScript, []string{ck, zk, mk}, []any{later, "r1", actual, markTTL, keyTTL}}
	}
	tests := []struct {
		name string
		call call
	}{
		{"ReserveNegative", reserve("-1", "100", "1")},
		{"ReserveFraction", reserve("12.5", "100", "1")},
		{"ReserveExponent", reserve("1e3", "100", "1")},
		{"ReserveBeyondInt64", reserve("9223372036854775808", "100", "1")},
		{"ReserveEmpty", reserve("", "100", "1")},
		{"ReserveLimitNotAnAmount", reserve("1", "lots", "1")},
		{"ReserveEnforceNotABit", reserve("1", "100", "yes")},
		{"ReserveMissingArgument", call{redisstore.ReserveScript, []string{ck, zk, mk}, []any{later, "r1", "1", later, 1, 1, 100, 0}}},
		{"ReserveKeysMismatch", call{redisstore.ReserveScript, []string{ck}, []any{later, "r1", "1", later, 1, 1, 100, 0, 0}}},
		{"ReserveEmptyID", call{redisstore.ReserveScript, []string{ck, zk, mk}, []any{later, "", "1", later, 1, 1, 100, 0, 0}}},
		{"ReserveWithoutMarker", call{redisstore.ReserveScript, []string{ck, zk}, []any{later, "r1", "1", later, 1, 1, 100, 0, 0}}},
		{"ReserveNowNegative", call{redisstore.ReserveScript, []string{ck, zk, mk}, []any{"-5", "r1", "1", later, 1, 1, 100, 0, 0}}},
		{"ExtendNegative", extend("-1", "100", later)},
		{"ExtendFraction", extend("0.5", "100", later)},
		{"ExtendBeyondInt64", extend("9223372036854775808", "100", later)},
		{"ExtendLimitNotAnAmount", extend("1", "-100", later)},
		{"ExtendExpiryNotANumber", extend("1", "100", "later")},
		{"ExtendKeysMismatch", call{redisstore.ExtendScript, []string{ck}, []any{later, "r1", "1", later, 1, 1, 100, 0, 0}}},
		{"ExtendWithoutMarker", call{redisstore.ExtendScript, []string{ck, zk}, []any{later, "r1", "1", later, 1, 1, 100, 0, 0}}},
		{"ExtendEmptyID", call{redisstore.ExtendScript, []string{ck, zk, mk}, []any{later, "", "1", later, 1, 1, 100, 0, 0}}},
		{"SettleNegative", settle("-1000000000", "900000", "0")},
		{"SettleFraction", settle("0.5", "900000", "0")},
		{"SettleBeyondInt64", settle("99999999999999999999", "900000", "0")},
		{"SettleMarkerTTLNotANumber", settle("1", "soon", "0")},
		{"SettleKeyTTLNegative", settle("1", "900000", "-1")},
		{"SettleKeysMismatch", call{redisstore.SettleScript, []string{ck, mk}, []any{later, "r1", "1", "900000", "0"}}},
		{"UsageCountMismatch", call{redisstore.UsageScript, []string{ck, zk}, []any{later, 2, 0}}},
		{"UsageNowNotANumber", call{redisstore.UsageScript, []string{ck, zk}, []any{"now", 1, 0}}},
	}
	before := dump(t, c, prefix)
	require.Len(t, before, 3) // the counter, its reservations, seed's marker
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call.script.Run(ctx, c, tt.call.keys, tt.call.args...).Err()
			require.Error(t, err)
			assert.Contains(t, err.Error(), "spendguard:")
			assert.Equal(t, before, dump(t, c, prefix))
		})
	}
	u, err := s.Usage(ctx, []budget.Item{a}, t0.Add(2*time.Second))
	require.NoError(t, err)
	assert.Equal(t, []budget.Counter{{Committed: money.PerUSD}}, u, "a valid call still sweeps")
}
