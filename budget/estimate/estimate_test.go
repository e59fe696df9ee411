package estimate_test

import (
	"context"
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/budget/memstore"
)

func newEstimator(t testing.TB, cfg estimate.Config, opts estimate.Options) *estimate.Estimator {
	t.Helper()
	e, err := estimate.New(cfg, opts)
	require.NoError(t, err)
	return e
}

// reference is the nearest-rank quantile of vs computed the plain way:
// the smallest value v such that at least q*len(vs) of the values are <= v.
func reference(q float64, vs []int64) int64 {
	s := slices.Sorted(slices.Values(vs))
	for _, v := range s {
		le := 0
		for _, w := range s {
			if w <= v {
				le++
			}
		}
		if float64(le) >= q*float64(len(s))-1e-9 {
			return v
		}
	}
	return s[len(s)-1]
}

func TestEstimateIsTheNearestRankQuantileOfTheWindow(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, tc := range []struct {
		name   string
		q      float64
		window int
		n      int
	}{
		{"p95 partly filled", 0.95, 1000, 737},
		{"p95 wrapped several times", 0.95, 100, 1234},
		{"p50", 0.5, 64, 500},
		{"p99.9", 0.999, 2000, 2000},
		{"max", 1, 10, 33},
		{"tiny quantile is the minimum", 0.0001, 50, 49},
		{"window of one", 0.95, 1, 7},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEstimator(t, estimate.Config{Quantile: tc.q, Window: tc.window, MinSamples: 1}, estimate.Options{})
			var all []int64
			for range tc.n {
				v := rng.Int64N(8000)
				if rng.IntN(10) == 0 {
					v = rng.Int64N(5) // ties
				}
				all = append(all, v)
				e.Observe("m", "chat_completions", v)
			}
			window := all[max(len(all)-tc.window, 0):]
			got, n, ok := e.Estimate("m", "chat_completions")
			require.True(t, ok)
			assert.Equal(t, len(window), n)
			assert.Equal(t, reference(tc.q, window), got)
		})
	}
}

func TestTwentyOfP95IsTheNineteenth(t *testing.T) {
	e := newEstimator(t, estimate.DefaultConfig(), estimate.Options{})
	for i := int64(1); i <= 20; i++ {
		e.Observe("m", "completions", i*10)
	}
	got, n, ok := e.Estimate("m", "completions")
	require.True(t, ok)
	assert.Equal(t, 20, n)
	assert.Equal(t, int64(190), got, "ceil(0.95*20) = 19, despite 0.95 not being exact in binary")
}

func TestMinSamples(t *testing.T) {
	e := newEstimator(t, estimate.Config{Quantile: 0.95, Window: 100, MinSamples: 5}, estimate.Options{})
	_, n, ok := e.Estimate("m", "chat_completions")
	assert.False(t, ok)
	assert.Zero(t, n)
	for i := range 4 {
		e.Observe("m", "chat_completions", int64(100+i))
	}
	_, n, ok = e.Estimate("m", "chat_completions")
	assert.False(t, ok, "4 samples of 5 needed")
	assert.Equal(t, 4, n)
	e.Observe("m", "chat_completions", 500)
	got, n, ok := e.Estimate("m", "chat_completions")
	assert.True(t, ok)
	assert.Equal(t, 5, n)
	assert.Equal(t, int64(500), got)
	_, _, ok = e.Estimate("m", "completions")
	assert.False(t, ok, "another endpoint of the same model learns apart")
	_, _, ok = e.Estimate("other", "chat_completions")
	assert.False(t, ok)
}

func TestWindowKeepsOnlyTheNewest(t *testing.T) {
	e := newEstimator(t, estimate.Config{Quantile: 1, Window: 3, MinSamples: 1}, estimate.Options{})
	for _, v := range []int64{9000, 10, 20, 30} {
		e.Observe("m", "e", v)
	}
	e.Refresh()
	got, n, _ := e.Estimate("m", "e")
	assert.Equal(t, 3, n)
	assert.Equal(t, int64(30), got, "9000 left the window")
}

func TestNegativeObservationsAreIgnored(t *testing.T) {
	e := newEstimator(t, estimate.Config{Quantile: 1, Window: 3, MinSamples: 1}, estimate.Options{})
	e.Observe("m", "e", -5)
	_, n, _ := e.Estimate("m", "e")
	assert.Zero(t, n)
}

func TestCachedEstimateFollowsObservationsAfterRefresh(t *testing.T) {
	e := newEstimator(t, estimate.Config{Quantile: 1, Window: 10, MinSamples: 1}, estimate.Options{})
	e.Observe("m", "e", 100)
	got, _, _ := e.Estimate("m", "e")
	require.Equal(t, int64(100), got)
	e.Observe("m", "e", 300)
	got, n, _ := e.Estimate("m", "e")
	assert.Equal(t, 2, n, "the count is live")
	assert.Equal(t, int64(100), got, "the estimate is the cached one until the next refresh")
	e.Refresh()
	got, _, _ = e.Estimate("m", "e")
	assert.Equal(t, int64(300), got)
}

func TestSetConfig(t *testing.T) {
	e := newEstimator(t, estimate.Config{Quantile: 1, Window: 10, MinSamples: 1}, estimate.Options{})
	for i := int64(1); i <= 10; i++ {
		e.Observe("m", "e", i)
	}
	got, _, _ := e.Estimate("m", "e")
	require.Equal(t, int64(10), got)

	require.NoError(t, e.SetConfig(estimate.Config{Quantile: 0.5, Window: 10, MinSamples: 1}))
	got, _, _ = e.Estimate("m", "e")
	assert.Equal(t, int64(5), got, "a new quantile applies at once")

	require.NoError(t, e.SetConfig(estimate.Config{Quantile: 0.5, Window: 4, MinSamples: 1}))
	got, n, _ := e.Estimate("m", "e")
	assert.Equal(t, 4, n, "a smaller window keeps the newest")
	assert.Equal(t, int64(8), got, "p50 of 7,8,9,10")

	require.NoError(t, e.SetConfig(estimate.Config{Quantile: 0.5, Window: 6, MinSamples: 5}))
	_, n, ok := e.Estimate("m", "e")
	assert.Equal(t, 4, n)
	assert.False(t, ok, "min_samples 5 is not met by 4")
	e.Observe("m", "e", 100)
	e.Observe("m", "e", 200)
	got, n, ok = e.Estimate("m", "e")
	assert.True(t, ok)
	assert.Equal(t, 6, n, "a larger window fills up")
	assert.Equal(t, int64(9), got, "p50 of 7,8,9,10,100,200")

	err := e.SetConfig(estimate.Config{Quantile: 0, Window: 6, MinSamples: 1})
	require.Error(t, err)
	assert.Equal(t, 0.5, e.Config().Quantile, "a refused configuration changes nothing")
}

func TestConfigValidate(t *testing.T) {
	assert.NoError(t, estimate.DefaultConfig().Validate())
	for _, c := range []estimate.Config{
		{Quantile: 0, Window: 10, MinSamples: 1},
		{Quantile: 1.01, Window: 10, MinSamples: 1},
		{Quantile: math.NaN(), Window: 10, MinSamples: 1},
		{Quantile: 0.9, Window: 0, MinSamples: 1},
		{Quantile: 0.9, Window: estimate.MaxWindow + 1, MinSamples: 1},
		{Quantile: 0.9, Window: 10, MinSamples: 0},
		{Quantile: 0.9, Window: 10, MinSamples: 11},
	} {
		assert.Error(t, c.Validate(), "%+v", c)
		_, err := estimate.New(c, estimate.Options{})
		assert.Error(t, err, "%+v", c)
	}
}

func TestMaxKeysBoundsThePairs(t *testing.T) {
	e := newEstimator(t, estimate.Config{Quantile: 1, Window: 2, MinSamples: 1}, estimate.Options{MaxKeys: 2})
	e.Observe("a", "e", 1)
	e.Observe("b", "e", 2)
	e.Observe("c", "e", 3)
	e.Observe("a", "e", 4)
	_, _, ok := e.Estimate("c", "e")
	assert.False(t, ok, "a third pair is not learned")
	got, n, ok := e.Estimate("a", "e")
	assert.True(t, ok, "known pairs keep learning")
	assert.Equal(t, 2, n)
	assert.Equal(t, int64(4), got)
	assert.Equal(t, uint64(1), e.Dropped())
}

func TestSnapshotIsSortedAndComplete(t *testing.T) {
	e := newEstimator(t, estimate.Config{Quantile: 1, Window: 5, MinSamples: 2}, estimate.Options{})
	e.Observe("z", "chat_completions", 7)
	e.Observe("a", "completions", 3)
	e.Observe("a", "chat_completions", 1)
	e.Observe("a", "chat_completions", 2)
	cfg, series := e.Snapshot()
	assert.Equal(t, estimate.Config{Quantile: 1, Window: 5, MinSamples: 2}, cfg)
	assert.Equal(t, []estimate.Series{
		{Model: "a", Endpoint: "chat_completions", Samples: 2, Tokens: 2, Active: true},
		{Model: "a", Endpoint: "completions", Samples: 1, Tokens: 3},
		{Model: "z", Endpoint: "chat_completions", Samples: 1, Tokens: 7},
	}, series)
}

func TestKeyRoundTrip(t *testing.T) {
	m, ep, ok := estimate.SplitKey(estimate.Key("org/model:v1", "chat_completions"))
	assert.True(t, ok)
	assert.Equal(t, "org/model:v1", m)
	assert.Equal(t, "chat_completions", ep)
	_, _, ok = estimate.SplitKey("no separator")
	assert.False(t, ok)
}

// Sharing through a store: two replicas on one memory store learn from
// each other, and a replica started later starts from what was learned.
func TestReplicasShareAndRestartKeepsTheEstimate(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	cfg := estimate.Config{Quantile: 1, Window: 10, MinSamples: 3}
	a := newEstimator(t, cfg, estimate.Options{Samples: store})
	b := newEstimator(t, cfg, estimate.Options{Samples: store})
	a.Observe("m", "e", 100)
	a.Observe("m", "e", 200)
	b.Observe("m", "e", 300)
	require.NoError(t, a.Flush(ctx))
	require.NoError(t, b.Flush(ctx))
	_, n, ok := a.Estimate("m", "e")
	require.False(t, ok)
	require.Equal(t, 2, n)

	require.NoError(t, a.Load(ctx))
	b.Observe("m", "e", 50) // not flushed yet: kept by b's Load
	require.NoError(t, b.Load(ctx))
	got, n, ok := a.Estimate("m", "e")
	assert.True(t, ok)
	assert.Equal(t, 3, n, "a has b's sample")
	assert.Equal(t, int64(300), got)
	_, n, _ = b.Estimate("m", "e")
	assert.Equal(t, 4, n, "b has a's two samples, its own, and its unflushed one")

	require.NoError(t, b.Flush(ctx))
	restarted := newEstimator(t, cfg, estimate.Options{Samples: store})
	require.NoError(t, restarted.Load(ctx))
	got, n, ok = restarted.Estimate("m", "e")
	assert.True(t, ok)
	assert.Equal(t, 4, n)
	assert.Equal(t, int64(300), got)
}

func TestLoadKeepsTheWindowSize(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	big := newEstimator(t, estimate.Config{Quantile: 1, Window: 100, MinSamples: 1}, estimate.Options{Samples: store})
	for i := range int64(50) {
		big.Observe("m", "e", i)
	}
	require.NoError(t, big.Flush(ctx))
	small := newEstimator(t, estimate.Config{Quantile: 1, Window: 5, MinSamples: 1}, estimate.Options{Samples: store})
	require.NoError(t, small.Load(ctx))
	got, n, _ := small.Estimate("m", "e")
	assert.Equal(t, 5, n)
	assert.Equal(t, int64(49), got)
}

// failing is a Samples whose calls fail while down is set.
type failing struct {
	estimate.Samples
	down bool
}

func (f *failing) AppendSamples(ctx context.Context, b []estimate.Batch, keep int) error {
	if f.down {
		return errors.New("store down")
	}
	return f.Samples.AppendSamples(ctx, b, keep)
}

func TestAFailedFlushKeepsTheObservationsForTheNext(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	f := &failing{Samples: store, down: true}
	e := newEstimator(t, estimate.Config{Quantile: 1, Window: 10, MinSamples: 1}, estimate.Options{Samples: f})
	e.Observe("m", "e", 1)
	e.Observe("m", "e", 2)
	require.Error(t, e.Flush(ctx))
	e.Observe("m", "e", 3)
	f.down = false
	require.NoError(t, e.Flush(ctx))
	lists, err := store.LoadSamples(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 2, 3}, lists[estimate.Key("m", "e")], "in order, none lost")
	require.NoError(t, e.Flush(ctx))
	lists, err = store.LoadSamples(ctx, 10)
	require.NoError(t, err)
	assert.Equal(t, []int64{1, 2, 3}, lists[estimate.Key("m", "e")], "nothing appended twice")
	assert.Zero(t, e.Lost())
}

func TestObserveAndEstimateAllocateNothingOnceWarm(t *testing.T) {
	ctx := context.Background()
	e := newEstimator(t, estimate.DefaultConfig(), estimate.Options{Samples: memstore.New()})
	for i := range 100 {
		e.Observe("m", "chat_completions", int64(i))
	}
	require.NoError(t, e.Flush(ctx))
	for i := range 100 {
		e.Observe("m", "chat_completions", int64(i))
	}
	require.NoError(t, e.Flush(ctx)) // both pending buffers exist now
	e.Refresh()
	assert.Zero(t, testing.AllocsPerRun(100, func() { e.Observe("m", "chat_completions", 42) }))
	assert.Zero(t, testing.AllocsPerRun(100, func() { e.Estimate("m", "chat_completions") }))
}

func BenchmarkEstimate(b *testing.B) {
	e := newEstimator(b, estimate.DefaultConfig(), estimate.Options{})
	for i := range 1000 {
		e.Observe("meta-llama/Llama-3.1-8B-Instruct", "chat_completions", int64(i))
	}
	e.Refresh()
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			e.Estimate("meta-llama/Llama-3.1-8B-Instruct", "chat_completions")
		}
	})
}

func BenchmarkObserve(b *testing.B) {
	e := newEstimator(b, estimate.DefaultConfig(), estimate.Options{})
	e.Observe("meta-llama/Llama-3.1-8B-Instruct", "chat_completions", 1)
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		i := int64(0)
		for pb.Next() {
			i++
			e.Observe("meta-llama/Llama-3.1-8B-Instruct", "chat_completions", i)
		}
	})
}
