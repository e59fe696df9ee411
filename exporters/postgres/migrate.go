package postgres

import (
	"context"
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"

	"github.com/jackc/pgx/v5/pgxpool"
)

//go:embed migrations/*.sql
var migrationFiles embed.FS

// migration is one embedded schema change, applied once per database.
type migration struct {
	version int
	name    string
	sql     string
}

// migrateLockKey is the advisory lock that serialises migrations across
// replicas starting at once ("spendgrd" in ASCII).
const migrateLockKey int64 = 0x7370656e64677264

// loadMigrations returns the embedded migrations in version order. File
// names are NNNN_name.sql.
func loadMigrations() ([]migration, error) {
	names, err := fs.Glob(migrationFiles, "migrations/*.sql")
	if err != nil {
		return nil, err
	}
	out := make([]migration, 0, len(names))
	for _, n := range names {
		base := path.Base(n)
		num, _, ok := strings.Cut(base, "_")
		v, err := strconv.Atoi(num)
		if !ok || err != nil || v <= 0 {
			return nil, fmt.Errorf("migration %s: name is not NNNN_name.sql", base)
		}
		body, err := migrationFiles.ReadFile(n)
		if err != nil {
			return nil, err
		}
		out = append(out, migration{version: v, name: strings.TrimSuffix(base, ".sql"), sql: string(body)})
	}
	sort.Slice(out, func(i, j int) bool { return out[i].version < out[j].version })
	for i := 1; i < len(out); i++ {
		if out[i].version == out[i-1].version {
			return nil, fmt.Errorf("migrations %s and %s share a version", out[i-1].name, out[i].name)
		}
	}
	return out, nil
}

// Migrate applies the embedded migrations the database lacks, in one
// transaction holding an advisory lock, so replicas that start at once
// apply each migration exactly once (the others wait, then find nothing
// to do). It returns the versions it applied. Versions the database has
// but this binary does not know (a newer spendguard migrated first) are
// left alone: migrations only add.
func Migrate(ctx context.Context, pool *pgxpool.Pool) ([]int, error) {
	all, err := loadMigrations()
	if err != nil {
		return nil, err
	}
	tx, err := pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger migration: %w", err)
	}
	defer tx.Rollback(ctx) //nolint:errcheck // a no-op after Commit
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1)", migrateLockKey); err != nil {
		return nil, fmt.Errorf("ledger migration lock: %w", err)
	}
	if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS spendguard_schema_migrations (
		version    integer PRIMARY KEY,
		name       text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now())`); err != nil {
		return nil, fmt.Errorf("ledger migration table: %w", err)
	}
	rows, err := tx.Query(ctx, "SELECT version FROM spendguard_schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("ledger migration versions: %w", err)
	}
	have := map[int]bool{}
	for rows.Next() {
		var v int
		if err := rows.Scan(&v); err != nil {
			rows.Close()
			return nil, err
		}
		have[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger migration versions: %w", err)
	}
	var applied []int
	for _, m := range all {
		if have[m.version] {
			continue
		}
		if _, err := tx.Exec(ctx, m.sql); err != nil {
			return nil, fmt.Errorf("ledger migration %s: %w", m.name, err)
		}
		if _, err := tx.Exec(ctx, "INSERT INTO spendguard_schema_migrations (version, name) VALUES ($1, $2)", m.version, m.name); err != nil {
			return nil, fmt.Errorf("ledger migration %s: %w", m.name, err)
		}
		applied = append(applied, m.version)
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("ledger migration: %w", err)
	}
	return applied, nil
}
