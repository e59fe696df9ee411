package redisstore_test

import (
	"context"
	"math/rand/v2"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/lease/leasetest"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/test/redistest"
)

// leaseState reads counter key's lease state from Redis in the Model's
// terms.
func leaseState(t testing.TB, c *redis.Client, s *redisstore.Store, key string) leasetest.State {
	t.Helper()
	ctx := context.Background()
	fields, err := c.HGetAll(ctx, s.CounterKey(key)).Result()
	require.NoError(t, err)
	members, err := c.ZRangeWithScores(ctx, s.HoldersKey(key), 0, -1).Result()
	require.NoError(t, err)
	amount := func(v string) money.Nano {
		n, err := strconv.ParseInt(v, 10, 64)
		require.NoError(t, err, "%s: %q", key, v)
		return money.Nano(n)
	}
	out := leasetest.State{Holders: map[string]leasetest.Holder{}}
	for f, v := range fields {
		kind, id, _ := strings.Cut(f, ":")
		h := out.Holders[id]
		switch kind {
		case "c":
			out.Committed = amount(v)
			continue
		case "l":
			if id == "" {
				out.Leased = amount(v)
				continue
			}
			h.Lease = amount(v)
		case "q":
			if id == "" {
				out.Reserved = amount(v)
				continue
			}
			h.Reserved = amount(v)
		case "f":
			h.Forfeit = amount(v)
		case "y":
			h.Synced = amount(v)
		case "k":
			h.Kept = amount(v)
		case "s":
			n, err := strconv.ParseUint(v, 10, 64)
			require.NoError(t, err)
			h.Seq = n
		default:
			continue
		}
		out.Holders[id] = h
	}
	for _, z := range members {
		id := z.Member.(string)
		h := out.Holders[id]
		h.Expiry = int64(z.Score)
		out.Holders[id] = h
	}
	return out
}

// randomRequests is the property test's input for seed: about n calls.
func randomRequests(seed uint64, n int) []byte {
	r := rand.New(rand.NewPCG(seed, 7))
	data := make([]byte, 16*n)
	for i := range data {
		data[i] = byte(r.Uint32())
	}
	return data
}

// TestLeaseMatchesModel: random sequences of Sync and SettleForfeit
// calls (leasetest.Calls: 4 holders, 3 counters, huge amounts, leases
// expiring) give the same replies on Redis as on the Model, the same
// state on every counter after every call, and keep the cap invariant
// (leasetest.CheckCalls).
func TestLeaseMatchesModel(t *testing.T) {
	for seed := range uint64(100) {
		t.Run(strconv.FormatUint(seed, 10), func(t *testing.T) {
			s, c, _ := newStore(t)
			calls := leasetest.Calls(randomRequests(seed, 60))
			require.NotEmpty(t, calls)
			leasetest.CheckCalls(t, s, func(k string) leasetest.State { return leaseState(t, c, s, k) }, calls)
		})
	}
}

// FuzzSyncLease is TestLeaseMatchesModel on any input. The executions
// share one client and prefix, each with keys of its own, deleted after
// it.
func FuzzSyncLease(f *testing.F) {
	for seed := range uint64(8) {
		f.Add(randomRequests(seed, 20))
	}
	f.Add([]byte{})
	c, prefix := redistest.Shared(f)
	var runs atomic.Int64
	f.Fuzz(func(t *testing.T, data []byte) {
		s := redisstore.New(c, redisstore.Options{KeyPrefix: prefix + strconv.FormatInt(runs.Add(1), 10) + ":", Timeout: testTimeout})
		t.Cleanup(func() {
			var keys []string
			for _, k := range leasetest.RandomKeys {
				keys = append(keys, s.CounterKey(k), s.HoldersKey(k))
			}
			require.NoError(t, c.Del(context.Background(), keys...).Err())
		})
		leasetest.CheckCalls(t, s, func(k string) leasetest.State { return leaseState(t, c, s, k) }, leasetest.Calls(data))
	})
}
