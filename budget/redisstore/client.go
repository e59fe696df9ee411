package redisstore

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"

	"github.com/redis/go-redis/v9"
	"github.com/redis/go-redis/v9/maintnotifications"

	"github.com/spendguard/spendguard/budget"
)

// NewClient returns the client of the configured connection form: a
// redis.Client for address, a Sentinel failover client (redis.Client that
// asks the sentinels for the primary and follows a failover) for
// sentinel, a redis.ClusterClient for cluster. All three have the
// settings of ClientOptions: no command retries, the call timeout on
// every socket, RESP2, no CLIENT SETINFO.
//
// A cluster client follows MOVED and ASK redirects (the command was not
// run by the node that sent them, so following one is not a retry) and
// is re-routed after READONLY, CLUSTERDOWN and LOADING, which a node
// also answers without running the command. An error that leaves the
// outcome unknown (a broken connection, a timeout) is never retried on
// another node: a retried Settle would count twice.
func NewClient(cfg budget.RedisConfig) (redis.UniversalClient, error) {
	u, err := universalOptions(cfg)
	if err != nil {
		return nil, err
	}
	switch cfg.Mode() {
	case budget.RedisSentinelMode:
		return redis.NewFailoverClient(u.Failover()), nil
	case budget.RedisClusterMode:
		o := u.Cluster()
		o.NewClient = func(no *redis.Options) *redis.Client {
			c := redis.NewClient(no)
			c.AddHook(noResend{})
			return c
		}
		return redis.NewClusterClient(o), nil
	}
	return redis.NewClient(u.Simple()), nil
}

// ClusterMaxRedirects is how many MOVED, ASK or READONLY answers one
// cluster command follows (a resharding or failover in progress).
const ClusterMaxRedirects = 5

// noResend hides, from the cluster client's redirect loop, the errors
// after which a command may have run (a connection broken or timed out
// after it was sent): that loop would send it again, to the same node or
// another. Redis error replies (MOVED, ASK, READONLY, ...) pass, since a
// node that answers one did not run the command.
type noResend struct{}

func (noResend) DialHook(next redis.DialHook) redis.DialHook { return next }

func (noResend) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		err := next(ctx, cmd)
		if err == nil || errors.Is(err, redis.Nil) {
			return err
		}
		var reply redis.Error
		if errors.As(err, &reply) {
			return err
		}
		err = opaqueError(err)
		cmd.SetErr(err)
		return err
	}
}

func (noResend) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// opaqueError keeps the text of err but not its chain (the cluster
// client retries io.EOF, net.Error and the like found in it); a timeout
// becomes context.DeadlineExceeded, which it does not retry.
func opaqueError(err error) error {
	var ne net.Error
	if errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) {
		return fmt.Errorf("%w: %s", context.DeadlineExceeded, err.Error())
	}
	if errors.Is(err, context.Canceled) {
		return fmt.Errorf("%w: %s", context.Canceled, err.Error())
	}
	return errors.New(err.Error())
}

// ClientOptions turns `store.redis` into go-redis options of one server
// (the address form): see universalOptions.
func ClientOptions(cfg budget.RedisConfig) (*redis.Options, error) {
	u, err := universalOptions(cfg)
	if err != nil {
		return nil, err
	}
	return u.Simple(), nil
}

// universalOptions turns `store.redis` into go-redis options for each of
// the three forms: RESP2, no command retries unless max_retries asks for
// them, socket deadlines from the call's context, and TLS from the
// configured files (read now, so a missing file is an error at start).
func universalOptions(cfg budget.RedisConfig) (*redis.UniversalOptions, error) {
	timeout := cfg.CallTimeout()
	o := &redis.UniversalOptions{
		Addrs:                 cfg.Addresses(),
		Username:              cfg.Username,
		Password:              cfg.Password,
		DB:                    cfg.DB,
		Protocol:              2,
		DisableIdentity:       true,
		ContextTimeoutEnabled: true,
		MaxRetries:            -1,
		DialTimeout:           timeout,
		DialerRetries:         1, // one attempt: a refused dial fails the call at once
		ReadTimeout:           timeout,
		WriteTimeout:          timeout,
		PoolTimeout:           timeout,
		PoolSize:              cfg.PoolSize,
		MinIdleConns:          cfg.MinIdleConns,
		MaxRedirects:          ClusterMaxRedirects,
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
	}
	if s := cfg.Sentinel; s != nil {
		o.MasterName, o.SentinelUsername, o.SentinelPassword = s.MasterName, s.Username, s.Password
	}
	if cfg.MaxRetries > 0 {
		o.MaxRetries = cfg.MaxRetries
	}
	if cfg.DialTimeout.Set {
		o.DialTimeout = cfg.DialTimeout.Value
	}
	if cfg.ConnMaxIdleTime.Set {
		o.ConnMaxIdleTime = cfg.ConnMaxIdleTime.Value
	}
	if cfg.TLS.Enabled {
		tc, err := tlsConfig(cfg)
		if err != nil {
			return nil, err
		}
		o.TLSConfig = tc
	}
	return o, nil
}

func tlsConfig(cfg budget.RedisConfig) (*tls.Config, error) {
	t := cfg.TLS
	tc := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName, InsecureSkipVerify: t.InsecureSkipVerify} //nolint:gosec // opt-in by configuration
	if tc.ServerName == "" && cfg.Mode() == budget.RedisSingle {
		tc.ServerName, _, _ = net.SplitHostPort(cfg.Address)
	} // else each connection verifies the host it dials (tls.DialWithDialer)
	if t.CAFile != "" {
		pem, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("store.redis.tls.ca_file: %w", err)
		}
		tc.RootCAs = x509.NewCertPool()
		if !tc.RootCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("store.redis.tls.ca_file: %s holds no PEM certificate", t.CAFile)
		}
	}
	if t.CertFile != "" || t.KeyFile != "" {
		if t.CertFile == "" || t.KeyFile == "" {
			return nil, errors.New("store.redis.tls: cert_file and key_file go together")
		}
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return nil, fmt.Errorf("store.redis.tls: client certificate: %w", err)
		}
		tc.Certificates = []tls.Certificate{cert}
	}
	return tc, nil
}
