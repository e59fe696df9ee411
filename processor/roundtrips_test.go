package processor_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/processor"
	"github.com/spendguard/spendguard/test/loadgen/workload"
	"github.com/spendguard/spendguard/test/redistest"
)

// commandCounter counts the commands a go-redis client sends: each one is
// a round trip to Redis (the store sends no pipelines).
type commandCounter struct{ n atomic.Int64 }

func (c *commandCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *commandCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		if cmd.Name() != "hello" { // a new connection's handshake, not a store call
			c.n.Add(1)
		}
		return next(ctx, cmd)
	}
}

func (c *commandCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// TestRedisRoundTripsPerPhase counts the Redis commands of one request of
// the load generator, phase by phase, on the configuration it runs (three
// budgets, one with a soft-cap downgrade for the model): one to check the
// budgets at the request headers (the contract's 402 before the body),
// one to admit at the body, none at the response headers, one to settle.
// Past the soft cap, admitting takes three: the reservation, its release,
// the reservation for the cheaper model. It counts round trips, not time.
func TestRedisRoundTripsPerPhase(t *testing.T) {
	base := workload.Config(workload.StoreSection(workload.Memory, "", ""))
	pastSoftCap := strings.Replace(base, "soft_usd: 900000", "soft_usd: 0", 1)
	require.NotEqual(t, base, pastSoftCap)
	for _, tc := range []struct {
		name, config string
		want         []int64 // per message: request headers, body, response headers, response body
	}{
		{"below the soft caps", base, []int64{1, 1, 0, 1}},
		{"past a soft cap", pastSoftCap, []int64{1, 3, 0, 1}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext, counter := redisProcessor(t, tc.config)
			lifecycle(t, ext, counter) // Redis learns the scripts (EVALSHA, then EVAL once)
			assert.Equal(t, tc.want, lifecycle(t, ext, counter))
		})
	}
}

// redisProcessor serves a processor with the Redis store over gRPC and
// counts the commands its store sends.
func redisProcessor(t *testing.T, yaml string) (extprocv3.ExternalProcessorClient, *commandCounter) {
	t.Helper()
	client, prefix := redistest.Shared(t)
	counter := &commandCounter{}
	client.AddHook(counter)
	store := redisstore.New(client, redisstore.Options{KeyPrefix: prefix, Timeout: 5 * time.Second})
	return serveCounted(t, yaml, store), counter
}

// serveCounted serves a processor on store (serveHarness) without a
// reporter, since these tests run more requests than its channel holds.
func serveCounted(t *testing.T, yaml string, store budget.Store) extprocv3.ExternalProcessorClient {
	t.Helper()
	cfg, err := config.Parse([]byte(yaml))
	require.NoError(t, err)
	return serveHarness(t, cfg, cfg.Snapshot, store, func(o *processor.Options) { o.Reporter = nil }).client
}

// lifecycle runs the load generator's non-streaming request and returns
// the commands counted while each message was answered.
func lifecycle(t *testing.T, ext extprocv3.ExternalProcessorClient, counter *commandCounter) []int64 {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	s, err := ext.Process(ctx)
	require.NoError(t, err)
	var calls []int64
	for i, m := range workload.Messages(workload.JSON) {
		before := counter.n.Load()
		require.NoError(t, s.Send(m))
		ans, err := s.Recv()
		require.NoError(t, err)
		require.Nil(t, ans.GetImmediateResponse(), "message %d refused", i)
		calls = append(calls, counter.n.Load()-before)
	}
	require.NoError(t, s.CloseSend())
	_, err = s.Recv()
	require.Error(t, err, "the processor ends the stream")
	return calls
}
