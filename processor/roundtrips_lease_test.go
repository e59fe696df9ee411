package processor_test

import (
	"context"
	"strings"
	"testing"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/lease"
	"github.com/spendguard/spendguard/budget/redisstore"
	"github.com/spendguard/spendguard/test/loadgen/workload"
	"github.com/spendguard/spendguard/test/redistest"
)

// TestLeaseRoundTripsPerPhase counts the Redis commands of the load
// generator's request with budget leases (the Redis store's default):
// once a replica holds leases on the request's counters, a request far
// from its caps costs no round trip at the headers or at the response,
// and at the body only the lease refills (far fewer than one in ten
// requests, however quick they come), and the spend reaches Redis with
// the next sync, one command per counter whatever the number of
// requests. Past a soft cap too: the downgrade is decided within the
// leases.
func TestLeaseRoundTripsPerPhase(t *testing.T) {
	base := workload.Config(workload.StoreSection(workload.Memory, "", ""))
	pastSoftCap := strings.Replace(base, "soft_usd: 900000", "soft_usd: 0", 1)
	for _, tc := range []struct{ name, config string }{
		{"below the soft caps", base},
		{"past a soft cap", pastSoftCap},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ext, counter, ls := leaseProcessor(t, tc.config)
			lifecycle(t, ext, counter) // the first request takes the leases
			before := counter.n.Load()
			const n = 100
			for range n {
				calls := lifecycle(t, ext, counter)
				assert.Zero(t, calls[0], "the headers check is answered from the leases")
				assert.Zero(t, calls[2]+calls[3], "settling is local")
			}
			perRequest := float64(counter.n.Load()-before) / n
			t.Logf("%.2f Redis commands per request (lease refills)", perRequest)
			assert.LessOrEqual(t, perRequest, 0.1)
			before = counter.n.Load()
			require.NoError(t, ls.Flush(context.Background()))
			synced := counter.n.Load() - before
			assert.Positive(t, synced, "the spend is sent")
			assert.LessOrEqual(t, synced, int64(ls.Stats().Counters), "one command per counter")
		})
	}
}

func leaseProcessor(t *testing.T, yaml string) (extprocv3.ExternalProcessorClient, *commandCounter, *lease.Store) {
	t.Helper()
	client, prefix := redistest.Shared(t)
	counter := &commandCounter{}
	client.AddHook(counter)
	rs := redisstore.New(client, redisstore.Options{KeyPrefix: prefix, Timeout: 5 * time.Second})
	ls := lease.New(rs, lease.Options{SyncInterval: -1})
	t.Cleanup(func() { _ = ls.Close(context.Background()) })
	return serveCounted(t, yaml, ls), counter, ls
}
