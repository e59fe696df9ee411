package redistest

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// DebugArgs are the Start arguments that allow DEBUG commands (Stall).
func DebugArgs() []string { return []string{"--enable-debug-command", "yes"} }

// Stall blocks the whole server for d with DEBUG SLEEP (as a long script,
// a slow fork or a swapped-out page would), from a connection of its
// own; the server must have been started with DebugArgs. It returns once
// the server sleeps (a PING goes unanswered), and a channel closed when
// it wakes. Commands sent meanwhile wait in the sockets and run when it
// wakes, even those whose client gave up.
func (s *Server) Stall(d time.Duration) <-chan struct{} {
	t := s.t
	t.Helper()
	ctl := s.Client()
	probe := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DisableIdentity: true, ContextTimeoutEnabled: true})
	t.Cleanup(func() { probe.Close() })
	require.NoError(t, probe.Ping(context.Background()).Err())
	woke := make(chan struct{})
	go func() {
		defer close(woke)
		assert.NoError(t, ctl.Do(context.Background(), "DEBUG", "SLEEP", fmt.Sprintf("%.3f", d.Seconds())).Err(), "redistest: DEBUG SLEEP (started with DebugArgs?)")
	}()
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
		defer cancel()
		return probe.Ping(ctx).Err() != nil
	}, 5*time.Second, time.Millisecond, "redistest: the server did not stall")
	return woke
}

// WarmPool opens n connections of c and takes each past its handshake
// (all held at once, then returned to the pool), as on a busy replica: a
// command sent later is written at once, without a dial or a HELLO that
// a stalled server would hold up first.
func WarmPool(t testing.TB, c *redis.Client, n int) {
	t.Helper()
	conns := make([]*redis.Conn, n)
	for i := range conns {
		conns[i] = c.Conn()
		require.NoError(t, conns[i].Ping(context.Background()).Err(), "redistest: warming the pool")
	}
	for _, cn := range conns {
		require.NoError(t, cn.Close())
	}
	require.GreaterOrEqual(t, int(c.PoolStats().IdleConns), n, "redistest: pool not warmed")
}
