package budget_test

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/budget"
)

func parseStore(t *testing.T, src string) budget.StoreConfig {
	t.Helper()
	var f struct {
		Store budget.StoreConfig `yaml:"store"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(src), &f))
	return f.Store
}

func TestStoreConfigDefaults(t *testing.T) {
	c := parseStore(t, "store: {}\n")
	require.NoError(t, c.Validate())
	assert.Equal(t, budget.BackendMemory, c.BackendName())
	assert.False(t, c.FailOpen())
	assert.Equal(t, budget.DefaultKeyPrefix, c.Redis.Prefix())
	assert.Equal(t, budget.DefaultStoreTimeout, c.Redis.CallTimeout())
	assert.Equal(t, budget.DefaultSnapshotInterval, c.Memory.Interval())
}

// TestStoreConfigExample is the store section of the shipped example: a
// memory backend may keep a redis section for later.
func TestStoreConfigExample(t *testing.T) {
	c := parseStore(t, `
store:
  backend: memory
  memory:
    snapshot_path: ""
  redis:
    address: redis:6379
    password: ${SPENDGUARD_REDIS_PASSWORD}
    db: 0
    key_prefix: "spendguard:"
  on_error: fail_closed
`)
	require.NoError(t, c.Validate())
}

func TestStoreConfigFull(t *testing.T) {
	c := parseStore(t, `
store:
  backend: redis
  memory:
    snapshot_path: /var/lib/spendguard/state.json
    snapshot_interval: 5s
  redis:
    address: redis.internal:6380
    username: spendguard
    password: secret
    db: 3
    key_prefix: "sg:"
    timeout: 100ms
    dial_timeout: 1s
    pool_size: 20
    min_idle_conns: 4
    conn_max_idle_time: 5m
    max_retries: 0
    tls:
      enabled: true
      ca_file: /etc/ca.pem
      server_name: redis.internal
  on_error: fail_open
`)
	require.NoError(t, c.Validate())
	assert.True(t, c.FailOpen())
	assert.Equal(t, "sg:", c.Redis.Prefix())
	assert.Equal(t, 100*time.Millisecond, c.Redis.CallTimeout())
	assert.Equal(t, 5*time.Second, c.Memory.Interval())
	assert.Equal(t, 3, c.Redis.DB)
	assert.True(t, c.Redis.TLS.Enabled)
}

// TestStoreConfigErrors: every problem is reported at once, each with the
// line of its key.
func TestStoreConfigErrors(t *testing.T) {
	c := parseStore(t, `store:
  backend: etcd
  on_eror: fail_open
  memory:
    snapshot_interval: -1s
  redis:
    adress: x
    address: no-port
    db: -1
    timeout: soon
    pool_size: 2
    min_idle_conns: 3
    tls:
      cert_file: /c.pem
  on_error: maybe
`)
	err := c.Validate()
	require.Error(t, err)
	// The backend is not redis, so only the redis keys' names are checked.
	for _, want := range []string{
		`line 3: store.on_eror: unknown key; did you mean "on_error"? (allowed: backend, memory, redis, on_error)`,
		`line 7: store.redis.adress: unknown key; did you mean "address"?`,
		`line 2: store.backend: unknown backend "etcd" (want memory or redis)`,
		`line 15: store.on_error: "maybe" is neither fail_closed nor fail_open`,
		`line 5: store.memory.snapshot_interval: must be positive (got -1s)`,
	} {
		assert.Contains(t, err.Error(), want)
	}

	c = parseStore(t, `store:
  backend: redis
  redis:
    address: no-port
    db: -1
    timeout: soon
    pool_size: 2
    min_idle_conns: 3
    tls:
      cert_file: /c.pem
`)
	err = c.Validate()
	require.Error(t, err)
	for _, want := range []string{
		`line 4: store.redis.address: "no-port" is not host:port`,
		`line 5: store.redis.db: must not be negative (got -1)`,
		`line 6: store.redis.timeout: "soon" is not a duration`,
		`line 8: store.redis.min_idle_conns: 3 is more than pool_size 2`,
		`line 9: store.redis.tls: cert_file and key_file go together`,
		`line 9: store.redis.tls.enabled: TLS settings are given but tls.enabled is false`,
	} {
		assert.Contains(t, err.Error(), want)
	}

	c = parseStore(t, "store:\n  backend: redis\n")
	assert.EqualError(t, c.Validate(), "line 2: store.redis: one of address (host:port), sentinel or cluster is required with backend redis")
}

// TestStoreConfigLeases: leases are on by default with their documented
// interval and TTL; a TTL that cannot outlive three intervals, a
// non-positive duration and a brace in the key prefix are refused.
func TestStoreConfigLeases(t *testing.T) {
	c := parseStore(t, "store:\n  backend: redis\n  redis:\n    address: r:6379\n")
	require.NoError(t, c.Validate())
	assert.True(t, c.Redis.Leases.On())
	assert.Equal(t, budget.DefaultLeaseSyncInterval, c.Redis.Leases.Interval())
	assert.Equal(t, budget.DefaultLeaseTTL, c.Redis.Leases.LeaseTTL())

	c = parseStore(t, "store:\n  backend: redis\n  redis:\n    address: r:6379\n    leases: {enabled: false, sync_interval: 2s, ttl: 30s}\n")
	require.NoError(t, c.Validate())
	assert.False(t, c.Redis.Leases.On())
	assert.Equal(t, 2*time.Second, c.Redis.Leases.Interval())
	assert.Equal(t, 30*time.Second, c.Redis.Leases.LeaseTTL())

	for src, want := range map[string]string{
		"leases: {sync_interval: 1s, ttl: 2s}": "store.redis.leases.ttl",
		"leases: {sync_interval: 0s}":          "store.redis.leases.sync_interval",
		"leases: {ttl: -1s}":                   "store.redis.leases.ttl",
		"key_prefix: \"sg{x}:\"":               "store.redis.key_prefix",
	} {
		c := parseStore(t, "store:\n  backend: redis\n  redis:\n    address: r:6379\n    "+src+"\n")
		err := c.Validate()
		require.Error(t, err, src)
		assert.Contains(t, err.Error(), want, src)
	}
}

// TestStoreRedisForms: exactly one of address, sentinel and cluster.
func TestStoreRedisForms(t *testing.T) {
	for _, tc := range []struct {
		name, redis string
		mode        string
		err         []string
	}{
		{name: "address", redis: "    address: r:6379\n", mode: budget.RedisSingle},
		{name: "sentinel", redis: "    sentinel:\n      master_name: m\n      addresses: [s1:26379, s2:26379]\n      password: x\n", mode: budget.RedisSentinelMode},
		{name: "cluster", redis: "    cluster:\n      addresses: [n1:6379]\n    epoch_check_interval: 2s\n    allow_eviction: true\n", mode: budget.RedisClusterMode},
		{name: "none", redis: "    db: 0\n", err: []string{"line 3: store.redis: one of address (host:port), sentinel or cluster is required"}},
		{name: "two", redis: "    address: r:6379\n    cluster:\n      addresses: [n1:6379]\n",
			err: []string{"line 5: store.redis.cluster: address and cluster are given together; set exactly one"}},
		{name: "sentinel incomplete", redis: "    sentinel:\n      addresses: [nope]\n",
			err: []string{"line 4: store.redis.sentinel.master_name: required with sentinel (the name the sentinels monitor)",
				`line 5: store.redis.sentinel.addresses[0]: "nope" is not host:port`}},
		{name: "sentinel unknown key", redis: "    sentinel:\n      master: m\n      addresses: [s:1]\n",
			err: []string{`line 5: store.redis.sentinel.master: unknown key; did you mean "master_name"?`}},
		{name: "cluster db", redis: "    db: 2\n    cluster:\n      addresses: [n1:6379]\n",
			err: []string{"line 4: store.redis.db: must be 0 with cluster"}},
		{name: "cluster empty", redis: "    cluster: {}\n",
			err: []string{"line 4: store.redis.cluster.addresses: required with cluster (host:port of some cluster nodes)"}},
		{name: "epoch interval", redis: "    address: r:1\n    epoch_check_interval: 0s\n",
			err: []string{"line 5: store.redis.epoch_check_interval: must be positive"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := parseStore(t, "store:\n  backend: redis\n  redis:\n"+tc.redis)
			err := c.Validate()
			if tc.err == nil {
				require.NoError(t, err)
				assert.Equal(t, tc.mode, c.Redis.Mode())
				return
			}
			require.Error(t, err)
			for _, want := range tc.err {
				assert.Contains(t, err.Error(), want)
			}
		})
	}

	// Redis Cluster needs leases: without them a request's budgets are
	// one script over several hash slots.
	noLeases := parseStore(t, "store:\n  backend: redis\n  redis:\n    cluster: {addresses: [\"r:1\"]}\n    leases: {enabled: false}\n")
	verr := noLeases.Validate()
	require.Error(t, verr)
	assert.Contains(t, verr.Error(), "store.redis.leases.enabled")
	assert.Contains(t, verr.Error(), "CROSSSLOT")
}
