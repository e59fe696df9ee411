package redisstore

import (
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

// ClientOptions turns `store.redis` into go-redis options: RESP2, no
// command retries unless max_retries asks for them, socket deadlines from
// the call's context, and TLS from the configured files (read now, so a
// missing file is an error at start).
func ClientOptions(cfg budget.RedisConfig) (*redis.Options, error) {
	timeout := cfg.CallTimeout()
	o := &redis.Options{
		Addr:                  cfg.Address,
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
		MaintNotificationsConfig: &maintnotifications.Config{
			Mode: maintnotifications.ModeDisabled,
		},
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
	if tc.ServerName == "" {
		tc.ServerName, _, _ = net.SplitHostPort(cfg.Address)
	}
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
