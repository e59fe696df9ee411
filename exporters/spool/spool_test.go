package spool

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func open(t *testing.T, dir string, o Options) *Spool {
	t.Helper()
	o.Dir = dir
	s, err := Open(o)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func rec(i int) []byte { return []byte(fmt.Sprintf("record-%06d", i)) }

// readAll reads and acknowledges everything the spool holds now.
func readAll(t *testing.T, s *Spool, batch int) []string {
	t.Helper()
	var out []string
	for s.Stats().Rows > 0 {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		recs, err := s.Read(ctx, batch, 1<<20)
		cancel()
		require.NoError(t, err)
		for _, r := range recs {
			out = append(out, string(r.Data))
		}
		require.NoError(t, s.Ack(recs))
	}
	return out
}

func segFiles(t *testing.T, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(dir, "*.seg"))
	require.NoError(t, err)
	return m
}

func TestRecordsComeBackInOrderAcrossSegmentsAndSegmentsGoOnceAcknowledged(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 200})
	var want []string
	for i := range 50 {
		require.NoError(t, s.Append(rec(i)))
		want = append(want, string(rec(i)))
	}
	st := s.Stats()
	assert.EqualValues(t, 50, st.Rows)
	assert.EqualValues(t, 50*(headerSize+len(rec(0))), st.Bytes)
	assert.Greater(t, st.Segments, 5, "200-byte segments hold 6 records each")
	assert.False(t, st.Oldest.IsZero())

	assert.Equal(t, want, readAll(t, s, 7))
	st = s.Stats()
	assert.Zero(t, st.Rows)
	assert.Zero(t, st.Bytes)
	assert.True(t, st.Oldest.IsZero())
	assert.EqualValues(t, 50, st.Acked)
	assert.Len(t, segFiles(t, dir), 1, "every segment but the one appended to is deleted once acknowledged")
}

func TestUnacknowledgedRecordsSurviveCloseAndOpen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 300})
	for i := range 40 {
		require.NoError(t, s.Append(rec(i)))
	}
	recs, err := s.Read(context.Background(), 15, 1<<20)
	require.NoError(t, err)
	require.Len(t, recs, 15)
	require.NoError(t, s.Ack(recs[:10])) // 10..14 read, not acknowledged
	require.NoError(t, s.Close())
	require.ErrorIs(t, s.Append(rec(99)), ErrClosed)

	s2 := open(t, dir, Options{SegmentBytes: 300})
	assert.EqualValues(t, 30, s2.Stats().Rows)
	require.NoError(t, s2.Append(rec(40)))
	var want []string
	for i := 10; i <= 40; i++ {
		want = append(want, string(rec(i)))
	}
	assert.Equal(t, want, readAll(t, s2, 4))
}

func TestOldestIsTheFirstUnacknowledgedAppendTime(t *testing.T) {
	now := time.Date(2026, 12, 8, 1, 0, 0, 0, time.UTC)
	clock := func() time.Time { return now }
	s := open(t, t.TempDir(), Options{Now: clock})
	for i := range 3 {
		now = now.Add(time.Second)
		require.NoError(t, s.Append(rec(i)))
	}
	assert.Equal(t, now.Add(-2*time.Second), s.Stats().Oldest.UTC())
	recs, err := s.Read(context.Background(), 1, 1<<20)
	require.NoError(t, err)
	require.NoError(t, s.Ack(recs))
	assert.Equal(t, now.Add(-time.Second), s.Stats().Oldest.UTC())
}

func TestATornTailIsCutOffAtOpen(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{})
	for i := range 5 {
		require.NoError(t, s.Append(rec(i)))
	}
	require.NoError(t, s.Close())
	files := segFiles(t, dir)
	last := files[len(files)-1]
	// A crash in the middle of a write: half a frame at the end.
	frame := appendFrame(nil, rec(5), 1)
	f, err := os.OpenFile(last, os.O_WRONLY|os.O_APPEND, 0)
	require.NoError(t, err)
	_, err = f.Write(frame[:len(frame)/2])
	require.NoError(t, err)
	require.NoError(t, f.Close())
	before, err := os.Stat(last)
	require.NoError(t, err)

	s2 := open(t, dir, Options{})
	after, err := os.Stat(last)
	require.NoError(t, err)
	assert.Equal(t, before.Size()-int64(len(frame)/2), after.Size(), "the torn frame is cut off")
	assert.Zero(t, s2.Stats().Corrupt, "a torn tail is not damage")
	require.NoError(t, s2.Append(rec(6)))
	assert.Equal(t, []string{"record-000000", "record-000001", "record-000002", "record-000003", "record-000004", "record-000006"}, readAll(t, s2, 100))
}

func TestADamagedFrameEndsItsSegmentAndIsCounted(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, Options{SegmentBytes: 100}) // 3 records per segment
	for i := range 9 {
		require.NoError(t, s.Append(rec(i)))
	}
	require.NoError(t, s.Close())
	files := segFiles(t, dir)
	require.GreaterOrEqual(t, len(files), 3)
	// Flip a payload byte of the second record of the first segment.
	b, err := os.ReadFile(files[0])
	require.NoError(t, err)
	b[len(magic)+headerSize+len(rec(0))+headerSize+3] ^= 0xff
	require.NoError(t, os.WriteFile(files[0], b, 0o600))

	s2 := open(t, dir, Options{SegmentBytes: 100})
	assert.EqualValues(t, 1, s2.Stats().Corrupt)
	got := readAll(t, s2, 100)
	assert.Equal(t, "record-000000", got[0])
	assert.Equal(t, "record-000003", got[1], "the rest of the damaged segment is skipped, the next ones read")
	assert.Len(t, got, 7)
}

func TestASecondOpenOfTheSameDirectoryIsRefused(t *testing.T) {
	dir := t.TempDir()
	open(t, dir, Options{})
	_, err := Open(Options{Dir: dir})
	require.ErrorIs(t, err, ErrLocked)
	assert.Contains(t, err.Error(), "process "+strconv.Itoa(os.Getpid()))
}

func TestConcurrentAppendsAreEachReadOnceInTheirOrder(t *testing.T) {
	s := open(t, t.TempDir(), Options{SegmentBytes: 4096, SyncInterval: time.Millisecond, SyncRecords: 16})
	const writers, each = 8, 500
	got := make(chan []Record, 1)
	go func() {
		var all []Record
		for len(all) < writers*each {
			recs, err := s.Read(context.Background(), 64, 4096)
			if err != nil {
				break
			}
			all = append(all, recs...)
			if err := s.Ack(recs); err != nil {
				break
			}
		}
		got <- all
	}()
	var wg sync.WaitGroup
	for w := range writers {
		wg.Go(func() {
			for i := range each {
				if err := s.Append([]byte(fmt.Sprintf("%d/%d", w, i))); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	all := <-got
	require.Len(t, all, writers*each)
	next := make([]int, writers)
	for _, r := range all {
		var w, i int
		_, err := fmt.Sscanf(string(r.Data), "%d/%d", &w, &i)
		require.NoError(t, err)
		require.Equal(t, next[w], i, "writer %d's records in order, none twice", w)
		next[w]++
	}
	st := s.Stats()
	assert.Zero(t, st.Rows)
	assert.EqualValues(t, writers*each, st.Acked)
}

func TestReadWaitsForAnAppendAndEndsWithClose(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	done := make(chan []Record)
	go func() {
		recs, _ := s.Read(context.Background(), 10, 100)
		done <- recs
	}()
	require.NoError(t, s.Append(rec(1)))
	recs := <-done
	require.Len(t, recs, 1)

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	_, err := s.Read(ctx, 10, 100)
	require.ErrorIs(t, err, context.DeadlineExceeded)

	errc := make(chan error)
	go func() {
		_, err := s.Read(context.Background(), 10, 100)
		errc <- err
	}()
	require.NoError(t, s.Close())
	require.ErrorIs(t, <-errc, ErrClosed)
}

func TestMaxBytesBoundsABatchButNeverStarvesIt(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	for i := range 10 {
		require.NoError(t, s.Append(rec(i)))
	}
	recs, err := s.Read(context.Background(), 100, 30) // 13-byte records: 2 fit
	require.NoError(t, err)
	assert.Len(t, recs, 2)
	require.NoError(t, s.Ack(recs))
	recs, err = s.Read(context.Background(), 100, 1)
	require.NoError(t, err)
	assert.Len(t, recs, 1, "one record is returned even when it alone passes maxBytes")
}

func TestOversizedRecordIsRefused(t *testing.T) {
	s := open(t, t.TempDir(), Options{})
	require.ErrorIs(t, s.Append(make([]byte, MaxRecord+1)), ErrTooLarge)
	require.NoError(t, s.Append(make([]byte, MaxRecord)))
	recs, err := s.Read(context.Background(), 1, 1)
	require.NoError(t, err)
	assert.Len(t, recs[0].Data, MaxRecord)
}

// The child half of TestAKilledProcessLosesNoAppendedRecord: it appends
// SPOOL_CHILD_N records, says so, and waits to be killed.
func TestMain(m *testing.M) {
	if dir := os.Getenv("SPOOL_CHILD_DIR"); dir != "" {
		n, _ := strconv.Atoi(os.Getenv("SPOOL_CHILD_N"))
		s, err := Open(Options{Dir: dir, SyncInterval: time.Hour, SyncRecords: 1 << 30, SegmentBytes: 1 << 12})
		if err != nil {
			fmt.Println("open:", err)
			os.Exit(1)
		}
		for i := range n {
			if err := s.Append(rec(i)); err != nil {
				fmt.Println("append:", err)
				os.Exit(1)
			}
		}
		fmt.Println("appended")
		time.Sleep(time.Hour)
	}
	os.Exit(m.Run())
}

// A record whose Append returned survives SIGKILL even though no group
// commit ran (the child never fsyncs): the kernel holds what write(2)
// took.
func TestAKilledProcessLosesNoAppendedRecord(t *testing.T) {
	dir := t.TempDir()
	const n = 1000
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "SPOOL_CHILD_DIR="+dir, "SPOOL_CHILD_N="+strconv.Itoa(n))
	out, err := cmd.StdoutPipe()
	require.NoError(t, err)
	require.NoError(t, cmd.Start())
	buf := make([]byte, 64)
	k, _ := out.Read(buf)
	require.Equal(t, "appended\n", string(buf[:k]))
	require.NoError(t, cmd.Process.Signal(syscall.SIGKILL))
	err = cmd.Wait()
	var ee *exec.ExitError
	require.True(t, errors.As(err, &ee), "the child was killed: %v", err)

	s := open(t, dir, Options{})
	got := readAll(t, s, 333)
	require.Len(t, got, n)
	for i, g := range got {
		require.Equal(t, string(rec(i)), g)
	}
}

func TestReopeningAnEmptySpoolLeavesOneSegment(t *testing.T) {
	dir := t.TempDir()
	for range 5 {
		s, err := Open(Options{Dir: dir})
		require.NoError(t, err)
		require.NoError(t, s.Append(rec(1)))
		readAll(t, s, 10)
		require.NoError(t, s.Close())
	}
	assert.Len(t, segFiles(t, dir), 1)
}
