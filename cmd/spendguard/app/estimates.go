package app

import (
	"context"
	"fmt"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/processor"
)

// estimateFlushTimeout bounds the last flush of the learned output
// estimates at shutdown.
const estimateFlushTimeout = 5 * time.Second

// startEstimates builds the learned output estimate (limits.streams.
// estimate) beside the store, which shares its samples between replicas
// and keeps them over restarts (Redis lists, or the memory store's
// snapshot), starts its background sync and shows it in /metrics. Its
// stop goes on the cleanup stack above the store's close and below the
// gRPC server's: the drained streams' observations are flushed, then the
// store is closed (the memory store's last snapshot holds them).
func (in *Instance) startEstimates(cfg *config.Compiled) error {
	samples, _ := in.Store.(estimate.Samples)
	est, err := estimate.New(cfg.Snapshot.Budgets.StreamEstimate(), estimate.Options{Samples: samples, Log: in.Log})
	if err != nil {
		return fmt.Errorf("limits.streams.estimate: %w", err)
	}
	in.Estimates = est
	in.Metrics.SetOutputEstimates(func() []estimate.Series { _, s := est.Snapshot(); return s })
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		est.Run(ctx)
	}()
	in.stack.push(func() error {
		cancel()
		<-done
		ctx, cancel := context.WithTimeout(context.Background(), estimateFlushTimeout)
		defer cancel()
		if err := est.Flush(ctx); err != nil {
			in.Log.Warn("saving the learned output estimates at shutdown failed; the last second of observations is lost", zap.Error(err))
		}
		return nil
	})
	return nil
}

// setEstimateConfig applies a reloaded limits.streams.estimate (nothing
// before startEstimates ran).
func (in *Instance) setEstimateConfig(c *config.Compiled) {
	if in.Estimates == nil {
		return
	}
	if err := in.Estimates.SetConfig(c.Snapshot.Budgets.StreamEstimate()); err != nil {
		in.Log.Error("limits.streams.estimate not applied", zap.Error(err)) // Compile validated it: not expected
	}
}

// outputEstimates is the estimator as the processor consumes it.
type outputEstimates struct{ est *estimate.Estimator }

var _ processor.OutputEstimates = outputEstimates{}

// Estimate implements processor.OutputEstimates.
func (o outputEstimates) Estimate(model, endpoint string) (int64, bool) {
	tokens, _, ok := o.est.Estimate(model, endpoint)
	return tokens, ok
}

// Observe implements processor.OutputEstimates.
func (o outputEstimates) Observe(model, endpoint string, completion int64) {
	o.est.Observe(model, endpoint, completion)
}
