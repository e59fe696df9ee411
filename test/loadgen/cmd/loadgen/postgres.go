package main

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/jackc/pgx/v5"
)

// defaultAdminDSN is the PostgreSQL maintenance database the bench's own
// database is created from when -pg-dsn is not given: the server the
// tests use.
const defaultAdminDSN = "postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable"

// benchDatabase is a database of the bench's own, spendguard_bench_<random>,
// created on a PostgreSQL server for one run and dropped at its end, so
// that its ledger holds this run's rows alone.
type benchDatabase struct {
	admin, name string
	// DSN is the database's connection string.
	DSN string
}

// createBenchDatabase creates a fresh database on the server of admin.
func createBenchDatabase(ctx context.Context, admin string) (*benchDatabase, error) {
	u, err := url.Parse(admin)
	if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
		return nil, errors.New("the admin DSN must be a postgres:// URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, admin)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL at %s is not reachable: %w", u.Redacted(), err)
	}
	defer conn.Close(context.Background())
	name := "spendguard_bench_" + randomHex()
	if _, err := conn.Exec(ctx, "CREATE DATABASE "+name); err != nil {
		return nil, fmt.Errorf("creating database %s on %s: %w", name, u.Redacted(), err)
	}
	u.Path = "/" + name
	return &benchDatabase{admin: admin, name: name, DSN: u.String()}, nil
}

// drop drops the database, closing any connection left to it.
func (d *benchDatabase) drop() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, d.admin)
	if err != nil {
		return fmt.Errorf("dropping database %s: %w (drop it by hand)", d.name, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "DROP DATABASE IF EXISTS "+d.name+" WITH (FORCE)"); err != nil {
		return fmt.Errorf("dropping database %s: %w (drop it by hand)", d.name, err)
	}
	return nil
}

// ledgerCounter counts the rows of the spendguard ledger in database dsn.
type ledgerCounter struct {
	dsn  string
	conn *pgx.Conn
}

func newLedgerCounter(ctx context.Context, dsn string) (*ledgerCounter, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, fmt.Errorf("PostgreSQL is not reachable: %w", err)
	}
	return &ledgerCounter{dsn: dsn, conn: conn}, nil
}

// rows is the number of rows in spendguard_ledger (which spendguard's
// migrations create at its start).
func (c *ledgerCounter) rows(ctx context.Context) (int64, error) {
	var n int64
	err := c.conn.QueryRow(ctx, "SELECT count(*) FROM spendguard_ledger").Scan(&n)
	return n, err
}

func (c *ledgerCounter) close() { _ = c.conn.Close(context.Background()) }
