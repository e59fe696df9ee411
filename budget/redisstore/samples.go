package redisstore

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/spendguard/spendguard/budget/estimate"
)

// The learned output estimates (estimate.Samples) are two kinds of keys
// under the prefix P:
//
//	P {est}e:K  list: the newest completion token counts of estimate
//	            key K (a model and an endpoint), oldest first, at most
//	            the window
//	P {est}ek   set: every K that has a list
//
// The {est} hash tag keeps them in one Redis Cluster slot: both scripts
// touch the index and the lists together.
//
// Both live SampleTTL after their last append: the samples of a model no
// longer served go away by themselves. Appending is one script for all
// keys of a flush; loading is one script that reads every list (their
// number is bounded by the models and endpoints served, their length by
// the window).

// SampleTTL is how long the samples of a model and endpoint outlive the
// last completion any replica observed of them.
const SampleTTL = 30 * 24 * time.Hour

// samplePushChunk bounds the values of one RPUSH inside the script (Lua's
// unpack has a limit of a few thousand).
const samplePushChunk = 1000

var _ estimate.Samples = (*Store)(nil)

// SamplesKey and SampleIndexKey are the Redis keys of the list of
// estimate key k and of the set of every such k.
func (s *Store) SamplesKey(k string) string { return s.prefix + "{est}e:" + k }
func (s *Store) SampleIndexKey() string     { return s.prefix + "{est}ek" }

// appendSamplesScript: KEYS index, then one list per batch; ARGV keep,
// lifetime ms, chunk size, then per batch its K, its count and values.
var appendSamplesScript = redis.NewScript(`
local keep, life, chunk = tonumber(ARGV[1]), ARGV[2], tonumber(ARGV[3])
local a = 4
for k = 2, #KEYS do
  local member, n = ARGV[a], tonumber(ARGV[a + 1])
  a = a + 2
  local i = 0
  while i < n do
    local m = math.min(chunk, n - i)
    redis.call('RPUSH', KEYS[k], unpack(ARGV, a + i, a + i + m - 1))
    i = i + m
  end
  a = a + n
  redis.call('LTRIM', KEYS[k], -keep, -1)
  redis.call('PEXPIRE', KEYS[k], life)
  redis.call('SADD', KEYS[1], member)
end
redis.call('PEXPIRE', KEYS[1], life)
return 1
`)

// loadSamplesScript: KEYS index; ARGV keep, list key prefix. It returns
// K, count, values... for every list, and forgets the K whose list Redis
// dropped (SampleTTL). Like PopExpired, it reads keys named by the index.
var loadSamplesScript = redis.NewScript(`
local out = {}
for _, m in ipairs(redis.call('SMEMBERS', KEYS[1])) do
  local vs = redis.call('LRANGE', ARGV[2] .. m, -tonumber(ARGV[1]), -1)
  if #vs == 0 then
    redis.call('SREM', KEYS[1], m)
  else
    out[#out + 1] = m
    out[#out + 1] = tostring(#vs)
    for _, v in ipairs(vs) do out[#out + 1] = v end
  end
end
return out
`)

// AppendSamples implements estimate.Samples: one script appends every
// batch, trims each list to keep and refreshes its SampleTTL.
func (s *Store) AppendSamples(ctx context.Context, batches []estimate.Batch, keep int) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if keep < 1 {
		return fmt.Errorf("redis append samples: keep %d < 1", keep)
	}
	keys := []string{s.SampleIndexKey()}
	args := []any{keep, SampleTTL.Milliseconds(), samplePushChunk}
	for _, b := range batches {
		if len(b.Values) == 0 {
			continue
		}
		keys = append(keys, s.SamplesKey(b.Key))
		args = append(args, b.Key, len(b.Values))
		for _, v := range b.Values {
			args = append(args, v)
		}
	}
	if len(keys) == 1 {
		return nil
	}
	if err := s.run(ctx, appendSamplesScript, keys, args).Err(); err != nil {
		return fmt.Errorf("redis append samples: %w", err)
	}
	return nil
}

// LoadSamples implements estimate.Samples. A value that is not a
// non-negative integer (written by something else) is skipped.
func (s *Store) LoadSamples(ctx context.Context, keep int) (map[string][]int64, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if keep < 1 {
		return nil, fmt.Errorf("redis load samples: keep %d < 1", keep)
	}
	reply, err := s.run(ctx, loadSamplesScript, []string{s.SampleIndexKey()}, []any{keep, s.SamplesKey("")}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redis load samples: %w", err)
	}
	out := map[string][]int64{}
	for i := 0; i+1 < len(reply); {
		key := reply[i]
		n, err := strconv.Atoi(reply[i+1])
		if err != nil || n < 0 || i+2+n > len(reply) {
			return nil, fmt.Errorf("redis load samples: malformed reply for %q", key)
		}
		vs := make([]int64, 0, n)
		for _, text := range reply[i+2 : i+2+n] {
			if v, err := strconv.ParseInt(text, 10, 64); err == nil && v >= 0 {
				vs = append(vs, v)
			}
		}
		out[key] = vs
		i += 2 + n
	}
	return out, nil
}
