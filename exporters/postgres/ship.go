package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"path/filepath"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/spool"
)

// Shipping: one goroutine reads the spool in order, a batch at a time
// (exporters.batch_size rows), writes it to PostgreSQL and acknowledges
// it. A batch that fails is retried, with backoff, for as long as it
// takes: the spool holds the rows meanwhile. A batch PostgreSQL refuses
// for its data (SQLSTATE classes 22 and 23) is written row by row, and
// the rows it refuses alone are logged whole and counted as dropped.

const (
	shipFirstRetry   = 250 * time.Millisecond
	shipMaxRetry     = 4 * time.Second
	shipWriteTimeout = 30 * time.Second
	shipBatchBytes   = 4 << 20
)

// ship runs until ctx is cancelled: the spools other processes left
// first, then this process's own.
func (l *Ledger) ship(ctx context.Context) {
	defer close(l.w.done)
	// Connect and migrate at once, rows or not: the schema is there for
	// the reports and the spend API as soon as PostgreSQL is.
	if err := l.retry(ctx, l.ensureSchema); err != nil {
		return
	}
	for {
		o := l.nextOrphan()
		if o == nil {
			break
		}
		orphan := newDrainTracker(o.Stats().Rows, lastOwner(o.Dir()))
		if err := l.shipFrom(ctx, o, false, orphan); err != nil {
			return
		}
		l.markDrained(ctx, orphan.instances)
		l.doneWithOrphan(o)
	}
	left := newDrainTracker(l.w.sp.Stats().Rows, l.w.owner)
	if left.left == 0 { // the last owner left nothing: all its rows are in
		for _, o := range l.w.emptyOwners {
			left.instances[o] = true
		}
		l.markDrained(ctx, left.instances)
	} else if len(l.w.emptyOwners) > 0 {
		empty := map[string]bool{}
		for _, o := range l.w.emptyOwners {
			empty[o] = true
		}
		l.markDrained(ctx, empty)
	}
	_ = l.shipFrom(ctx, l.w.sp, true, left)
}

func (l *Ledger) nextOrphan() *spool.Spool {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	if len(l.w.orphans) == 0 {
		return nil
	}
	return l.w.orphans[0]
}

// doneWithOrphan closes a shipped orphan spool. Its directory stays: it
// is a free slot again, and removing it (its LOCK file) could pull it
// from under a process that has just taken it.
func (l *Ledger) doneWithOrphan(o *spool.Spool) {
	_ = o.Close()
	l.log.Info("ledger spool: shipped the rows another process had left", zap.String("dir", o.Dir()))
	l.w.mu.Lock()
	l.w.orphans = l.w.orphans[1:]
	l.w.mu.Unlock()
}

func (l *Ledger) orphansShipped() bool {
	l.w.mu.Lock()
	defer l.w.mu.Unlock()
	return len(l.w.orphans) == 0
}

// shipFrom ships sp's rows; with follow it waits for new ones until ctx
// is done, else it returns once sp is empty. It returns only ctx's error
// (or the spool's, when it was closed).
// The rows sp held when it was opened were left by processes that are
// gone: left tracks them, and once they are shipped those processes are
// recorded as drained.
func (l *Ledger) shipFrom(ctx context.Context, sp *spool.Spool, follow bool, left *drainTracker) error {
	for {
		if !follow && sp.Stats().Rows == 0 {
			return nil
		}
		recs, err := sp.Read(ctx, l.cfg.BatchSize, shipBatchBytes)
		if err != nil {
			return err
		}
		reports := make([]row, 0, len(recs))
		undecodable := 0
		for _, r := range recs {
			instance, rep, err := decodeRow(r.Data)
			if err != nil {
				undecodable++
				l.drop(dropUndecodable, 1)
				l.log.Error("ledger spool: a spooled row does not decode; dropped", zap.Time("spooled_at", r.At), zap.Error(err))
				continue
			}
			reports = append(reports, row{rep: rep, instance: instance})
		}
		if err := l.deliver(ctx, reports); err != nil {
			return err
		}
		if err := sp.Ack(recs); err != nil {
			// The rows are in PostgreSQL; at worst they are sent again
			// (and add nothing) after a restart.
			l.log.Error("ledger spool: acknowledging shipped rows failed", zap.Error(err))
		}
		l.w.shipped.Add(uint64(len(reports)))
		if left.shipped(reports, undecodable) && follow {
			l.markDrained(ctx, left.instances)
		}
	}
}

// deliver writes reports until PostgreSQL has them, or ctx is done.
func (l *Ledger) deliver(ctx context.Context, reports []row) error {
	if len(reports) == 0 {
		return nil
	}
	var refused error // PostgreSQL refused the data: no retry helps
	err := l.retry(ctx, func(ctx context.Context) error {
		err := l.ensureSchema(ctx)
		if err == nil {
			wctx, cancel := context.WithTimeout(ctx, shipWriteTimeout)
			err = l.write(wctx, reports)
			cancel()
		}
		if rowLevel(err) {
			refused = err
			return nil
		}
		return err
	})
	switch {
	case err != nil || refused == nil:
		return err
	case len(reports) > 1: // find the rows it refuses
		for _, r := range reports {
			if err := l.deliver(ctx, []row{r}); err != nil {
				return err
			}
		}
		return nil
	}
	l.drop(dropRejected, 1)
	rec, _ := json.Marshal(sink.NewRecord(reports[0].rep))
	l.log.Error("ledger: PostgreSQL refuses this row; it is dropped (the row follows, to be written by hand)",
		zap.ByteString("row", rec), zap.String("instance", reports[0].instance), zap.Error(refused))
	return nil
}

// retry calls f until it succeeds or ctx is done, with backoff, logging
// the outage once.
func (l *Ledger) retry(ctx context.Context, f func(context.Context) error) error {
	wait := shipFirstRetry
	for {
		err := f(ctx)
		if err == nil {
			l.upAgain()
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		l.wentDown(err)
		if !sleepCtx(ctx, rand.N(wait)+wait/2) {
			return ctx.Err()
		}
		wait = min(2*wait, shipMaxRetry)
	}
}

func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// rowLevel reports whether PostgreSQL refused the data itself (SQLSTATE
// class 22: data exception, 23: integrity constraint), which no retry
// fixes. Everything else — a connection, a timeout, a missing table, a
// read-only server during a failover — is retried.
func rowLevel(err error) bool {
	var pg *pgconn.PgError
	return errors.As(err, &pg) && len(pg.Code) == 5 && (pg.Code[:2] == "22" || pg.Code[:2] == "23")
}

// ensureSchema applies the migrations once per process, at the first
// connection that works.
func (l *Ledger) ensureSchema(ctx context.Context) error {
	w := l.w
	w.schemaMu.Lock()
	defer w.schemaMu.Unlock()
	if w.schemaOK {
		return nil
	}
	mctx, cancel := context.WithTimeout(ctx, shipWriteTimeout)
	defer cancel()
	applied, err := Migrate(mctx, l.pool)
	if err != nil {
		return err
	}
	w.schemaOK = true
	l.log.Info("spend ledger ready", zap.Ints("migrations_applied", applied))
	return nil
}

func (l *Ledger) schemaReady() bool {
	l.w.schemaMu.Lock()
	defer l.w.schemaMu.Unlock()
	return l.w.schemaOK
}

// wentDown logs the start of an outage, once.
func (l *Ledger) wentDown(err error) {
	w := l.w
	if w.down.Swap(true) {
		return
	}
	st := w.sp.Stats()
	w.mu.Lock()
	w.downSince, w.downHeld = time.Now(), st.Rows
	w.mu.Unlock()
	l.log.Error("ledger: PostgreSQL cannot be written; rows wait in the spool and ship, in order, when it can",
		zap.Int64("rows_waiting", st.Rows), zap.Error(err))
}

// upAgain logs the end of an outage, once.
func (l *Ledger) upAgain() {
	w := l.w
	if !w.down.Load() || !w.down.Swap(false) {
		return
	}
	w.mu.Lock()
	since := w.downSince
	w.mu.Unlock()
	l.log.Warn("ledger: PostgreSQL written again; the spool is shipping what waited",
		zap.Duration("outage", time.Since(since)), zap.Int64("rows_waiting", w.sp.Stats().Rows))
}

// closeWriting ships what the spool holds until ctx is done or
// PostgreSQL fails, then stops the shipper and closes the spools; rows
// not shipped stay on disk for the next start.
func (l *Ledger) closeWriting(ctx context.Context) error {
	w := l.w
	if w.closed.Swap(true) {
		return nil
	}
	t := time.NewTicker(10 * time.Millisecond)
	for (w.sp.Stats().Rows > 0 || !l.orphansShipped()) && !w.down.Load() && ctx.Err() == nil {
		select {
		case <-ctx.Done():
		case <-t.C:
		}
	}
	t.Stop()
	w.cancel()
	<-w.done
	var rows int64
	w.mu.Lock()
	for _, o := range w.orphans {
		rows += o.Stats().Rows
	}
	w.mu.Unlock()
	rows += w.sp.Stats().Rows
	if rows == 0 {
		// A clean stop: every row is in the ledger, and the budget store
		// gets this process's leases back as it closes. The next process
		// on this slot has nothing to reconcile for it.
		_ = os.Remove(filepath.Join(w.slotDir, ownerFile))
	}
	err := w.sp.Close()
	w.closeAll()
	if rows > 0 {
		l.log.Warn("ledger: rows stay in the spool; the next start ships them",
			zap.Int64("rows", rows), zap.String("dir", w.slotDir))
	}
	return err
}
