// Package pgtest gives each test its own PostgreSQL database on the
// server the tests use (127.0.0.1:5432, trust authentication, as on the
// development machines and in CI, or SPENDGUARD_TEST_PG_DSN), created
// with a random name and dropped when the test ends, so that runs never
// collide. A server that cannot be reached fails the test with a clear
// message: tests against PostgreSQL are never skipped. Databases of this
// kind left behind by a killed test binary are dropped by a later
// NewDatabase once they are an hour old and unused.
//
// A test that must stop, crash or start PostgreSQL (a ledger outage)
// cannot do so to the shared server: StartServer runs a private server
// of its own (initdb into a temporary directory, a free port), with Stop,
// Kill and Start.
package pgtest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"net/url"
	"os"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"
)

// DefaultAdminDSN is the maintenance database the test databases are
// created from.
const DefaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// AdminDSN is SPENDGUARD_TEST_PG_DSN, or DefaultAdminDSN.
func AdminDSN() string {
	if s := os.Getenv("SPENDGUARD_TEST_PG_DSN"); s != "" {
		return s
	}
	return DefaultAdminDSN
}

// NewDatabase creates an empty database named spendguard_test_<random>
// and returns its DSN; it is dropped (connections closed by force) when
// t ends.
func NewDatabase(t testing.TB) string {
	t.Helper()
	admin := AdminDSN()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	require.NoError(t, err, "PostgreSQL is needed for this test and is not reachable at %s "+
		"(start it, e.g. pg_ctlcluster 15 main start, or set SPENDGUARD_TEST_PG_DSN)", redacted(admin))
	defer conn.Close(context.Background())
	dropStale(ctx, conn)
	var b [8]byte
	_, _ = rand.Read(b[:])
	name := "spendguard_test_" + hex.EncodeToString(b[:])
	_, err = conn.Exec(ctx, "CREATE DATABASE "+name)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		c, err := pgx.Connect(ctx, admin)
		if err != nil {
			t.Errorf("dropping test database %s: %v", name, err)
			return
		}
		defer c.Close(context.Background())
		for try := 0; ; try++ {
			_, err := c.Exec(ctx, "DROP DATABASE IF EXISTS "+name+" WITH (FORCE)")
			if err == nil {
				return
			}
			if try == 4 {
				t.Errorf("dropping test database %s: %v", name, err)
				return
			}
			time.Sleep(200 * time.Millisecond)
		}
	})
	u, err := url.Parse(admin)
	require.NoError(t, err, "SPENDGUARD_TEST_PG_DSN must be a postgres:// URL")
	u.Path = "/" + name
	return u.String()
}

// dropStale drops test databases created over an hour ago that nobody is
// connected to (their test binary was killed before its cleanup). It
// needs the rights to read the data directory's files; without them it
// does nothing.
func dropStale(ctx context.Context, conn *pgx.Conn) {
	rows, err := conn.Query(ctx, `SELECT datname FROM pg_database d
		WHERE datname LIKE 'spendguard\_test\_%'
		  AND (pg_stat_file('base/' || oid || '/PG_VERSION')).modification < now() - interval '1 hour'
		  AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.datid = d.oid)`)
	if err != nil {
		return
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return
	}
	for _, n := range names {
		_, _ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+pgx.Identifier{n}.Sanitize()+" WITH (FORCE)")
	}
}

func redacted(dsn string) string {
	u, err := url.Parse(dsn)
	if err != nil {
		return "(unparsable DSN)"
	}
	return u.Redacted()
}
