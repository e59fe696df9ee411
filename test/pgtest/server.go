package pgtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// Server is a PostgreSQL server owned by one test: its own data
// directory, its own port on 127.0.0.1, its own postmaster process, so
// that the test may stop, crash and start it without touching the
// machine's shared server. It is made by StartServer.
//
// Its methods may be called from any goroutine, but those that fail the
// test (Start, Stop) must be called from the test's goroutine, as
// testing.TB requires. The server runs with fsync off but synchronous
// commit on: a committed transaction's WAL has been written to the kernel,
// so a Kill loses nothing; only an operating system crash would.
type Server struct {
	t    testing.TB
	bin  string // the directory of initdb and postgres
	dir  string // owns data/ and sock/
	port int
	cred *syscall.Credential // nil: run as ourselves

	mu      sync.Mutex
	cmd     *exec.Cmd     // the postmaster, nil when stopped
	exited  chan struct{} // closed once cmd has been waited for
	log     *syncBuffer   // what the postmaster printed, over every start
	cleaned bool
}

// StartServer runs initdb into a new temporary directory and starts a
// PostgreSQL server on a free 127.0.0.1 port, with trust authentication
// for the user postgres, its unix socket inside that directory and
// settings for tests (fsync off, max_connections 50, small buffers). It
// returns once the server accepts connections. When t ends the server is
// stopped at once (immediate shutdown, then SIGKILL) and the directory
// removed; if t failed, the server's log is printed.
//
// The binaries come from `pg_config --bindir`, else from the highest
// version under /usr/lib/postgresql/*/bin. PostgreSQL refuses to run as
// root: when the test runs as root, initdb and postgres run as the OS user
// postgres, which then owns the directory.
func StartServer(t testing.TB) *Server {
	t.Helper()
	bin, err := serverBinaries()
	if err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	s := &Server{t: t, bin: bin, log: &syncBuffer{}}
	if os.Geteuid() == 0 {
		s.cred, err = postgresUser()
		if err != nil {
			t.Fatalf("pgtest: %v", err)
		}
	}
	// Not t.TempDir: its parent directories are private to root, and the
	// postgres user must reach the data directory.
	s.dir, err = os.MkdirTemp("", "pgtest-server-")
	if err != nil {
		t.Fatalf("pgtest: creating the server's directory: %v", err)
	}
	t.Cleanup(s.cleanup)
	if err := os.Mkdir(filepath.Join(s.dir, "sock"), 0o700); err != nil {
		t.Fatalf("pgtest: %v", err)
	}
	if s.cred != nil {
		for _, p := range []string{s.dir, filepath.Join(s.dir, "sock")} {
			if err := os.Chown(p, int(s.cred.Uid), int(s.cred.Gid)); err != nil {
				t.Fatalf("pgtest: giving %s to the postgres user: %v", p, err)
			}
		}
	}
	initdb := s.command(filepath.Join(bin, "initdb"), "--pgdata", s.dataDir(), "--username", "postgres",
		"--auth", "trust", "--encoding", "UTF8", "--locale", "C", "--no-sync")
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("pgtest: initdb failed: %v\n%s", err, out)
	}
	for try := 0; ; try++ { // a free port may be taken between probing and binding
		s.port, err = freePort()
		if err != nil {
			t.Fatalf("pgtest: finding a free port: %v", err)
		}
		if err = s.start(); err == nil {
			return s
		}
		if try == 4 {
			t.Fatalf("pgtest: PostgreSQL did not start: %v", err)
		}
	}
}

// DSN is the connection string of the server's postgres database as the
// superuser postgres (trust authentication). It stays the same across
// Stop and Start.
func (s *Server) DSN() string {
	return fmt.Sprintf("postgres://postgres@127.0.0.1:%d/postgres?sslmode=disable", s.port)
}

// Port is the server's TCP port on 127.0.0.1.
func (s *Server) Port() int { return s.port }

// Running reports whether the server's postmaster process is alive.
func (s *Server) Running() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.running()
}

func (s *Server) running() bool {
	if s.cmd == nil {
		return false
	}
	select {
	case <-s.exited:
		return false
	default:
		return true
	}
}

// Stop shuts the server down as `pg_ctl stop -m fast` does (SIGINT to the
// postmaster: sessions are ended, a checkpoint written) and waits for the
// process to exit; afterwards connections are refused. Stopping a stopped
// server does nothing. It fails the test if the server does not exit
// within a minute (it is then killed).
func (s *Server) Stop() {
	s.t.Helper()
	if err := s.stop(syscall.SIGINT, time.Minute); err != nil {
		s.t.Fatalf("pgtest: %v\n%s", err, s.log.String())
	}
}

// Kill crashes the server: SIGKILL to the postmaster and every process it
// started (its process group), as when the machine's OOM killer ends the
// container. Nothing is shut down cleanly; Start then runs PostgreSQL's
// crash recovery, and committed data is kept. Killing a stopped server
// does nothing.
func (s *Server) Kill() {
	_ = s.stop(syscall.SIGKILL, time.Minute)
}

// Start starts a stopped or killed server again on the same data
// directory and the same port, and waits until it accepts connections
// (after crash recovery, if it was killed). If the port cannot be bound
// yet, it retries for a few seconds. Starting a running server does
// nothing. It fails the test if the server does not come up.
func (s *Server) Start() {
	s.t.Helper()
	var err error
	for try := 0; try < 20; try++ {
		if err = s.start(); err == nil || !strings.Contains(err.Error(), "could not bind") {
			break
		}
		time.Sleep(250 * time.Millisecond)
	}
	if err != nil {
		s.t.Fatalf("pgtest: PostgreSQL did not start again: %v", err)
	}
}

func (s *Server) dataDir() string { return filepath.Join(s.dir, "data") }

// command runs name as the user PostgreSQL runs as, in the server's
// directory.
func (s *Server) command(name string, args ...string) *exec.Cmd {
	cmd := exec.Command(name, args...)
	cmd.Dir = s.dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: s.cred, Setpgid: true}
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	return cmd
}

// start launches the postmaster on s.port and waits until it answers or
// exits.
func (s *Server) start() error {
	s.mu.Lock()
	if s.running() {
		s.mu.Unlock()
		return nil
	}
	from := s.log.Len()
	cmd := s.command(filepath.Join(s.bin, "postgres"), "-D", s.dataDir(),
		"-c", "listen_addresses=127.0.0.1",
		"-c", "port="+strconv.Itoa(s.port),
		"-c", "unix_socket_directories="+filepath.Join(s.dir, "sock"),
		"-c", "max_connections=50",
		"-c", "shared_buffers=16MB",
		"-c", "fsync=off", // synchronous_commit stays on: Kill keeps every commit
		"-c", "full_page_writes=off",
		"-c", "logging_collector=off",
	)
	cmd.Stdout, cmd.Stderr = s.log, s.log
	if err := cmd.Start(); err != nil {
		s.mu.Unlock()
		return fmt.Errorf("running %s: %w", cmd.Path, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	s.cmd, s.exited = cmd, exited
	s.mu.Unlock()

	deadline := time.Now().Add(2 * time.Minute)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		conn, err := pgx.Connect(ctx, s.DSN())
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			return nil
		}
		select {
		case <-exited:
			return fmt.Errorf("postgres exited at start (%v): %s", cmd.ProcessState, s.log.String()[from:])
		default:
		}
		if time.Now().After(deadline) {
			_ = s.stop(syscall.SIGKILL, time.Minute)
			return fmt.Errorf("postgres does not accept connections after 2 minutes: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends sig to the postmaster (SIGKILL: to its whole process group)
// and waits up to patience for it to exit, then kills the group.
func (s *Server) stop(sig syscall.Signal, patience time.Duration) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.running() {
		return nil
	}
	pid := s.cmd.Process.Pid
	if sig == syscall.SIGKILL {
		_ = syscall.Kill(-pid, syscall.SIGKILL)
	} else {
		_ = syscall.Kill(pid, sig)
	}
	select {
	case <-s.exited:
		return nil
	case <-time.After(patience):
		_ = syscall.Kill(-pid, syscall.SIGKILL)
		<-s.exited
		return fmt.Errorf("postgres did not exit within %s of %s; killed", patience, sig)
	}
}

// cleanup stops the server at once (immediate shutdown, as pg_ctl stop -m
// immediate) and removes its directory.
func (s *Server) cleanup() {
	if s.cleaned {
		return
	}
	s.cleaned = true
	if err := s.stop(syscall.SIGQUIT, 10*time.Second); err != nil {
		s.t.Logf("pgtest: %v", err)
	}
	if s.t.Failed() && s.log.Len() > 0 {
		s.t.Logf("pgtest: log of the private PostgreSQL server on port %d:\n%s", s.port, s.log.String())
	}
	_ = os.RemoveAll(s.dir)
}

// serverBinaries finds the directory holding initdb and postgres.
func serverBinaries() (string, error) {
	has := func(dir string) bool {
		for _, b := range []string{"initdb", "postgres"} {
			if fi, err := os.Stat(filepath.Join(dir, b)); err != nil || fi.IsDir() {
				return false
			}
		}
		return true
	}
	if out, err := exec.Command("pg_config", "--bindir").Output(); err == nil {
		if dir := strings.TrimSpace(string(out)); has(dir) {
			return dir, nil
		}
	}
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return int(version(b)*100 - version(a)*100) })
	for _, dir := range dirs {
		if has(dir) {
			return dir, nil
		}
	}
	return "", errors.New("the PostgreSQL server programs initdb and postgres were not found " +
		"(neither in `pg_config --bindir` nor in /usr/lib/postgresql/*/bin): install the server, e.g. apt-get install postgresql")
}

// postgresUser is the credential of the OS user postgres.
func postgresUser() (*syscall.Credential, error) {
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root, PostgreSQL must run as the OS user postgres, which does not exist (%v): "+
			"install the PostgreSQL server package or run the tests as another user", err)
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err := errors.Join(err1, err2); err != nil {
		return nil, fmt.Errorf("the OS user postgres has a non-numeric id: %w", err)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}, nil
}

func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// syncBuffer is a bytes.Buffer that a process's output and the test may
// use at once.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

func (b *syncBuffer) Len() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Len()
}
