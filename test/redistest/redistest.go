// Package redistest gives tests real Redis servers: Shared connects to
// the machine's Redis at 127.0.0.1:6379 (CI starts it) under a key prefix
// of the test's own, Start runs a private redis-server process on a free
// port that a test may stop, kill and start again, and StartSentinel and
// StartCluster run a small Sentinel setup or Redis Cluster of private
// processes.
//
// Nothing here skips: a test that needs Redis fails with a message saying
// what is missing.
package redistest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/stretchr/testify/require"
)

// SharedAddr is the address of the machine's Redis.
const SharedAddr = "127.0.0.1:6379"

// Shared returns a client of the machine's Redis and a key prefix unique
// to this call ("spendguard-test:<random>:"). Every key under the prefix
// is deleted when the test ends. The test fails if Redis does not answer.
func Shared(t testing.TB) (*redis.Client, string) {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: SharedAddr, MaxRetries: -1, DisableIdentity: true})
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		t.Fatalf("redistest: Redis at %s does not answer (%v): start it with `redis-server --port 6379 --save '' --appendonly no` (.ci/run does)", SharedAddr, err)
	}
	prefix := "spendguard-test:" + randomHex() + ":"
	t.Cleanup(func() {
		DeletePrefix(t, c, prefix)
		c.Close()
	})
	return c, prefix
}

// DeletePrefix deletes every key that starts with prefix.
func DeletePrefix(t testing.TB, c *redis.Client, prefix string) {
	t.Helper()
	keys := Keys(t, c, prefix)
	if len(keys) > 0 {
		require.NoError(t, c.Del(context.Background(), keys...).Err())
	}
}

// Keys lists the keys that start with prefix.
func Keys(t testing.TB, c *redis.Client, prefix string) []string {
	t.Helper()
	var keys []string
	iter := c.Scan(context.Background(), 0, escapeGlob(prefix)+"*", 1000).Iterator()
	for iter.Next(context.Background()) {
		keys = append(keys, iter.Val())
	}
	require.NoError(t, iter.Err())
	return keys
}

func escapeGlob(s string) string {
	var b bytes.Buffer
	for _, r := range s {
		switch r {
		case '*', '?', '[', ']', '\\':
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

func randomHex() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Server is a redis-server process owned by one test. Its data lives in a
// temporary directory; by default nothing is persisted (--save ""
// --appendonly no), so a restart starts empty unless Args enable AOF.
type Server struct {
	t    testing.TB
	Addr string
	Dir  string
	args []string

	mu   sync.Mutex
	cmd  *exec.Cmd
	done chan struct{}
	log  *bytes.Buffer
}

// Start runs redis-server on a free 127.0.0.1 port with extra arguments
// (e.g. "--appendonly", "yes") and waits until it answers PING. The
// process is killed when the test ends. The test fails if redis-server
// is not installed.
func Start(t testing.TB, extra ...string) *Server {
	t.Helper()
	dir := t.TempDir()
	return startServer(t, dir, append([]string{"--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", dir}, extra...))
}

// startServer runs redis-server with args after the port (a configuration
// file first in args stays first) on a free port.
func startServer(t testing.TB, dir string, args []string) *Server {
	t.Helper()
	if _, err := exec.LookPath("redis-server"); err != nil {
		t.Fatalf("redistest: redis-server is not installed (apt-get install redis-server): %v", err)
	}
	s := &Server{t: t, Dir: dir, args: args}
	var err error
	for range 5 { // a free port may be taken between probing and binding
		s.Addr = freeAddr(t)
		if err = s.start(); err == nil {
			t.Cleanup(s.Kill)
			return s
		}
	}
	t.Fatalf("redistest: redis-server did not start: %v", err)
	return nil
}

func freeAddr(t testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer ln.Close()
	return ln.Addr().String()
}

// start launches the process on s.Addr and waits for PING.
func (s *Server) start() error {
	_, port, _ := net.SplitHostPort(s.Addr)
	log := &bytes.Buffer{}
	args := append([]string{"--port", port}, s.args...)
	if len(s.args) > 0 && !strings.HasPrefix(s.args[0], "--") { // a configuration file comes first
		args = append([]string{s.args[0], "--port", port}, s.args[1:]...)
	}
	cmd := exec.Command("redis-server", args...)
	cmd.Stdout, cmd.Stderr = log, log
	if err := cmd.Start(); err != nil {
		return err
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	s.mu.Lock()
	s.cmd, s.done, s.log = cmd, done, log
	s.mu.Unlock()

	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DisableIdentity: true})
	defer c.Close()
	deadline := time.Now().Add(10 * time.Second)
	for {
		select {
		case <-done:
			return fmt.Errorf("redis-server exited: %s", lastLines(log.String()))
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err := c.Ping(ctx).Err()
		cancel()
		if err == nil {
			return nil
		}
		if time.Now().After(deadline) {
			s.signal(syscall.SIGKILL)
			<-done
			return fmt.Errorf("no PING answer on %s: %v", s.Addr, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func lastLines(s string) string {
	if len(s) > 600 {
		return s[len(s)-600:]
	}
	return s
}

// Restart starts the server again on the same address after Stop or Kill.
func (s *Server) Restart() {
	s.t.Helper()
	require.NoError(s.t, s.start(), "redistest: restart on %s", s.Addr)
}

// Stop shuts the server down as an operator would (SIGTERM: it writes its
// AOF if enabled) and waits for it to exit.
func (s *Server) Stop() { s.stopWith(syscall.SIGTERM) }

// Kill ends the server with SIGKILL and waits for it to exit.
func (s *Server) Kill() { s.stopWith(syscall.SIGKILL) }

// Pause stops the process (SIGSTOP): connections stay open but nothing is
// answered, as with a hung server. Resume continues it.
func (s *Server) Pause()  { s.signal(syscall.SIGSTOP) }
func (s *Server) Resume() { s.signal(syscall.SIGCONT) }

func (s *Server) stopWith(sig syscall.Signal) {
	s.mu.Lock()
	done := s.done
	s.mu.Unlock()
	if done == nil {
		return
	}
	s.signal(syscall.SIGCONT) // a paused process must run to exit on SIGTERM
	s.signal(sig)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		s.signal(syscall.SIGKILL)
		<-done
	}
}

func (s *Server) signal(sig syscall.Signal) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cmd != nil && s.cmd.Process != nil {
		_ = s.cmd.Process.Signal(sig)
	}
}

// Client returns a client of the server, closed when the test ends.
func (s *Server) Client() *redis.Client {
	c := redis.NewClient(&redis.Options{Addr: s.Addr, MaxRetries: -1, DisableIdentity: true})
	s.t.Cleanup(func() { c.Close() })
	return c
}

// AOF returns the arguments that make the server persist every write, so
// that Stop and Restart keep the data.
func AOF() []string {
	return []string{"--appendonly", "yes", "--appendfsync", "always"}
}

// Port is the server's port.
func (s *Server) Port() int {
	_, p, _ := net.SplitHostPort(s.Addr)
	n, _ := strconv.Atoi(p)
	return n
}
