package redisstore

import (
	"context"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// raiseScript: KEYS counter hash; ARGV committed, key ttl ms. It raises
// committed to at least the amount, never lowering it or adding to it,
// and returns 1 when it raised it.
var raiseScript = redis.NewScript(prelude + `
local xh, xl = pair(ARGV[1], 'committed')
local ttl = int(ARGV[2], 'key ttl')
local v = redis.call('HGET', KEYS[1], 'c')
local ch, cl = stored(v, KEYS[1])
if not less(ch, cl, xh, xl) then return 0 end
redis.call('HSET', KEYS[1], 'c', str(xh, xl))
keep(KEYS[1], ttl)
return 1
`)

// RaiseCommitted raises the committed amount of it's counter to at least
// committed, in one call on that counter's keys: the rebuild of a Redis
// that lost its data, from the ledger's sums of the current periods.
// Raising, never adding, makes a rebuild safe to run twice, and by
// several replicas at once, and keeps spend counted since the loss when
// the ledger has it too. It reports whether the counter was raised.
func (s *Store) RaiseCommitted(ctx context.Context, it budget.Item, committed money.Nano, now time.Time) (bool, error) {
	if committed < 0 || it.Key == "" {
		return false, fmt.Errorf("%w: raise %q to %v", budget.ErrInvalidArgument, it.Key, committed)
	}
	n, err := s.run(ctx, raiseScript, []string{s.CounterKey(it.Key)}, []any{int64(committed), keyTTL(it, now, 0)}).Int()
	if err != nil {
		return false, fmt.Errorf("redis raise: %w", err)
	}
	return n == 1, nil
}
