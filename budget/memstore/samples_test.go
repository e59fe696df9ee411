package memstore_test

import (
	"context"
	"path/filepath"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/budget/storetest"
)

func TestSamplesAppendTrimsToKeep(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	require.NoError(t, s.AppendSamples(ctx, []estimate.Batch{{Key: "a", Values: []int64{1, 2, 3}}, {Key: "b", Values: []int64{9}}}, 4))
	require.NoError(t, s.AppendSamples(ctx, []estimate.Batch{{Key: "a", Values: []int64{4, 5}}}, 4))
	got, err := s.LoadSamples(ctx, 4)
	require.NoError(t, err)
	assert.Equal(t, map[string][]int64{"a": {2, 3, 4, 5}, "b": {9}}, got)
	got, err = s.LoadSamples(ctx, 2)
	require.NoError(t, err)
	assert.Equal(t, map[string][]int64{"a": {4, 5}, "b": {9}}, got, "the newest keep of each")
	got["a"][0] = 1000
	again, err := s.LoadSamples(ctx, 2)
	require.NoError(t, err)
	assert.Equal(t, []int64{4, 5}, again["a"], "LoadSamples returns copies")
	assert.Error(t, s.AppendSamples(ctx, nil, 0))
	_, err = s.LoadSamples(ctx, 0)
	assert.Error(t, err)
}

// The snapshot keeps the samples: a restarted single replica keeps its
// learned estimate.
func TestSnapshotKeepsSamples(t *testing.T) {
	ctx := context.Background()
	s := memstore.New()
	cfg := estimate.Config{Quantile: 0.5, Window: 100, MinSamples: 3}
	e, err := estimate.New(cfg, estimate.Options{Samples: s})
	require.NoError(t, err)
	for _, v := range []int64{100, 200, 300, 400} {
		e.Observe("org/model\x00odd", "chat_completions", v)
	}
	require.NoError(t, e.Flush(ctx))
	path := filepath.Join(t.TempDir(), "state.json")
	require.NoError(t, s.WriteSnapshot(path, storetest.T0))

	loaded, err := memstore.Load(path)
	require.NoError(t, err)
	restarted, err := estimate.New(cfg, estimate.Options{Samples: loaded})
	require.NoError(t, err)
	require.NoError(t, restarted.Load(ctx))
	got, n, ok := restarted.Estimate("org/model\x00odd", "chat_completions")
	assert.True(t, ok)
	assert.Equal(t, 4, n)
	assert.Equal(t, int64(200), got)
}

func TestSnapshotSamplesAreChecked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "state.json")
	writeSnapshotFile(t, path, `{"written_at":"2026-11-30T12:00:00Z","counters":[],"reservations":[],"samples":{"m\u0000e":[5,-1]}}`)
	_, err := memstore.Load(path)
	require.ErrorIs(t, err, memstore.ErrCorruptSnapshot)

	writeSnapshotFile(t, path, `{"written_at":"2026-11-30T12:00:00Z","counters":[],"reservations":[],"samples":{"m\u0000e":[5,6]}}`)
	s, err := memstore.Load(path)
	require.NoError(t, err)
	got, err := s.LoadSamples(context.Background(), 10)
	require.NoError(t, err)
	assert.Equal(t, map[string][]int64{"m\x00e": {5, 6}}, got)

	// A file written before samples existed loads, with none.
	writeSnapshotFile(t, path, `{"written_at":"2026-11-30T12:00:00Z","counters":[{"key":"a","committed":1}],"reservations":[]}`)
	s, err = memstore.Load(path)
	require.NoError(t, err)
	got, err = s.LoadSamples(context.Background(), 10)
	require.NoError(t, err)
	assert.Empty(t, got)
}
