package redisstore

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// claimScript takes KEYS[1] for owner ARGV[1] for ARGV[2] milliseconds
// unless another owner has it: 1 when the caller holds it (new, or
// already its own), 0 when someone else does.
var claimScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then
  redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2])
  return 1
end
if v == ARGV[1] then return 1 end
return 0`)

// Claim makes owner the one replica that acts on name (an alert to send
// once per period across the fleet) until ttl has passed: true when owner
// holds it (it took it now, or had taken it before — a retry), false when
// another owner does. The key is P claim:{name}; one key, so any Redis
// Cluster slot serves it.
func (s *Store) Claim(ctx context.Context, name, owner string, ttl time.Duration) (bool, error) {
	if name == "" || owner == "" || ttl <= 0 {
		return false, errors.New("redis claim: a name, an owner and a positive ttl are needed")
	}
	n, err := s.run(ctx, claimScript, []string{s.prefix + "claim:{" + name + "}"}, []any{owner, ttl.Milliseconds()}).Int()
	if err != nil {
		return false, fmt.Errorf("redis claim: %w", err)
	}
	return n == 1, nil
}
