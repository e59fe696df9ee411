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
