package pgtest

import (
	"context"
	"errors"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func execSQL(t *testing.T, dsn, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	_, err = conn.Exec(ctx, sql)
	require.NoError(t, err)
}

func values(t *testing.T, dsn string) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, "SELECT v FROM kept ORDER BY v")
	require.NoError(t, err)
	got, err := pgx.CollectRows(rows, pgx.RowTo[int])
	require.NoError(t, err)
	return got
}

// requireRefused checks that nothing listens on the server's port.
func requireRefused(t *testing.T, dsn string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err := pgx.Connect(ctx, dsn)
	require.Error(t, err)
	assert.True(t, errors.Is(err, syscall.ECONNREFUSED), "want connection refused, got %v", err)
}

// TestServerStopAndStart: data written before a clean stop is there after
// the start, on the same DSN; while stopped, connections are refused.
func TestServerStopAndStart(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	require.True(t, s.Running())
	dsn := s.DSN()
	execSQL(t, dsn, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1), (2)")

	s.Stop()
	assert.False(t, s.Running())
	requireRefused(t, dsn)
	s.Stop() // a second stop does nothing

	s.Start()
	require.True(t, s.Running())
	assert.Equal(t, dsn, s.DSN())
	assert.Equal(t, []int{1, 2}, values(t, dsn))
	execSQL(t, dsn, "INSERT INTO kept VALUES (3)")
	s.Start() // starting a running server does nothing
	assert.Equal(t, []int{1, 2, 3}, values(t, dsn))
}

// TestServerKillAndStart: after a crash (SIGKILL, no shutdown) the server
// starts again through crash recovery and committed rows are kept.
func TestServerKillAndStart(t *testing.T) {
	t.Parallel()
	s := StartServer(t)
	dsn := s.DSN()
	execSQL(t, dsn, "CREATE TABLE kept (v int); INSERT INTO kept VALUES (7)")
	execSQL(t, dsn, "INSERT INTO kept VALUES (8)")

	s.Kill()
	assert.False(t, s.Running())
	requireRefused(t, dsn)

	s.Start()
	assert.Equal(t, []int{7, 8}, values(t, dsn))
	s.Kill()
	s.Start()
	assert.Equal(t, []int{7, 8}, values(t, dsn), "a second crash loses nothing either")
}

// TestServersAreSeparate: two servers of one test have their own ports and
// data, and stopping one leaves the other serving.
func TestServersAreSeparate(t *testing.T) {
	t.Parallel()
	a, b := StartServer(t), StartServer(t)
	require.NotEqual(t, a.Port(), b.Port())
	execSQL(t, a.DSN(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (1)")
	execSQL(t, b.DSN(), "CREATE TABLE kept (v int); INSERT INTO kept VALUES (2)")
	a.Stop()
	assert.Equal(t, []int{2}, values(t, b.DSN()))
	requireRefused(t, a.DSN())
}
