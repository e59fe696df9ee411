package postgres

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/spool"
	"github.com/spendguard/spendguard/test/pgtest"
)

// unreachable is a ledger DSN nothing listens at.
const unreachable = "postgres://postgres@127.0.0.1:1/spendguard?sslmode=disable&connect_timeout=2"

func openSpooled(t *testing.T, cfg Config) *Ledger {
	t.Helper()
	l, err := OpenSpooled(cfg, nil, nil)
	require.NoError(t, err)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = l.Close(ctx)
	})
	return l
}

func record(l *Ledger, ids ...string) {
	for _, id := range ids {
		l.Record(&sink.Event{Report: report(id, 0, map[string]string{"tenant": "acme"})})
	}
}

func ids(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s-%05d", prefix, i)
	}
	return out
}

func waitShipped(t *testing.T, l *Ledger) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	require.NoError(t, l.WaitShipped(ctx))
}

func TestRecordedRowsReachTheLedgerOnceEach(t *testing.T) {
	l := openSpooled(t, Config{DSN: pgtest.NewDatabase(t), BatchSize: 50, Spool: SpoolConfig{Dir: t.TempDir()}})
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() { record(l, ids(fmt.Sprintf("w%d", w), 250)...) })
	}
	wg.Wait()
	waitShipped(t, l)
	assert.Equal(t, 2000, count(t, l))
	st := l.SpoolStats()
	assert.Zero(t, st.Rows)
	assert.Zero(t, st.Bytes)
	assert.EqualValues(t, 2000, st.Shipped)
	assert.True(t, st.Writable)
	for r, n := range st.Dropped {
		assert.Zero(t, n, r)
	}
}

func TestStartsWithPostgreSQLAwayAndKeepsTheRowsOnDisk(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenSpooled(Config{DSN: unreachable, ReadyRequiresLedger: true, Spool: SpoolConfig{Dir: dir}}, nil, nil)
	require.NoError(t, err, "PostgreSQL away is no reason not to start")
	record(l, ids("r", 25)...)
	require.Eventually(t, func() bool { return !l.SpoolStats().Writable }, 10*time.Second, 10*time.Millisecond)
	st := l.SpoolStats()
	assert.EqualValues(t, 25, st.Rows)
	assert.False(t, st.Oldest.IsZero())
	require.Error(t, l.Ready(), "ready_requires_ledger: not ready during an outage")
	require.NoError(t, l.Admit(), "an outage alone refuses nothing")

	// Without a deadline: Close does not wait for a PostgreSQL that is
	// down (were it to, the test would hang).
	require.NoError(t, l.Close(context.Background()))

	sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "0")})
	require.NoError(t, err)
	defer sp.Close()
	assert.EqualValues(t, 25, sp.Stats().Rows, "every row stays in the spool for the next start")
}

func TestRowsLeftInTheSpoolShipAtTheNextStart(t *testing.T) {
	dir, dsn := t.TempDir(), pgtest.NewDatabase(t)
	// A previous process that never reached PostgreSQL: its spool, as it
	// left it.
	require.NoError(t, claimBase(dir, ledgerIdentity(dsn)))
	sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, "0")})
	require.NoError(t, err)
	for _, id := range ids("old", 40) {
		b, err := encodeRow("previous", report(id, 0, nil))
		require.NoError(t, err)
		require.NoError(t, sp.Append(b))
	}
	require.NoError(t, sp.Close())

	l := openSpooled(t, Config{DSN: dsn, Spool: SpoolConfig{Dir: dir}})
	record(l, ids("new", 10)...)
	waitShipped(t, l)
	assert.Equal(t, 50, count(t, l))
}

func TestASpoolLeftByAnotherProcessIsShippedAndEmptied(t *testing.T) {
	dir, dsn := t.TempDir(), pgtest.NewDatabase(t)
	require.NoError(t, claimBase(dir, ledgerIdentity(dsn)))
	orphan := filepath.Join(dir, "7")
	sp, err := spool.Open(spool.Options{Dir: orphan})
	require.NoError(t, err)
	for _, id := range ids("orphan", 30) {
		b, _ := encodeRow("orphan", report(id, 0, nil))
		require.NoError(t, sp.Append(b))
	}
	require.NoError(t, sp.Close())

	l := openSpooled(t, Config{DSN: dsn, Spool: SpoolConfig{Dir: dir}})
	waitShipped(t, l)
	assert.Equal(t, 30, count(t, l))
	require.NoError(t, l.Close(context.Background()))
	sp, err = spool.Open(spool.Options{Dir: orphan})
	require.NoError(t, err, "the orphan's slot is free again")
	defer sp.Close()
	assert.Zero(t, sp.Stats().Rows, "and empty")
}

func TestTwoProcessesOnOneSpoolDirectoryTakeTwoSlots(t *testing.T) {
	dir, dsn := t.TempDir(), pgtest.NewDatabase(t)
	a := openSpooled(t, Config{DSN: dsn, Spool: SpoolConfig{Dir: dir}})
	b := openSpooled(t, Config{DSN: dsn, Spool: SpoolConfig{Dir: dir}})
	assert.NotEqual(t, a.w.slotDir, b.w.slotDir)
	record(a, ids("a", 20)...)
	record(b, ids("b", 20)...)
	waitShipped(t, a)
	waitShipped(t, b)
	assert.Equal(t, 40, count(t, a))
}

func TestASpoolDirectoryOfAnotherLedgerIsRefused(t *testing.T) {
	dir := t.TempDir()
	l, err := OpenSpooled(Config{DSN: unreachable, Spool: SpoolConfig{Dir: dir}}, nil, nil)
	require.NoError(t, err)
	require.NoError(t, l.Close(context.Background()))
	_, err = OpenSpooled(Config{DSN: "postgres://postgres@127.0.0.1:1/other?sslmode=disable", Spool: SpoolConfig{Dir: dir}}, nil, nil)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "holds rows for the ledger postgres@127.0.0.1:1/spendguard")
}

func TestARowPostgreSQLRefusesIsDroppedAloneAndCounted(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	l := openSpooled(t, Config{DSN: dsn, Spool: SpoolConfig{Dir: t.TempDir()}})
	waitShipped(t, l) // the schema exists
	_, err := l.pool.Exec(context.Background(), "ALTER TABLE spendguard_ledger ADD CONSTRAINT test_small CHECK (prompt_tokens < 5000)")
	require.NoError(t, err)
	record(l, ids("ok", 3)...)
	bad := report("bad", 0, nil)
	bad.PromptTokens = 9000
	l.Record(&sink.Event{Report: bad})
	record(l, ids("ok2", 3)...)
	waitShipped(t, l)
	assert.Equal(t, 6, count(t, l), "the other rows of the batch are written")
	assert.EqualValues(t, 1, l.SpoolStats().Dropped["rejected"])
}

// bigReport is about 2 KiB spooled.
func bigEvent(id string) *sink.Event {
	return &sink.Event{Report: report(id, 0, map[string]string{"tenant": strings.Repeat("x", 2000)})}
}

func TestAFullSpoolDropsOrRefusesAsConfigured(t *testing.T) {
	t.Run("drop", func(t *testing.T) {
		l := openSpooled(t, Config{DSN: unreachable, Spool: SpoolConfig{Dir: t.TempDir(), MaxBytes: 1 << 20, OnFull: OnFullDrop}})
		for i := range 1000 { // about 2 MiB
			l.Record(bigEvent(fmt.Sprint(i)))
		}
		st := l.SpoolStats()
		assert.Less(t, st.Bytes, int64(1<<20)+4096, "the spool stops at max_bytes")
		assert.Positive(t, st.Dropped["spool_full"])
		assert.EqualValues(t, 1000, st.Rows+int64(st.Dropped["spool_full"]), "every row is spooled or counted")
		assert.NoError(t, l.Admit(), "on_full: drop refuses no request")
	})
	t.Run("refuse", func(t *testing.T) {
		l := openSpooled(t, Config{DSN: unreachable, Spool: SpoolConfig{Dir: t.TempDir(), MaxBytes: 1 << 20}})
		n := 0
		for l.Admit() == nil {
			l.Record(bigEvent(fmt.Sprint(n)))
			n++
			require.Less(t, n, 2000)
		}
		require.ErrorIs(t, l.Admit(), ErrSpoolFull)
		assert.GreaterOrEqual(t, l.SpoolStats().Bytes, int64(1<<20))
		// Requests admitted before still have their rows written.
		for i := range 100 {
			l.Record(bigEvent(fmt.Sprint("late", i)))
		}
		st := l.SpoolStats()
		assert.Zero(t, st.Dropped["spool_full"], "the margin above max_bytes takes in-flight requests' rows")
		assert.EqualValues(t, n+100, st.Rows)
	})
}

func TestSpoolConfig(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want Size
	}{{"1024", 1024}, {"1GiB", 1 << 30}, {"512MiB", 512 << 20}, {"64kb", 64 << 10}, {" 2 G ", 2 << 30}} {
		got, err := ParseSize(tc.in)
		require.NoError(t, err, tc.in)
		assert.Equal(t, tc.want, got, tc.in)
	}
	for _, bad := range []string{"", "GiB", "1.5GiB", "-1", "10 parsecs", "99999999999999999999"} {
		_, err := ParseSize(bad)
		assert.Error(t, err, bad)
	}
	assert.Equal(t, "1GiB", Size(1<<30).String())
	assert.Equal(t, "1000B", Size(1000).String())

	errs := Config{DSN: unreachable, Spool: SpoolConfig{MaxBytes: 1000, OnFull: "block", FsyncInterval: -1, SegmentBytes: 1}}.Validate()
	var fields []string
	for _, e := range errs {
		fields = append(fields, e.Field)
	}
	assert.ElementsMatch(t, []string{"spool.max_bytes", "spool.on_full", "spool.fsync_interval", "spool.segment_bytes"}, fields)

	d := Config{DSN: "postgres://u:secret@db:5432/ledger"}.withDefaults()
	assert.Equal(t, DefaultSpoolDir("postgres://u:other@db:5432/ledger"), d.Spool.Dir, "the default directory does not depend on the password")
	assert.NotEqual(t, DefaultSpoolDir("postgres://u@db:5432/other"), d.Spool.Dir)
	assert.NotContains(t, d.Spool.Dir, "secret")
	assert.Equal(t, OnFullRefuse, d.Spool.OnFull)
}

func TestRowsCarryTheInstanceThatServedThem(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	l := openSpooled(t, Config{DSN: dsn, Instance: "host/42/abcdef", Spool: SpoolConfig{Dir: t.TempDir()}})
	record(l, "one", "two")
	waitShipped(t, l)
	var n int
	require.NoError(t, l.pool.QueryRow(context.Background(),
		"SELECT count(*) FROM spendguard_ledger WHERE instance = 'host/42/abcdef'").Scan(&n))
	assert.Equal(t, 2, n)
}

func FuzzDecodeRow(f *testing.F) {
	good, _ := encodeRow("h/1/x", report("r", 0, map[string]string{"tenant": "a"}))
	f.Add(good)
	f.Add([]byte{1, 200, 1})
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		instance, rep, err := decodeRow(b)
		if err != nil {
			return
		}
		again, err := encodeRow(instance, rep)
		if err != nil {
			t.Fatalf("a decoded row does not encode: %v", err)
		}
		i2, r2, err := decodeRow(again)
		if err != nil || i2 != instance || !proto.Equal(r2, rep) {
			t.Fatalf("round trip changed the row: %v", err)
		}
	})
}

// A process that finds rows another one left (in its own slot, or in an
// orphan slot) records that process as drained once they are shipped;
// its own name is never listed, nor a process that left nothing.
func TestProcessesWhoseLeftRowsWereShippedAreListedAsDrained(t *testing.T) {
	dir, dsn := t.TempDir(), pgtest.NewDatabase(t)
	require.NoError(t, claimBase(dir, ledgerIdentity(dsn)))
	for slot, inst := range map[string]string{"0": "dead-a", "3": "dead-b"} {
		sp, err := spool.Open(spool.Options{Dir: filepath.Join(dir, slot)})
		require.NoError(t, err)
		for _, id := range ids(inst, 5) {
			b, err := encodeRow(inst, report(id, 0, nil))
			require.NoError(t, err)
			require.NoError(t, sp.Append(b))
		}
		require.NoError(t, sp.Close())
	}
	// A slot whose owner died after shipping everything: empty, but named.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "5"), 0o700))
	_, err := takeOwnership(filepath.Join(dir, "5"), "dead-c")
	require.NoError(t, err)
	// A slot whose owner stopped cleanly: no INSTANCE file.
	require.NoError(t, os.MkdirAll(filepath.Join(dir, "6"), 0o700))

	l := openSpooled(t, Config{DSN: dsn, Instance: "me", Spool: SpoolConfig{Dir: dir}})
	record(l, "mine")
	waitShipped(t, l)
	require.Eventually(t, func() bool {
		got, err := l.DrainedInstances(context.Background())
		return err == nil && len(got) == 3
	}, 10*time.Second, 20*time.Millisecond)
	got, err := l.DrainedInstances(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"dead-a", "dead-b", "dead-c"}, sorted(got))

	require.NoError(t, l.MarkReconciled(context.Background(), "dead-a", time.Now()))
	got, err = l.DrainedInstances(context.Background())
	require.NoError(t, err)
	assert.Equal(t, []string{"dead-b", "dead-c"}, sorted(got))
}

func sorted(s []string) []string {
	out := append([]string(nil), s...)
	slices.Sort(out)
	return out
}
