package redisstore_test

import (
	"context"
	"fmt"
	"strings"
	"sync"
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

// TestReserveAfterReleaseHoldsNothing: the engine releases the id of a
// Reserve that timed out (a Settle of 0); when that Reserve reaches Redis
// only afterwards, it finds the settle marker and is refused, holding
// nothing, and so is an Extend of the id that arrives after its Settle.
func TestReserveAfterReleaseHoldsNothing(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	a := item("a", 10*money.PerUSD, t0.Add(time.Hour))
	items := []budget.Item{a}

	require.NoError(t, s.Settle(ctx, "late", 0, items, t0), "the release arrives first")
	_, err := s.Reserve(ctx, "late", 4*money.PerUSD, items, time.Minute, t0)
	require.ErrorIs(t, err, budget.ErrDuplicateReservation)
	assert.Contains(t, err.Error(), "settled")
	u, err := s.Usage(ctx, items, t0)
	require.NoError(t, err)
	assert.Equal(t, []budget.Counter{{}}, u, "the late reserve holds nothing")
	assert.Empty(t, reservationFields(t, c, s, a.Key))

	out, err := s.Reserve(ctx, "streamed", money.PerUSD, items, time.Minute, t0)
	require.NoError(t, err)
	require.True(t, out.OK())
	require.NoError(t, s.Settle(ctx, "streamed", money.PerUSD/2, items, t0))
	granted, _, err := s.Extend(ctx, "streamed", 3*money.PerUSD, items, time.Minute, t0)
	require.ErrorIs(t, err, budget.ErrSettled, "an extend that arrives after the settle")
	assert.Zero(t, granted)
	u, err = s.Usage(ctx, items, t0)
	require.NoError(t, err)
	assert.Equal(t, []budget.Counter{{Committed: money.PerUSD / 2}}, u)
	assert.Empty(t, reservationFields(t, c, s, a.Key))
}

// reservationFields are the "i:" fields (live reservation amounts) of
// counter key k.
func reservationFields(t *testing.T, c *redis.Client, s *redisstore.Store, k string) []string {
	t.Helper()
	fields, err := c.HKeys(context.Background(), s.CounterKey(k)).Result()
	require.NoError(t, err)
	var out []string
	for _, f := range fields {
		if strings.HasPrefix(f, "i:") {
			out = append(out, f)
		}
	}
	return out
}

// TestStallLeavesNoPhantomReservations is issue 20's measurement as a
// test: Redis stalls for 0.4 s while a burst of requests reserves with a
// 50 ms store timeout. Every Reserve times out, yet Redis runs each one
// once it wakes. Without the background release those reservations hold
// the budget for the reservation TTL and refuse the next requests; with
// it, the counter ends with nothing reserved and no reservation field,
// and the next burst is admitted exactly up to the cap.
func TestStallLeavesNoPhantomReservations(t *testing.T) {
	const burst, capUSD = 40, 50
	// run stalls a fresh Redis during the burst on e (a 50 ms store
	// timeout); calm is an engine on the same keys, with a client c whose
	// timeout never fires, to read and probe them.
	run := func(t *testing.T, release bool) (e, calm *budget.Engine, s *redisstore.Store, c *redis.Client, p *budget.Policies) {
		srv := redistest.Start(t, redistest.DebugArgs()...)
		// the client spendguard serve opens, with the 50 ms timeout
		opts, err := redisstore.ClientOptions(budget.RedisConfig{Address: srv.Addr,
			Timeout:     budget.Duration{Value: 50 * time.Millisecond, Set: true},
			DialTimeout: budget.Duration{Value: 5 * time.Second, Set: true},
			PoolSize:    2 * burst})
		require.NoError(t, err)
		hurried := redis.NewClient(opts)
		t.Cleanup(func() { hurried.Close() })
		redistest.WarmPool(t, hurried, burst) // a busy replica's pool
		c = redis.NewClient(&redis.Options{Addr: srv.Addr, MaxRetries: -1, DisableIdentity: true, ContextTimeoutEnabled: true})
		t.Cleanup(func() { c.Close() })
		p, err = budget.Compile([]budget.Config{{Name: "fleet", Period: "total", HardUSD: budget.USDOf(capUSD * money.PerUSD)}}, budget.Limits{})
		require.NoError(t, err)
		s = redisstore.New(hurried, redisstore.Options{KeyPrefix: "t:", Timeout: 50 * time.Millisecond})
		e = budget.NewEngine(s, nil)
		calm = budget.NewEngine(redisstore.New(c, redisstore.Options{KeyPrefix: "t:", Timeout: 10 * time.Second}), nil)
		if release {
			e.RetrySettles(budget.SettleRetry{Backoff: 20 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
			t.Cleanup(func() { e.Close() }) // a release whose answer was lost may still be retrying
		}
		ctx := context.Background()
		scopes := p.Applicable(nil)
		// load the scripts, so that nothing waits for a NOSCRIPT round trip
		res, _, err := calm.Reserve(ctx, p, scopes, "m", 0, "warm")
		require.NoError(t, err)
		_, err = calm.Extend(ctx, res, 0, time.Minute)
		require.NoError(t, err)
		require.NoError(t, calm.Settle(ctx, res, 0))

		woke := srv.Stall(400 * time.Millisecond)
		var wg sync.WaitGroup
		var mu sync.Mutex
		failed := 0
		for i := range burst {
			wg.Go(func() {
				_, rej, err := e.Reserve(ctx, p, scopes, "m", money.PerUSD, fmt.Sprint("stalled-", i))
				assert.Nil(t, rej)
				if err != nil {
					mu.Lock()
					failed++
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		<-woke
		assert.Equal(t, burst, failed, "every reserve timed out during the stall")
		return e, calm, s, c, p
	}

	t.Run("WithoutRelease", func(t *testing.T) {
		_, calm, s, c, p := run(t, false)
		scope := p.Applicable(nil)[0]
		require.Eventually(t, func() bool { // Redis ran every reserve once it woke
			st, err := calm.Status(context.Background(), []budget.Scope{scope})
			return err == nil && st[0].Reserved == burst*money.PerUSD
		}, 5*time.Second, 5*time.Millisecond, "the timed-out reserves hold %d USD of the %d USD cap", burst, capUSD)
		assert.Len(t, reservationFields(t, c, s, counterKeyOf(t, calm, p)), burst, "reservations nobody owns, for the TTL")
	})

	t.Run("WithRelease", func(t *testing.T) {
		e, calm, s, c, p := run(t, true)
		scope := p.Applicable(nil)[0]
		key := counterKeyOf(t, calm, p)
		require.Eventually(t, func() bool {
			return e.Released() == burst
		}, 5*time.Second, 5*time.Millisecond, "every timed-out reserve is released")
		require.Eventually(t, func() bool {
			st, err := calm.Status(context.Background(), []budget.Scope{scope})
			if err != nil || st[0].Reserved != 0 {
				return false
			}
			return len(reservationFields(t, c, s, key)) == 0
		}, 10*time.Second, 10*time.Millisecond, "nothing left reserved")
		n, err := c.ZCard(context.Background(), s.ReservationsKey(key)).Result()
		require.NoError(t, err)
		assert.Zero(t, n, "no live reservation id left")

		// The next burst, on a store with a generous timeout, is admitted
		// exactly up to the cap: no false refusals.
		var wg sync.WaitGroup
		var mu sync.Mutex
		admitted, refused := 0, 0
		for i := range capUSD + 10 {
			wg.Go(func() {
				res, rej, err := calm.Reserve(context.Background(), p, p.Applicable(nil), "m", money.PerUSD, fmt.Sprint("next-", i))
				if !assert.NoError(t, err) {
					return
				}
				mu.Lock()
				defer mu.Unlock()
				if res != nil {
					admitted++
				}
				if rej != nil {
					refused++
				}
			})
		}
		wg.Wait()
		assert.Equal(t, capUSD, admitted, "admitted up to the cap")
		assert.Equal(t, 10, refused)
		st, err := calm.Status(context.Background(), []budget.Scope{scope})
		require.NoError(t, err)
		assert.Equal(t, capUSD*money.PerUSD, st[0].Reserved)
	})
}

// counterKeyOf is the counter key of the one scope of p.
func counterKeyOf(t *testing.T, e *budget.Engine, p *budget.Policies) string {
	t.Helper()
	res, _, err := e.Reserve(context.Background(), p, p.Applicable(nil), "m", 0, fmt.Sprint("probe-", time.Now().UnixNano()))
	require.NoError(t, err)
	require.Len(t, res.Items, 1)
	require.NoError(t, e.Settle(context.Background(), res, 0))
	return res.Items[0].Key
}
