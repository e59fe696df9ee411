package estimate_test

import (
	"context"
	"testing"
	"testing/synctest"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/budget/memstore"
)

// Run loads at start, flushes every FlushInterval and loads every
// LoadInterval: a replica sees another's observations within both.
func TestRunSharesInTheBackground(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		store := memstore.New()
		cfg := estimate.Config{Quantile: 1, Window: 10, MinSamples: 1}
		require.NoError(t, store.AppendSamples(context.Background(), []estimate.Batch{{Key: estimate.Key("m", "e"), Values: []int64{7}}}, 10))
		opts := estimate.Options{Samples: store, FlushInterval: time.Second, LoadInterval: 5 * time.Second}
		a := newEstimator(t, cfg, opts)
		b := newEstimator(t, cfg, opts)
		ctx, cancel := context.WithCancel(context.Background())
		done := make(chan struct{}, 2)
		for _, e := range []*estimate.Estimator{a, b} {
			go func() { e.Run(ctx); done <- struct{}{} }()
		}
		synctest.Wait()
		got, _, ok := a.Estimate("m", "e")
		require.True(t, ok, "loaded at start")
		assert.Equal(t, int64(7), got)

		a.Observe("m", "e", 900)
		time.Sleep(time.Second)
		synctest.Wait()
		lists, err := store.LoadSamples(context.Background(), 10)
		require.NoError(t, err)
		assert.Equal(t, []int64{7, 900}, lists[estimate.Key("m", "e")], "flushed after one interval")
		got, _, _ = a.Estimate("m", "e")
		assert.Equal(t, int64(900), got, "refreshed after one interval")

		time.Sleep(5 * time.Second)
		synctest.Wait()
		got, n, _ := b.Estimate("m", "e")
		assert.Equal(t, 2, n, "b loaded a's observation")
		assert.Equal(t, int64(900), got)

		cancel()
		<-done
		<-done
	})
}

// Everything at once, for the race detector: observations and estimates
// of several pairs while the windows are flushed, loaded, refreshed and
// resized.
func TestConcurrentUse(t *testing.T) {
	ctx := context.Background()
	store := memstore.New()
	e := newEstimator(t, estimate.Config{Quantile: 0.9, Window: 50, MinSamples: 5}, estimate.Options{Samples: store})
	done := make(chan struct{})
	for w := range 4 {
		go func() {
			defer func() { done <- struct{}{} }()
			for i := range 2000 {
				model := []string{"a", "b", "c"}[i%3]
				e.Observe(model, "chat_completions", int64(i*w))
				e.Estimate(model, "chat_completions")
			}
		}()
	}
	go func() {
		defer func() { done <- struct{}{} }()
		for i := range 50 {
			assert.NoError(t, e.Flush(ctx))
			assert.NoError(t, e.Load(ctx))
			e.Refresh()
			e.Snapshot()
			assert.NoError(t, e.SetConfig(estimate.Config{Quantile: 0.9, Window: 20 + i%40, MinSamples: 5}))
		}
	}()
	for range 5 {
		<-done
	}
	require.NoError(t, e.Flush(ctx))
	_, series := e.Snapshot()
	require.Len(t, series, 3)
	for _, s := range series {
		assert.LessOrEqual(t, s.Samples, e.Config().Window)
	}
}
