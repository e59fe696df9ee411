package redisstore

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
)

// ReadyProbeTTL is the lifetime of the key the readiness probe writes
// (P {epoch...}ready, next to each epoch key).
const ReadyProbeTTL = 10 * time.Second

// Ping reports whether the store is ready: it accepts writes and still
// holds its data. It writes a small key with a short time to live on
// every primary (each cluster master), then compares the epochs. A
// read-only replica (READONLY), a server loading its data set (LOADING),
// a key routed across slots (CROSSSLOT), a timeout or any other error
// makes it fail with an error naming the cause; a lost store fails with
// an error wrapping budget.ErrStoreLost.
func (g *Guard) Ping(ctx context.Context) error {
	if err := g.LostErr(); err != nil {
		return err
	}
	if err := g.establish(ctx, false); err != nil {
		return probeError(err)
	}
	g.mu.Lock()
	shards := g.shards
	g.mu.Unlock()
	for _, sh := range shards {
		if err := g.probe(ctx, sh.tag); err != nil {
			return probeError(err)
		}
	}
	if err := g.check(ctx); err != nil {
		return probeError(err)
	}
	return nil
}

func (g *Guard) probe(ctx context.Context, tag string) error {
	ctx, cancel := context.WithTimeout(ctx, g.timeout)
	defer cancel()
	if err := g.client.Set(ctx, g.readyKey(tag), "1", ReadyProbeTTL).Err(); err != nil {
		return fmt.Errorf("write probe %s: %w", g.readyKey(tag), err)
	}
	return nil
}

// probeError names what a readiness failure means.
func probeError(err error) error {
	msg := err.Error()
	var ne net.Error
	why := ""
	switch {
	case errors.Is(err, budget.ErrStoreLost):
		return err
	case strings.Contains(msg, "READONLY"):
		why = "the node is a read-only replica (READONLY)"
	case strings.Contains(msg, "LOADING"):
		why = "Redis is loading its data set (LOADING)"
	case strings.Contains(msg, "CROSSSLOT"):
		why = "the keys are in different cluster slots (CROSSSLOT)"
	case strings.Contains(msg, "MASTERDOWN"), strings.Contains(msg, "CLUSTERDOWN"):
		why = "the primary is down"
	case errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()):
		why = "timed out"
	default:
		why = "does not accept writes"
	}
	return fmt.Errorf("redis not ready: %s: %w", why, err)
}

// EvictionOK is the only maxmemory-policy under which Redis never drops a
// counter by itself.
const EvictionOK = "noeviction"

// CheckEviction reads maxmemory-policy on the primary (every cluster
// master). A policy other than noeviction is an error unless allow, in
// which case it is logged as a warning: under volatile-* policies Redis
// evicts the counters that have a time to live, under allkeys-* any key,
// and a tenant whose counter was evicted is admitted again as if it had
// spent nothing. When the policy cannot be read (CONFIG renamed or denied
// on managed Redis, or Redis not answering yet) a warning says so and nil
// is returned.
func CheckEviction(ctx context.Context, client redis.UniversalClient, timeout time.Duration, allow bool, log *zap.Logger) error {
	if log == nil {
		log = zap.NewNop()
	}
	policies, err := evictionPolicies(ctx, client, timeout)
	if err != nil {
		log.Warn("could not check the Redis maxmemory-policy (spendguard needs noeviction); starting anyway", zap.Error(err))
		return nil
	}
	var bad []string
	for node, p := range policies {
		if p != EvictionOK {
			bad = append(bad, node+": "+p)
		}
	}
	if len(bad) == 0 {
		return nil
	}
	if allow {
		log.Warn("Redis may evict spendguard's counters (maxmemory-policy is not noeviction); allowed by store.redis.allow_eviction",
			zap.Strings("policies", bad))
		return nil
	}
	return fmt.Errorf("store.redis: Redis maxmemory-policy is %s, not noeviction: under memory pressure Redis would evict budget counters (volatile-* the ones with a time to live, allkeys-* any), and a tenant that had exhausted its budget would be admitted again; set maxmemory-policy noeviction, or store.redis.allow_eviction: true to accept that", strings.Join(bad, ", "))
}

func evictionPolicies(ctx context.Context, client redis.UniversalClient, timeout time.Duration) (map[string]string, error) {
	get := func(ctx context.Context, c redis.Cmdable) (string, error) {
		ctx, cancel := context.WithTimeout(ctx, timeout)
		defer cancel()
		m, err := c.ConfigGet(ctx, "maxmemory-policy").Result()
		if err != nil {
			return "", fmt.Errorf("CONFIG GET maxmemory-policy: %w", err)
		}
		p, ok := m["maxmemory-policy"]
		if !ok {
			return "", errors.New("CONFIG GET maxmemory-policy: no value")
		}
		return p, nil
	}
	cc, ok := client.(*redis.ClusterClient)
	if !ok {
		p, err := get(ctx, client)
		if err != nil {
			return nil, err
		}
		return map[string]string{"primary": p}, nil
	}
	var mu sync.Mutex
	out := map[string]string{}
	err := cc.ForEachMaster(ctx, func(ctx context.Context, node *redis.Client) error {
		p, err := get(ctx, node)
		mu.Lock()
		defer mu.Unlock()
		out[node.Options().Addr] = p
		return err
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Collector returns the Guard's metrics: spendguard_store_lost (1 while
// the store is lost) and spendguard_store_losses_total.
func (g *Guard) Collector() prometheus.Collector { return guardCollector{g} }

type guardCollector struct{ g *Guard }

var (
	lostDesc   = prometheus.NewDesc("spendguard_store_lost", "1 while the budget store has lost its data and was not re-established.", nil, nil)
	lossesDesc = prometheus.NewDesc("spendguard_store_losses_total", "Times the budget store was found to have lost its data.", nil, nil)
)

func (c guardCollector) Describe(ch chan<- *prometheus.Desc) { ch <- lostDesc; ch <- lossesDesc }

func (c guardCollector) Collect(ch chan<- prometheus.Metric) {
	lost := 0.0
	if c.g.Lost() {
		lost = 1
	}
	ch <- prometheus.MustNewConstMetric(lostDesc, prometheus.GaugeValue, lost)
	ch <- prometheus.MustNewConstMetric(lossesDesc, prometheus.CounterValue, float64(c.g.Losses()))
}
