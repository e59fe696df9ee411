package memstore_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"math"
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
)

// TestSnapshotKeepsSaturatedCounters: counters at 2^63-1 (an absurd
// usage) and reservations that saturate a counter survive a snapshot, so
// a restart does not unblock the scope.
func TestSnapshotKeepsSaturatedCounters(t *testing.T) {
	ctx, t0 := context.Background(), storetest.T0
	a := budget.Item{Key: "a@total", Limit: 100, Enforce: true}
	b := budget.Item{Key: "b@total"}
	s := memstore.New()
	require.NoError(t, s.Settle(ctx, "s", math.MaxInt64, []budget.Item{a}, t0))
	for _, id := range []string{"r1", "r2"} {
		out, err := s.Reserve(ctx, id, math.MaxInt64-1, []budget.Item{b}, time.Hour, t0)
		require.NoError(t, err)
		require.True(t, out.OK())
	}
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, s.WriteSnapshot(path, t0))
	loaded, err := memstore.Load(path)
	require.NoError(t, err)
	got, err := loaded.Usage(ctx, []budget.Item{a, b}, t0)
	require.NoError(t, err)
	assert.Equal(t, []budget.Counter{{Committed: math.MaxInt64}, {Reserved: math.MaxInt64}}, got)
	out, err := loaded.Reserve(ctx, "r3", 0, []budget.Item{a}, time.Hour, t0)
	require.NoError(t, err)
	assert.Equal(t, 0, out.Blocked, "still blocked after the restart")
}

// TestSnapshotRefusesAbsurdValues: a snapshot whose checksum matches but
// whose amounts no store could hold (beyond int64, negative, in exponent
// form) stops the start instead of loading a wrapped or zero counter.
func TestSnapshotRefusesAbsurdValues(t *testing.T) {
	for name, body := range map[string]string{
		"committed beyond int64": `{"written_at":"2026-11-30T12:00:00Z","counters":[{"key":"a","committed":9223372036854775808}],"reservations":[]}`,
		"committed 1e30":         `{"written_at":"2026-11-30T12:00:00Z","counters":[{"key":"a","committed":1e30}],"reservations":[]}`,
		"committed negative":     `{"written_at":"2026-11-30T12:00:00Z","counters":[{"key":"a","committed":-5}],"reservations":[]}`,
		"committed fraction":     `{"written_at":"2026-11-30T12:00:00Z","counters":[{"key":"a","committed":12.5}],"reservations":[]}`,
		"reservation negative":   `{"written_at":"2026-11-30T12:00:00Z","counters":[{"key":"a","committed":1}],"reservations":[{"id":"r","keys":["a"],"amount":-1,"expires":"2026-11-30T13:00:00Z"}]}`,
		"reservation beyond":     `{"written_at":"2026-11-30T12:00:00Z","counters":[{"key":"a","committed":1}],"reservations":[{"id":"r","keys":["a"],"amount":18446744073709551615,"expires":"2026-11-30T13:00:00Z"}]}`,
	} {
		t.Run(name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "state.json")
			writeSnapshotFile(t, path, body)
			_, err := memstore.Load(path)
			require.ErrorIs(t, err, memstore.ErrCorruptSnapshot)
		})
	}
	t.Run("the same file with a sane amount loads", func(t *testing.T) {
		path := filepath.Join(t.TempDir(), "state.json")
		writeSnapshotFile(t, path, `{"written_at":"2026-11-30T12:00:00Z","counters":[{"key":"a","committed":9223372036854775807}],"reservations":[]}`)
		s, err := memstore.Load(path)
		require.NoError(t, err)
		got, err := s.Usage(context.Background(), []budget.Item{{Key: "a"}}, storetest.T0)
		require.NoError(t, err)
		assert.Equal(t, []budget.Counter{{Committed: math.MaxInt64}}, got)
	})
}

// writeSnapshotFile writes body under a header with its true checksum,
// in the header format of a file WriteSnapshot wrote.
func writeSnapshotFile(t *testing.T, path, body string) {
	t.Helper()
	ref := filepath.Join(t.TempDir(), "ref.json")
	require.NoError(t, memstore.New().WriteSnapshot(ref, storetest.T0))
	data, err := os.ReadFile(ref)
	require.NoError(t, err)
	header, _, _ := strings.Cut(string(data), "\n")
	magic := header[:strings.LastIndex(header, ":")+1]
	sum := sha256.Sum256([]byte(body))
	require.NoError(t, os.WriteFile(path, []byte(magic+hex.EncodeToString(sum[:])+"\n"+body+"\n"), 0o600))
}
