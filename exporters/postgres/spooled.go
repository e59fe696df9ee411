package postgres

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/spool"
)

// A serving spendguard writes the ledger through a spool (package
// spool): Record writes each request's row to local disk before the
// request is answered, and a shipper sends the rows to PostgreSQL in
// order, retrying for as long as it takes, removing them only once
// PostgreSQL has them. PostgreSQL may be away at start and for any time
// after; the spool's size limit (spool.max_bytes) is the only bound, and
// what happens at it is the operator's choice (spool.on_full).

// slots bounds the numbered subdirectories of a spool directory: one per
// process using it at once.
const slots = 64

// ErrSpoolFull is Admit's answer while the spool cannot take rows and
// spool.on_full is refuse.
var ErrSpoolFull = errors.New("the ledger spool cannot take rows (full, or the disk refuses writes)")

// writing is the state of a ledger opened with OpenSpooled.
type writing struct {
	sp      *spool.Spool
	slotDir string
	owner   string // the instance that had the slot before this process
	// emptyOwners had other slots, did not stop cleanly, and left no row.
	emptyOwners []string
	orphans     []*spool.Spool // other processes' spools, left behind, shipped first
	maxBytes    int64
	refuse      bool

	closed       atomic.Bool
	writeFailing atomic.Bool // the last Append failed
	full         atomic.Bool // a full episode is open (fullSince is set)
	down         atomic.Bool // the last write to PostgreSQL failed
	shipped      atomic.Uint64
	dropped      [nDropReasons]atomic.Uint64

	schemaMu sync.Mutex
	schemaOK bool

	cancel context.CancelFunc
	done   chan struct{}

	mu         sync.Mutex // episodes, for the once-per-outage log lines
	fullSince  time.Time
	fullDrops  uint64
	downSince  time.Time
	downHeld   int64
	writeSince time.Time
}

// Why a row did not reach the ledger (spendguard_ledger_rows_dropped_total).
const (
	dropSpoolFull = iota // spool.on_full: drop, and the spool held max_bytes
	dropWriteError
	dropRejected    // PostgreSQL refused the row itself (a data error)
	dropUndecodable // a spooled row that no longer decodes
	dropClosed      // recorded after the ledger was closed
	nDropReasons
)

var dropReasons = [nDropReasons]string{"spool_full", "write_error", "rejected", "undecodable", "closed"}

// OpenSpooled opens the ledger for a serving spendguard: its spool (the
// lowest numbered subdirectory of spool.dir that no other process
// holds), the spools other processes left behind there, the connection
// pool — without connecting: PostgreSQL may be away — and the shipper.
// The schema is migrated at the first connection. It fails only for
// what the operator must fix: an unusable spool directory, or one that
// holds rows for another ledger.
func OpenSpooled(cfg Config, obs DriftObserver, log *zap.Logger) (*Ledger, error) {
	if errs := cfg.Validate(); len(errs) > 0 {
		return nil, fmt.Errorf("%s: %s", errs[0].Field, errs[0].Msg)
	}
	if log == nil {
		log = zap.NewNop()
	}
	cfg = cfg.withDefaults()
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("ledger dsn: %s", dsnProblem(err))
	}
	pc.MaxConns = int32(cfg.MaxConns)
	pool, err := pgxpool.NewWithConfig(context.Background(), pc)
	if err != nil {
		return nil, fmt.Errorf("ledger: %w", err)
	}
	l := &Ledger{pool: pool, cfg: cfg, log: log}
	w := &writing{maxBytes: int64(cfg.Spool.MaxBytes), refuse: cfg.Spool.OnFull == OnFullRefuse, done: make(chan struct{})}
	if err := w.openSpools(cfg, log); err != nil {
		pool.Close()
		return nil, err
	}
	l.w = w
	st := w.sp.Stats()
	log.Info("ledger spool open", zap.String("dir", w.slotDir), zap.Int64("rows_waiting", st.Rows),
		zap.Int64("bytes_waiting", st.Bytes), zap.Int("orphaned_spools", len(w.orphans)))
	var ctx context.Context
	ctx, w.cancel = context.WithCancel(context.Background())
	go l.ship(ctx)
	if cfg.Reconcile != nil {
		l.rec = startReconciler(l, *cfg.Reconcile, obs, log)
	}
	return l, nil
}

// openSpools takes a slot of the spool directory and opens, to ship them,
// the slots that no running process holds and that still hold rows.
func (w *writing) openSpools(cfg Config, log *zap.Logger) error {
	base := cfg.Spool.Dir
	if err := os.MkdirAll(base, 0o700); err != nil {
		return fmt.Errorf("exporters.postgres.spool.dir: %w", err)
	}
	if err := claimBase(base, ledgerIdentity(cfg.DSN)); err != nil {
		return err
	}
	opts := func(dir string) spool.Options {
		return spool.Options{Dir: dir, SegmentBytes: int64(cfg.Spool.SegmentBytes), SyncInterval: cfg.Spool.FsyncInterval,
			SyncRecords: cfg.Spool.FsyncRows, OnSyncError: func(err error) {
				log.Error("ledger spool: fsync failed; rows are written but may not survive a crash of the machine", zap.Error(err))
			}}
	}
	// This process's slot: the lowest one no running process holds.
	for i := range slots {
		dir := filepath.Join(base, strconv.Itoa(i))
		sp, err := spool.Open(opts(dir))
		if errors.Is(err, spool.ErrLocked) {
			continue
		}
		if err != nil {
			return fmt.Errorf("exporters.postgres.spool.dir: %w", err)
		}
		w.sp, w.slotDir = sp, dir
		if w.owner, err = takeOwnership(dir, cfg.Instance); err != nil {
			w.closeAll()
			return err
		}
		break
	}
	if w.sp == nil {
		return fmt.Errorf("exporters.postgres.spool.dir: all %d slots of %s are held by running processes", slots, base)
	}
	// The other slots that exist, are free and hold rows: left by
	// processes that are gone.
	entries, err := os.ReadDir(base)
	if err != nil {
		w.closeAll()
		return fmt.Errorf("exporters.postgres.spool.dir: %w", err)
	}
	for _, e := range entries {
		n, err := strconv.Atoi(e.Name())
		dir := filepath.Join(base, e.Name())
		if err != nil || n < 0 || n >= slots || !e.IsDir() || dir == w.slotDir {
			continue
		}
		sp, err := spool.Open(opts(dir))
		switch {
		case errors.Is(err, spool.ErrLocked): // a running process's
		case err != nil:
			log.Warn("ledger spool: a slot left by another process cannot be opened; its rows wait", zap.String("dir", dir), zap.Error(err))
		case sp.Stats().Rows > 0:
			w.orphans = append(w.orphans, sp)
		default:
			// Empty: if a process had it and did not stop cleanly, every
			// row of that process is in the ledger already.
			if owner := lastOwner(dir); owner != "" {
				w.emptyOwners = append(w.emptyOwners, owner)
				_ = os.Remove(filepath.Join(dir, ownerFile))
			}
			_ = sp.Close()
		}
	}
	return nil
}

func (w *writing) closeAll() {
	if w.sp != nil {
		_ = w.sp.Close()
	}
	for _, o := range w.orphans {
		_ = o.Close()
	}
}

// claimBase records which ledger the spool directory is for, or checks
// that it is this one: rows spooled for one database must never be
// shipped to another.
func claimBase(base, identity string) error {
	name := filepath.Join(base, "LEDGER")
	b, err := os.ReadFile(name)
	switch {
	case errors.Is(err, os.ErrNotExist):
		if err := os.WriteFile(name, []byte(identity+"\n"), 0o600); err != nil {
			return fmt.Errorf("exporters.postgres.spool.dir: %w", err)
		}
		return nil
	case err != nil:
		return fmt.Errorf("exporters.postgres.spool.dir: %w", err)
	}
	if have := strings.TrimSpace(string(b)); have != identity {
		return fmt.Errorf("exporters.postgres.spool.dir %s holds rows for the ledger %s, not %s: "+
			"point spool.dir elsewhere, or, once that ledger has them, remove the directory", base, have, identity)
	}
	return nil
}

// Record writes ev's row to the spool: once it returns, a kill of the
// process cannot lose the row (the group commit makes it durable against
// a crash of the machine within spool.fsync_interval). It is called on
// the request's path, before the answer that ends it; it never waits for
// PostgreSQL. A row that cannot be spooled is dropped and counted.
func (l *Ledger) Record(ev *sink.Event) {
	w := l.w
	if w.closed.Load() {
		l.drop(dropClosed, 1)
		return
	}
	b, err := encodeRow(l.cfg.Instance, ev.Report)
	if err != nil {
		l.drop(dropUndecodable, 1)
		return
	}
	held := w.sp.Bytes()
	limit := w.maxBytes
	if w.refuse {
		// Admit refuses new requests from max_bytes on; the rows of those
		// already admitted, and of the refusals themselves, still fit in
		// this margin.
		limit += max(w.maxBytes/8, 1<<20)
	}
	if held >= limit {
		l.dropFull()
		return
	}
	if err := w.sp.Append(b); err != nil {
		if errors.Is(err, spool.ErrClosed) {
			l.drop(dropClosed, 1)
			return
		}
		l.drop(dropWriteError, 1)
		if !w.writeFailing.Swap(true) {
			w.mu.Lock()
			w.writeSince = time.Now()
			w.mu.Unlock()
			l.log.Error("ledger spool: writing a row failed; rows are dropped and counted until writes succeed again",
				zap.String("dir", w.slotDir), zap.Error(err))
		}
		return
	}
	if w.writeFailing.Load() && w.writeFailing.Swap(false) {
		w.mu.Lock()
		since := time.Since(w.writeSince)
		w.mu.Unlock()
		l.log.Warn("ledger spool: writing rows again", zap.Duration("failed_for", since))
	}
	l.fullEnded(held)
}

// Admit says whether a new request may start: with spool.on_full:
// refuse, not while the spool holds max_bytes or the disk refuses writes
// (ErrSpoolFull); always with drop.
func (l *Ledger) Admit() error {
	w := l.w
	if w == nil || !w.refuse {
		return nil
	}
	if w.writeFailing.Load() || w.sp.Bytes() >= w.maxBytes {
		l.noteFull()
		return ErrSpoolFull
	}
	return nil
}

// Ready is /readyz's view of the ledger: with ready_requires_ledger, an
// error while PostgreSQL cannot be written or Admit refuses; nil
// otherwise (a ledger outage costs no availability).
func (l *Ledger) Ready() error {
	if l.w == nil || !l.cfg.ReadyRequiresLedger {
		return nil
	}
	if err := l.Admit(); err != nil {
		return err
	}
	if l.w.down.Load() {
		return errors.New("the ledger's PostgreSQL cannot be written; rows wait in the spool")
	}
	return nil
}

// dropFull counts a row dropped for a full spool, logging once per
// episode.
func (l *Ledger) dropFull() {
	l.drop(dropSpoolFull, 1)
	l.noteFull()
}

func (l *Ledger) noteFull() {
	w := l.w
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fullSince.IsZero() {
		w.full.Store(true)
		w.fullSince, w.fullDrops = time.Now(), w.dropped[dropSpoolFull].Load()
		what := "new requests are refused (503) until it has room"
		if !w.refuse {
			what = "rows are dropped and counted until it has room"
		}
		l.log.Error("ledger spool full (exporters.postgres.spool.max_bytes): "+what,
			zap.Stringer("max_bytes", Size(w.maxBytes)), zap.String("dir", w.slotDir))
	}
}

// fullEnded closes a full episode once the spool has room again.
func (l *Ledger) fullEnded(bytes int64) {
	w := l.w
	if !w.full.Load() || bytes >= w.maxBytes {
		return
	}
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.fullSince.IsZero() {
		return
	}
	l.log.Warn("ledger spool has room again", zap.Duration("full_for", time.Since(w.fullSince)),
		zap.Uint64("rows_dropped", w.dropped[dropSpoolFull].Load()-w.fullDrops))
	w.fullSince = time.Time{}
	w.full.Store(false)
}

func (l *Ledger) drop(reason int, n uint64) { l.w.dropped[reason].Add(n) }

// WaitShipped waits until the rows spooled before the call are in
// PostgreSQL and the shipper has migrated the schema, or ctx is done. The
// memory store's recovery at start and a Redis store's rebuild call it
// first, so that they read every row.
func (l *Ledger) WaitShipped(ctx context.Context) error {
	if l.w == nil {
		return nil
	}
	target := l.w.sp.Stats()
	want := target.Acked + uint64(target.Rows)
	t := time.NewTicker(20 * time.Millisecond)
	defer t.Stop()
	for {
		st := l.w.sp.Stats()
		if st.Acked >= want && l.orphansShipped() && l.schemaReady() {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("ledger: %d spooled rows not yet in PostgreSQL: %w", want-min(st.Acked, want), ctx.Err())
		case <-t.C:
		}
	}
}
