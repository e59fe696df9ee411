package redisstore_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/budget/redisstore"
)

func TestSamplesAppendTrimsAndExpires(t *testing.T) {
	s, c, _ := newStore(t)
	ctx := context.Background()
	key := estimate.Key("meta-llama/Llama-3.1-8B-Instruct", "chat_completions")
	require.NoError(t, s.AppendSamples(ctx, []estimate.Batch{{Key: key, Values: []int64{1, 2, 3}}, {Key: "b\x00e", Values: []int64{9}}, {Key: "empty\x00e"}}, 4))
	require.NoError(t, s.AppendSamples(ctx, []estimate.Batch{{Key: key, Values: []int64{4, 5}}}, 4))

	list, err := c.LRange(ctx, s.SamplesKey(key), 0, -1).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{"2", "3", "4", "5"}, list, "a capped list, oldest first")
	for _, k := range []string{s.SamplesKey(key), s.SampleIndexKey()} {
		ttl, err := c.PTTL(ctx, k).Result()
		require.NoError(t, err)
		assert.InDelta(t, redisstore.SampleTTL.Seconds(), ttl.Seconds(), 60, k)
	}

	got, err := s.LoadSamples(ctx, 4)
	require.NoError(t, err)
	assert.Equal(t, map[string][]int64{key: {2, 3, 4, 5}, "b\x00e": {9}}, got, "a batch without values writes nothing")
	got, err = s.LoadSamples(ctx, 3)
	require.NoError(t, err)
	assert.Equal(t, []int64{3, 4, 5}, got[key])

	// A list Redis dropped leaves the index at the next load; a value
	// something else wrote is skipped.
	require.NoError(t, c.Del(ctx, s.SamplesKey("b\x00e")).Err())
	require.NoError(t, c.RPush(ctx, s.SamplesKey(key), "garbage", "-3").Err())
	got, err = s.LoadSamples(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, map[string][]int64{key: {2, 3, 4, 5}}, got)
	members, err := c.SMembers(ctx, s.SampleIndexKey()).Result()
	require.NoError(t, err)
	assert.Equal(t, []string{key}, members)

	assert.Error(t, s.AppendSamples(ctx, []estimate.Batch{{Key: key, Values: []int64{1}}}, 0))
	_, err = s.LoadSamples(ctx, 0)
	assert.Error(t, err)
}

func TestSamplesAppendManyValuesInOneCall(t *testing.T) {
	s, _, _ := newStore(t)
	ctx := context.Background()
	vs := make([]int64, estimate.MaxPending)
	for i := range vs {
		vs[i] = int64(i)
	}
	require.NoError(t, s.AppendSamples(ctx, []estimate.Batch{{Key: "m\x00e", Values: vs}}, estimate.MaxWindow))
	got, err := s.LoadSamples(ctx, estimate.MaxWindow)
	require.NoError(t, err)
	assert.Equal(t, vs, got["m\x00e"], "more values than one RPUSH takes")
}

// Two replicas on one Redis learn from each other's traffic, and a
// replica started later starts from what the fleet learned.
func TestEstimatorsShareThroughRedis(t *testing.T) {
	s, c, prefix := newStore(t)
	ctx := context.Background()
	other := redisstore.New(c, redisstore.Options{KeyPrefix: prefix, Timeout: testTimeout})
	cfg := estimate.Config{Quantile: 0.95, Window: 50, MinSamples: 20}
	a, err := estimate.New(cfg, estimate.Options{Samples: s})
	require.NoError(t, err)
	b, err := estimate.New(cfg, estimate.Options{Samples: other})
	require.NoError(t, err)
	for i := range int64(10) {
		a.Observe("m", "chat_completions", 100+i)
		b.Observe("m", "chat_completions", 1000+i)
	}
	require.NoError(t, a.Flush(ctx))
	require.NoError(t, b.Flush(ctx))
	_, _, ok := a.Estimate("m", "chat_completions")
	require.False(t, ok, "10 samples of its own")

	require.NoError(t, a.Load(ctx))
	require.NoError(t, b.Load(ctx))
	for _, e := range []*estimate.Estimator{a, b} {
		got, n, ok := e.Estimate("m", "chat_completions")
		assert.True(t, ok)
		assert.Equal(t, 20, n)
		assert.Equal(t, int64(1008), got, "p95 of both replicas' samples: the 19th of 20")
	}

	restarted, err := estimate.New(cfg, estimate.Options{Samples: redisstore.New(c, redisstore.Options{KeyPrefix: prefix, Timeout: time.Second})})
	require.NoError(t, err)
	require.NoError(t, restarted.Load(ctx))
	got, n, ok := restarted.Estimate("m", "chat_completions")
	assert.True(t, ok)
	assert.Equal(t, 20, n)
	assert.Equal(t, int64(1008), got)
}
