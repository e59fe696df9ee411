package budget

import (
	"errors"
	"fmt"
	"net"
	"reflect"
	"strings"
	"time"

	"github.com/spendguard/spendguard/internal/strictyaml"
	"gopkg.in/yaml.v3"
)

// StoreConfig is the configuration's `store:` section: where the counters
// live and what happens when that place cannot be reached. It is a schema;
// Validate checks it and package budget/stores opens the store it names.
type StoreConfig struct {
	// Backend is "memory" (the default) or "redis".
	Backend string       `yaml:"backend"`
	Memory  MemoryConfig `yaml:"memory"`
	Redis   RedisConfig  `yaml:"redis"`
	// OnError is "fail_closed" (the default: 503 while the store fails) or
	// "fail_open" (serve and count the request as unmetered).
	OnError string `yaml:"on_error"`

	// Line is the line of the section in the file (0 when not decoded
	// from YAML).
	Line int `yaml:"-"`

	keys strictyaml.Keys // unknown keys and every key's line, paths from "store."
}

// MemoryConfig is `store.memory`.
type MemoryConfig struct {
	// SnapshotPath, when set, is a file the counters are written to every
	// SnapshotInterval and at shutdown, and read from at start.
	SnapshotPath string `yaml:"snapshot_path"`
	// SnapshotInterval defaults to DefaultSnapshotInterval.
	SnapshotInterval Duration `yaml:"snapshot_interval"`
}

// RedisConfig is `store.redis`. Exactly one of three forms names the
// servers: Address (one server, or a primary behind one address),
// Sentinel (a primary that Redis Sentinel watches and fails over) or
// Cluster (Redis Cluster). The other settings apply to all three.
type RedisConfig struct {
	Address  string         `yaml:"address"` // host:port
	Sentinel *RedisSentinel `yaml:"sentinel"`
	Cluster  *RedisCluster  `yaml:"cluster"`
	// Username and Password authenticate to the data nodes (the primary,
	// or every cluster node); a sentinel has its own.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
	DB       int    `yaml:"db"`
	// KeyPrefix starts every key spendguard writes; "" means
	// DefaultKeyPrefix.
	KeyPrefix string   `yaml:"key_prefix"`
	TLS       RedisTLS `yaml:"tls"`
	// Timeout bounds every store call, so a slow Redis cannot hold a
	// request past Envoy's message_timeout (DefaultStoreTimeout).
	Timeout Duration `yaml:"timeout"`
	// DialTimeout bounds opening a connection (default: Timeout).
	DialTimeout Duration `yaml:"dial_timeout"`
	// PoolSize is the maximum number of connections (default 10 per CPU).
	PoolSize int `yaml:"pool_size"`
	// MinIdleConns connections are kept open while idle (default 0).
	MinIdleConns int `yaml:"min_idle_conns"`
	// ConnMaxIdleTime closes connections idle for longer (default 30m).
	ConnMaxIdleTime Duration `yaml:"conn_max_idle_time"`
	// MaxRetries retries a command that failed on the network (default 0:
	// a retried Settle whose first reply was lost would count twice).
	MaxRetries int `yaml:"max_retries"`
	// Leases is `store.redis.leases`: each replica decides within slices
	// of the budgets borrowed from Redis (package budget/lease).
	Leases RedisLeases `yaml:"leases"`
	// AllowEviction starts spendguard although Redis may evict keys
	// (maxmemory-policy other than noeviction), with a warning instead of
	// an error.
	AllowEviction bool `yaml:"allow_eviction"`
	// EpochCheckInterval is how often the epoch keys are read back to
	// notice that Redis lost its data (DefaultEpochCheckInterval).
	EpochCheckInterval Duration `yaml:"epoch_check_interval"`
	// WaitReplicas is how many replicas must have a lease sync's writes
	// (Redis WAIT) before it counts as done, so that a failover cannot
	// lose spend a replica was told is counted. nil: 1 with sentinel, 0
	// otherwise.
	WaitReplicas *int `yaml:"wait_replicas"`
}

// RedisLeases is `store.redis.leases`.
type RedisLeases struct {
	// Enabled defaults to true. false sends every decision to Redis (a
	// round trip each, one script over all of a request's budgets: one
	// Redis primary only, not Cluster).
	Enabled *bool `yaml:"enabled"`
	// SyncInterval is the most time settled spend waits before it is
	// sent to Redis, and how often counters in use are synced
	// (DefaultLeaseSyncInterval).
	SyncInterval Duration `yaml:"sync_interval"`
	// TTL is how long a lease lasts unless renewed (DefaultLeaseTTL): a
	// crashed replica's leases count as spent after it.
	TTL Duration `yaml:"ttl"`
}

// Defaults of `store.redis.leases`.
const (
	DefaultLeaseSyncInterval = 500 * time.Millisecond
	DefaultLeaseTTL          = 10 * time.Second
)

// On reports whether leases are used (the default).
func (l *RedisLeases) On() bool { return l.Enabled == nil || *l.Enabled }

// Interval is the sync interval.
func (l *RedisLeases) Interval() time.Duration {
	if l.SyncInterval.Set {
		return l.SyncInterval.Value
	}
	return DefaultLeaseSyncInterval
}

// LeaseTTL is the lease lifetime.
func (l *RedisLeases) LeaseTTL() time.Duration {
	if l.TTL.Set {
		return l.TTL.Value
	}
	return DefaultLeaseTTL
}

// RedisSentinel is `store.redis.sentinel`: the primary is the one the
// sentinels at Addresses report for MasterName, followed across failovers.
type RedisSentinel struct {
	MasterName string   `yaml:"master_name"`
	Addresses  []string `yaml:"addresses"` // host:port of the sentinels
	// Username and Password authenticate to the sentinels.
	Username string `yaml:"username"`
	Password string `yaml:"password"`
}

// RedisCluster is `store.redis.cluster`: Addresses are some nodes of a
// Redis Cluster (seeds; the others are discovered).
type RedisCluster struct {
	Addresses []string `yaml:"addresses"` // host:port
}

// Redis connection forms (RedisConfig.Mode).
const (
	RedisSingle       = "address"
	RedisSentinelMode = "sentinel"
	RedisClusterMode  = "cluster"
)

// Mode is the connection form of the configuration: RedisSingle,
// RedisSentinelMode or RedisClusterMode (RedisSingle when none is set).
func (r *RedisConfig) Mode() string {
	switch {
	case r.Sentinel != nil:
		return RedisSentinelMode
	case r.Cluster != nil:
		return RedisClusterMode
	}
	return RedisSingle
}

// Replicas is the number of replicas a lease sync waits for
// (wait_replicas, or its default: 1 with sentinel, 0 otherwise).
func (r *RedisConfig) Replicas() int {
	if r.WaitReplicas != nil {
		return *r.WaitReplicas
	}
	if r.Mode() == RedisSentinelMode {
		return 1
	}
	return 0
}

// Addresses are the configured addresses of the form in use: the one
// server, the sentinels or the cluster seeds.
func (r *RedisConfig) Addresses() []string {
	switch r.Mode() {
	case RedisSentinelMode:
		return r.Sentinel.Addresses
	case RedisClusterMode:
		return r.Cluster.Addresses
	}
	return []string{r.Address}
}

// EpochInterval is the time between two epoch checks.
func (r *RedisConfig) EpochInterval() time.Duration {
	if r.EpochCheckInterval.Set {
		return r.EpochCheckInterval.Value
	}
	return DefaultEpochCheckInterval
}

// RedisTLS is `store.redis.tls`.
type RedisTLS struct {
	Enabled            bool   `yaml:"enabled"`
	CAFile             string `yaml:"ca_file"`   // PEM; default: the system roots
	CertFile           string `yaml:"cert_file"` // client certificate (PEM), with key_file
	KeyFile            string `yaml:"key_file"`
	ServerName         string `yaml:"server_name"` // default: the host of address
	InsecureSkipVerify bool   `yaml:"insecure_skip_verify"`
}

// Defaults of the `store:` section.
const (
	DefaultKeyPrefix        = "spendguard:"
	DefaultStoreTimeout     = 150 * time.Millisecond
	DefaultSnapshotInterval = 15 * time.Second
	// DefaultEpochCheckInterval is how often a Redis store checks that
	// its data is still there.
	DefaultEpochCheckInterval = time.Second
)

// Store backends and failure policies.
const (
	BackendMemory = "memory"
	BackendRedis  = "redis"
	FailClosed    = "fail_closed"
	FailOpen      = "fail_open"
)

// UnmarshalYAML decodes the section and remembers the line of every key.
// yaml.v3 decodes the inside of a custom unmarshaler without the caller's
// KnownFields setting, so the keys are checked here and unknown ones
// reported by Validate (a misspelt "on_eror" must not silently mean
// fail_closed).
func (c *StoreConfig) UnmarshalYAML(n *yaml.Node) error {
	type plain StoreConfig
	if err := n.Decode((*plain)(c)); err != nil {
		return err
	}
	c.Line = n.Line
	c.keys = strictyaml.Check(n, reflect.TypeFor[plain](), "store")
	return nil
}

// FailOpen reports whether requests are served unmetered while the store
// fails.
func (c *StoreConfig) FailOpen() bool { return c.OnError == FailOpen }

// Unused names the subsection of the backend that is not selected
// ("redis" for the memory backend), so that a loader may leave its
// settings (an unset ${SPENDGUARD_REDIS_PASSWORD}) unchecked.
func (c *StoreConfig) Unused() []string {
	if c.BackendName() == BackendRedis {
		return []string{"memory"}
	}
	return []string{"redis"}
}

// BackendName is the backend, "memory" when unset.
func (c *StoreConfig) BackendName() string {
	if c.Backend == "" {
		return BackendMemory
	}
	return c.Backend
}

// Prefix is the Redis key prefix, DefaultKeyPrefix when unset.
func (r *RedisConfig) Prefix() string {
	if r.KeyPrefix == "" {
		return DefaultKeyPrefix
	}
	return r.KeyPrefix
}

// CallTimeout is the bound of one store call.
func (r *RedisConfig) CallTimeout() time.Duration {
	if r.Timeout.Set {
		return r.Timeout.Value
	}
	return DefaultStoreTimeout
}

// Interval is the time between two snapshots.
func (m *MemoryConfig) Interval() time.Duration {
	if m.SnapshotInterval.Set {
		return m.SnapshotInterval.Value
	}
	return DefaultSnapshotInterval
}

// Validate returns every problem of the section at once (errors.Join of
// *ConfigError, with the line of the offending key when known). The redis
// subsection is only checked when the backend is redis, so a file may keep
// it for later; its keys must still be known ones.
func (c *StoreConfig) Validate() error {
	var errs []error
	fail := func(key, format string, args ...any) {
		line := c.keys.Line("store." + key) // the key, or its nearest parent
		if line == 0 {
			line = c.Line
		}
		errs = append(errs, &ConfigError{Line: line, Where: "store." + key, Msg: fmt.Sprintf(format, args...)})
	}
	for _, u := range c.keys.Unknown {
		errs = append(errs, &ConfigError{Line: u.Line, Where: u.Path, Msg: "unknown key" + u.Hint()})
	}
	switch c.Backend {
	case "", BackendMemory, BackendRedis:
	default:
		fail("backend", "unknown backend %q (want memory or redis)", c.Backend)
	}
	switch c.OnError {
	case "", FailClosed, FailOpen:
	default:
		fail("on_error", "%q is neither fail_closed nor fail_open", c.OnError)
	}
	positive := func(key string, d Duration) {
		switch {
		case d.err != nil:
			fail(key, "%v", d.err)
		case d.Set && d.Value <= 0:
			fail(key, "must be positive (got %v)", d.Value)
		}
	}
	positive("memory.snapshot_interval", c.Memory.SnapshotInterval)
	if c.BackendName() == BackendRedis {
		c.Redis.validate(positive, fail)
	}
	return errors.Join(errs...)
}

func (r *RedisConfig) validate(positive func(string, Duration), fail func(key, format string, args ...any)) {
	hostPort := func(key, addr string) {
		if _, port, err := net.SplitHostPort(addr); err != nil || port == "" {
			fail(key, "%q is not host:port", addr)
		}
	}
	var forms []string
	if r.Address != "" {
		forms = append(forms, "address")
		hostPort("redis.address", r.Address)
	}
	if s := r.Sentinel; s != nil {
		forms = append(forms, "sentinel")
		if s.MasterName == "" {
			fail("redis.sentinel.master_name", "required with sentinel (the name the sentinels monitor)")
		}
		if len(s.Addresses) == 0 {
			fail("redis.sentinel.addresses", "required with sentinel (host:port of each sentinel)")
		}
		for i, a := range s.Addresses {
			hostPort(fmt.Sprintf("redis.sentinel.addresses[%d]", i), a)
		}
	}
	if c := r.Cluster; c != nil {
		forms = append(forms, "cluster")
		if len(c.Addresses) == 0 {
			fail("redis.cluster.addresses", "required with cluster (host:port of some cluster nodes)")
		}
		for i, a := range c.Addresses {
			hostPort(fmt.Sprintf("redis.cluster.addresses[%d]", i), a)
		}
		if r.DB != 0 {
			fail("redis.db", "must be 0 with cluster (Redis Cluster has only database 0; got %d)", r.DB)
		}
		if !r.Leases.On() {
			fail("redis.leases.enabled", "false is not possible with cluster: without leases a request's budgets are decided in one script over keys in different hash slots, which Redis Cluster refuses (CROSSSLOT)")
		}
	}
	switch len(forms) {
	case 0:
		fail("redis", "one of address (host:port), sentinel or cluster is required with backend redis")
	case 1:
	default:
		fail("redis."+forms[1], "%s are given together; set exactly one of address, sentinel and cluster", strings.Join(forms, " and "))
	}
	positive("redis.epoch_check_interval", r.EpochCheckInterval)
	if strings.ContainsAny(r.KeyPrefix, "{}") {
		fail("redis.key_prefix", "%q holds a brace: spendguard puts each scope's keys in a Redis Cluster hash tag after the prefix, which a brace in the prefix would break", r.KeyPrefix)
	}
	if r.DB < 0 {
		fail("redis.db", "must not be negative (got %d)", r.DB)
	}
	positive("redis.timeout", r.Timeout)
	positive("redis.dial_timeout", r.DialTimeout)
	positive("redis.conn_max_idle_time", r.ConnMaxIdleTime)
	for _, f := range []struct {
		key string
		v   int
	}{{"redis.pool_size", r.PoolSize}, {"redis.min_idle_conns", r.MinIdleConns}, {"redis.max_retries", r.MaxRetries}} {
		if f.v < 0 {
			fail(f.key, "must not be negative (got %d)", f.v)
		}
	}
	if r.WaitReplicas != nil && *r.WaitReplicas < 0 {
		fail("redis.wait_replicas", "must not be negative (got %d)", *r.WaitReplicas)
	}
	positive("redis.leases.sync_interval", r.Leases.SyncInterval)
	positive("redis.leases.ttl", r.Leases.TTL)
	if r.Leases.On() && r.Leases.LeaseTTL() < 3*r.Leases.Interval() {
		fail("redis.leases.ttl", "%v is shorter than three sync intervals (%v): leases would expire between renewals", r.Leases.LeaseTTL(), 3*r.Leases.Interval())
	}
	if r.PoolSize > 0 && r.MinIdleConns > r.PoolSize {
		fail("redis.min_idle_conns", "%d is more than pool_size %d", r.MinIdleConns, r.PoolSize)
	}
	t := r.TLS
	if (t.CertFile == "") != (t.KeyFile == "") {
		fail("redis.tls", "cert_file and key_file go together")
	}
	if !t.Enabled && (t.CAFile != "" || t.CertFile != "" || t.ServerName != "" || t.InsecureSkipVerify) {
		fail("redis.tls.enabled", "TLS settings are given but tls.enabled is false")
	}
}
