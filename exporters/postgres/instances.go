package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// A process that dies (kill -9, OOM) leaves rows in its spool; the next
// process on that spool directory ships them. Once it has, every row of
// the dead process is in the ledger, and it says so in
// spendguard_instances: a dead process's lease forfeits in the budget
// store can then be reconciled with what its rows show it spent
// (cmd/spendguard/app). A process that stops cleanly returns its leases
// and is never listed.

// drainTracker collects the instances whose rows a spool held when this
// process opened it, until they are shipped.
type drainTracker struct {
	left      int64 // rows still to ship of those held at open
	instances map[string]bool
}

func newDrainTracker(rows int64, owner string) *drainTracker {
	d := &drainTracker{left: rows, instances: map[string]bool{}}
	if owner != "" {
		d.instances[owner] = true
	}
	return d
}

// ownerFile, in a spool slot, names the instance that last had the slot
// open. The next one to open it knows whom the rows it finds there (if
// any) belong to, and that every row of that instance is in the ledger
// once they are shipped — even when it left none.
const ownerFile = "INSTANCE"

// lastOwner is the instance that last had the slot dir open, "" when
// none is recorded (a clean stop, or a new slot).
func lastOwner(dir string) string {
	b, err := os.ReadFile(filepath.Join(dir, ownerFile))
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
}

// takeOwnership records instance as the slot's owner and returns the
// one before it.
func takeOwnership(dir, instance string) (previous string, err error) {
	previous = lastOwner(dir)
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(instance+"\n"), 0o600); err != nil {
		return previous, fmt.Errorf("exporters.postgres.spool.dir: %w", err)
	}
	return previous, nil
}

// shipped notes rows shipped, in order; it reports whether the rows held
// at open are now all shipped (once).
func (d *drainTracker) shipped(rows []row, undecodable int) bool {
	if d == nil || d.left <= 0 {
		return false
	}
	d.left -= int64(undecodable)
	for _, r := range rows {
		if d.left <= 0 {
			break
		}
		if r.instance != "" {
			d.instances[r.instance] = true
		}
		d.left--
	}
	return d.left <= 0
}

// markDrained records that every row of instances (but this process's
// own) is in the ledger, retrying until it is written or ctx is done.
func (l *Ledger) markDrained(ctx context.Context, instances map[string]bool) {
	var names []string
	for n := range instances {
		if n != l.cfg.Instance {
			names = append(names, n)
		}
	}
	if len(names) == 0 {
		return
	}
	slices.Sort(names)
	err := l.retry(ctx, func(ctx context.Context) error {
		_, err := l.pool.Exec(ctx, `INSERT INTO spendguard_instances (instance, drained_at)
			SELECT unnest($1::text[]), now() ON CONFLICT (instance) DO NOTHING`, names)
		return err
	})
	if err == nil {
		l.log.Info("ledger: every row of processes that did not stop cleanly is in the ledger", zap.Strings("instances", names))
	}
}

// DrainedInstances lists the processes whose every row is in the ledger
// although they did not stop cleanly, and whose forfeits are not yet
// reconciled, the longest drained first.
func (l *Ledger) DrainedInstances(ctx context.Context) ([]string, error) {
	rows, err := l.pool.Query(ctx, `SELECT instance FROM spendguard_instances
		WHERE reconciled_at IS NULL ORDER BY drained_at, instance`)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	names, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	return names, nil
}

// MarkReconciled records that instance's forfeits were reconciled.
func (l *Ledger) MarkReconciled(ctx context.Context, instance string, at time.Time) error {
	if _, err := l.pool.Exec(ctx, `UPDATE spendguard_instances SET reconciled_at = $2
		WHERE instance = $1 AND reconciled_at IS NULL`, instance, at); err != nil {
		return fmt.Errorf("ledger: %w", err)
	}
	return nil
}
