package memstore_test

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/storetest"
	"github.com/spendguard/spendguard/internal/money"
)

// snapshotFixture fills a store with committed spend on a period counter,
// a total counter and a rolling bucket, and two live reservations.
func snapshotFixture(t *testing.T) (*memstore.Store, []budget.Item) {
	t.Helper()
	ctx, t0 := context.Background(), storetest.T0
	items := []budget.Item{
		{Key: "tenant-daily|day|tenant=acme@1796083200", Limit: 100 * money.PerUSD, Enforce: true, Expires: t0.Add(12 * time.Hour)},
		{Key: "all|total|@total", Limit: 1000 * money.PerUSD, Enforce: true},
		{Key: "guard|rolling|user=u@1796126400", Limit: 5 * money.PerUSD, Enforce: true, Expires: t0.Add(10 * time.Minute),
			Window: []string{"guard|rolling|user=u@1796125800"}},
	}
	s := memstore.New()
	require.NoError(t, s.Settle(ctx, "done", 1_234_567_891, items, t0))
	for _, id := range []string{"live1", "live2"} {
		out, err := s.Reserve(ctx, id, 7, items, 10*time.Minute, t0)
		require.NoError(t, err)
		require.True(t, out.OK())
	}
	return s, items
}

func TestSnapshotRoundTrip(t *testing.T) {
	s, items := snapshotFixture(t)
	ctx, t0 := context.Background(), storetest.T0
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, s.WriteSnapshot(path, t0))

	loaded, err := memstore.Load(path)
	require.NoError(t, err)
	want, err := s.Usage(ctx, items, t0)
	require.NoError(t, err)
	got, err := loaded.Usage(ctx, items, t0)
	require.NoError(t, err)
	assert.Equal(t, want, got)
	assert.Equal(t, budget.Counter{Committed: 1_234_567_891, Reserved: 14}, got[0])

	// The loaded reservations behave as before: they settle and expire.
	require.NoError(t, loaded.Settle(ctx, "live1", 3, items, t0))
	got, err = loaded.Usage(ctx, items, t0.Add(10*time.Minute))
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: 1_234_567_894}, got[0], "live2 expired at its TTL")

	// Writing the same state twice gives the same bytes.
	again := filepath.Join(t.TempDir(), "again.json")
	require.NoError(t, s.WriteSnapshot(again, t0))
	a, _ := os.ReadFile(path)
	b, _ := os.ReadFile(again)
	assert.Equal(t, string(a), string(b))
}

// TestSnapshotKeepsExtensions: a reservation's extensions and renewed
// expiry are in the snapshot, so that after a restart it still expires
// late and its Settle still releases all of it.
func TestSnapshotKeepsExtensions(t *testing.T) {
	s, items := snapshotFixture(t)
	ctx, t0 := context.Background(), storetest.T0
	renewed := t0.Add(9 * time.Minute)
	granted, _, err := s.Extend(ctx, "live1", 5, items, 10*time.Minute, renewed)
	require.NoError(t, err)
	require.Equal(t, money.Nano(5), granted)
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, s.WriteSnapshot(path, renewed))

	loaded, err := memstore.Load(path)
	require.NoError(t, err)
	later := t0.Add(15 * time.Minute) // live2 has expired, live1 not
	got, err := loaded.Usage(ctx, items, later)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: 1_234_567_891, Reserved: 12}, got[0])
	require.NoError(t, loaded.Settle(ctx, "live1", 0, items, later))
	got, err = loaded.Usage(ctx, items, later)
	require.NoError(t, err)
	assert.Equal(t, budget.Counter{Committed: 1_234_567_891}, got[0], "the extension is released with the reservation")
}

func TestSnapshotMissingFileIsEmpty(t *testing.T) {
	s, err := memstore.Load(filepath.Join(t.TempDir(), "none.json"))
	require.NoError(t, err)
	counters, reservations := s.Len()
	assert.Zero(t, counters+reservations)
}

func TestSnapshotLeavesNoTemporaryFiles(t *testing.T) {
	s, _ := snapshotFixture(t)
	dir := t.TempDir()
	path := filepath.Join(dir, "state.json")
	for range 3 {
		require.NoError(t, s.WriteSnapshot(path, storetest.T0))
	}
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1)
	assert.Equal(t, "state.json", entries[0].Name())
}

func TestSnapshotWriteFailsInMissingDirectory(t *testing.T) {
	s, _ := snapshotFixture(t)
	err := s.WriteSnapshot(filepath.Join(t.TempDir(), "no", "such", "dir", "state.json"), storetest.T0)
	assert.Error(t, err)
}

// TestCorruptSnapshotIsAnError: a damaged file is never read as empty
// counters; the error names the file and says what to do.
func TestCorruptSnapshotIsAnError(t *testing.T) {
	s, _ := snapshotFixture(t)
	good := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, s.WriteSnapshot(good, storetest.T0))
	data, err := os.ReadFile(good)
	require.NoError(t, err)
	flip := []byte(string(data))
	i := strings.Index(string(flip), "1234567891")
	require.Positive(t, i)
	flip[i] = '9'

	cases := map[string][]byte{
		"empty":          {},
		"cut short":      data[:len(data)/2],
		"digit edited":   flip,
		"not a snapshot": []byte(`{"counters":[]}`),
		"header only":    []byte(strings.SplitN(string(data), "\n", 2)[0] + "\n"),
	}
	for name, content := range cases {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			require.NoError(t, os.WriteFile(path, content, 0o600))
			_, err := memstore.Load(path)
			require.ErrorIs(t, err, memstore.ErrCorruptSnapshot)
			assert.Contains(t, err.Error(), path)
			assert.Contains(t, err.Error(), "move the file away")
		})
	}

	t.Run("unreadable", func(t *testing.T) {
		_, err := memstore.Load(t.TempDir()) // a directory
		assert.Error(t, err)
	})
}

// TestSnapshotKeepsParkedRecords: a background response parked before a
// restart can still be taken, or popped at its deadline, after it.
func TestSnapshotKeepsParkedRecords(t *testing.T) {
	ctx, t0 := context.Background(), storetest.T0
	s, _ := snapshotFixture(t)
	require.NoError(t, s.Park(ctx, "bg:resp_1", []byte{0, 1, '"', 0xff}, t0.Add(time.Hour)))
	require.NoError(t, s.Park(ctx, "bg:resp_2", []byte(`{"a":1}`), t0.Add(2*time.Hour)))
	path := filepath.Join(t.TempDir(), "snap")
	require.NoError(t, s.WriteSnapshot(path, t0))

	got, err := memstore.Load(path)
	require.NoError(t, err)
	rec, found, err := got.Take(ctx, "bg:resp_1")
	require.NoError(t, err)
	require.True(t, found)
	assert.Equal(t, []byte{0, 1, '"', 0xff}, rec)
	due, err := got.PopExpired(ctx, t0.Add(2*time.Hour), 10)
	require.NoError(t, err)
	require.Len(t, due, 1)
	assert.Equal(t, "bg:resp_2", due[0].Key)
	assert.True(t, due[0].Deadline.Equal(t0.Add(2*time.Hour)))

	// Without parked records the file has no "parked" member (older
	// binaries read it).
	empty := filepath.Join(t.TempDir(), "empty")
	require.NoError(t, memstore.New().WriteSnapshot(empty, t0))
	data, err := os.ReadFile(empty)
	require.NoError(t, err)
	assert.NotContains(t, string(data), "parked")
}
