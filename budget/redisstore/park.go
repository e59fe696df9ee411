package redisstore

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendguard/spendguard/budget"
)

// Parked records (budget.Parker) are two kinds of keys under the prefix P:
//
//	P {park}p:K  string: the record parked under key K, expiring
//	             ParkGrace after its deadline (a safety net for a fleet
//	             that stopped sweeping; the sweep normally removes it at
//	             the deadline)
//	P {park}pq   sorted set: every parked key, scored by its deadline in
//	             Unix microseconds
//
// Each call is one script, so a record is returned to exactly one of the
// replicas racing for it. The {park} hash tag puts every one of these
// keys in one Redis Cluster slot, so that the sweep's script, which reads
// the records the queue names, stays on one node.

// ParkGrace is how long a parked record outlives its deadline in Redis
// when no replica pops it.
const ParkGrace = 24 * time.Hour

var _ budget.Parker = (*Store)(nil)

// ParkedKey and ParkQueueKey are the Redis keys of parked key k and of the
// deadline queue.
func (s *Store) ParkedKey(k string) string { return s.prefix + "{park}p:" + k }
func (s *Store) ParkQueueKey() string      { return s.prefix + "{park}pq" }

// parkScript: KEYS record, queue; ARGV record, deadline µs, key, lifetime ms.
var parkScript = redis.NewScript(`
if redis.call('EXISTS', KEYS[1]) == 1 then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[4])
redis.call('ZADD', KEYS[2], ARGV[2], ARGV[3])
return 1
`)

// takeScript: KEYS record, queue; ARGV key.
var takeScript = redis.NewScript(`
local v = redis.call('GET', KEYS[1])
if not v then return false end
redis.call('DEL', KEYS[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return v
`)

// popScript: KEYS queue; ARGV now µs, max, record key prefix. It returns
// key, record, deadline triples; a queued key whose record Redis already
// dropped (ParkGrace) is removed and skipped.
var popScript = redis.NewScript(`
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'WITHSCORES', 'LIMIT', 0, ARGV[2])
local out = {}
for i = 1, #due, 2 do
  local k = due[i]
  redis.call('ZREM', KEYS[1], k)
  local rk = ARGV[3] .. k
  local v = redis.call('GET', rk)
  if v then
    redis.call('DEL', rk)
    out[#out + 1] = k
    out[#out + 1] = v
    out[#out + 1] = due[i + 1]
  end
end
return out
`)

// Park implements budget.Parker.
func (s *Store) Park(ctx context.Context, key string, record []byte, deadline time.Time) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if key == "" || record == nil {
		return fmt.Errorf("%w: park key %q with a nil record", budget.ErrInvalidArgument, key)
	}
	life := (max(time.Until(deadline), 0) + ParkGrace).Milliseconds()
	ok, err := s.run(ctx, parkScript, []string{s.ParkedKey(key), s.ParkQueueKey()},
		[]any{record, micros(deadline), key, life}).Int64()
	if err != nil {
		return fmt.Errorf("redis park: %w", err)
	}
	if ok == 0 {
		return fmt.Errorf("%w: %q", budget.ErrParked, key)
	}
	return nil
}

// Take implements budget.Parker.
func (s *Store) Take(ctx context.Context, key string) ([]byte, bool, error) {
	if err := ctx.Err(); err != nil {
		return nil, false, err
	}
	v, err := s.run(ctx, takeScript, []string{s.ParkedKey(key), s.ParkQueueKey()}, []any{key}).Text()
	if errors.Is(err, redis.Nil) {
		return nil, false, nil
	}
	if err != nil {
		return nil, false, fmt.Errorf("redis take: %w", err)
	}
	return []byte(v), true, nil
}

// PopExpired implements budget.Parker. The script reads the record keys
// named by the queue, which share its hash tag (one slot in Redis
// Cluster).
func (s *Store) PopExpired(ctx context.Context, now time.Time, limit int) ([]budget.Parked, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	reply, err := s.run(ctx, popScript, []string{s.ParkQueueKey()}, []any{micros(now), limit, s.ParkedKey("")}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis pop expired: %w", err)
	}
	if len(reply)%3 != 0 {
		return nil, errors.New("redis pop expired: unexpected reply length")
	}
	out := make([]budget.Parked, 0, len(reply)/3)
	for i := 0; i < len(reply); i += 3 {
		us, err := strconv.ParseFloat(reply[i+2], 64)
		if err != nil {
			return nil, fmt.Errorf("redis pop expired: deadline %q: %w", reply[i+2], err)
		}
		out = append(out, budget.Parked{Key: reply[i], Record: []byte(reply[i+1]), Deadline: time.UnixMicro(int64(us))})
	}
	return out, nil
}
