package estimate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.uber.org/zap"
)

// Defaults of Options.
const (
	DefaultFlushInterval = time.Second
	DefaultLoadInterval  = 5 * time.Second
	DefaultTimeout       = 5 * time.Second
)

// Samples is where the windows are shared and kept: a list of recent
// completion token counts per key (Key of a model and endpoint). The
// memory and Redis budget stores implement it.
type Samples interface {
	// AppendSamples adds each batch's values, in order, at the end of its
	// key's list, then keeps only the newest keep values of each list it
	// touched. All batches go in one call (one round trip for a networked
	// store). An error may leave some batches appended.
	AppendSamples(ctx context.Context, batches []Batch, keep int) error
	// LoadSamples returns the newest keep values of every key's list,
	// oldest first.
	LoadSamples(ctx context.Context, keep int) (map[string][]int64, error)
}

// Batch is the new values of one key.
type Batch struct {
	Key    string
	Values []int64
}

// Run keeps the estimator and Samples in step until ctx is done: it
// loads the shared windows at once (a restarted replica starts from what
// the fleet learned), then every FlushInterval appends the new
// observations and computes the changed estimates again, and every
// LoadInterval replaces the windows by the store's, which hold the other
// replicas' observations too. Failures are logged and retried at the next
// tick. Without Samples it only refreshes the estimates. Call Flush after
// Run returns to append the last observations.
func (e *Estimator) Run(ctx context.Context) {
	if e.opts.Samples != nil {
		e.logErr("loading the learned output estimates", e.Load(ctx))
	}
	t := time.NewTicker(e.opts.FlushInterval)
	defer t.Stop()
	lastLoad := time.Now()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if e.opts.Samples != nil {
			err := e.Flush(ctx)
			e.logErr("saving the learned output estimates", err)
			if err == nil && time.Since(lastLoad) >= e.opts.LoadInterval {
				lastLoad = time.Now()
				e.logErr("loading the learned output estimates", e.Load(ctx))
			}
		}
		e.Refresh()
	}
}

func (e *Estimator) logErr(what string, err error) {
	if err != nil && !errors.Is(err, context.Canceled) {
		e.opts.Log.Warn(what+" failed; retrying", zap.Error(err))
	}
}

// Flush appends the observations not yet appended to Samples, in one
// call bounded by Options.Timeout. When it fails they are kept for the
// next Flush (up to MaxPending per pair). Without Samples it does nothing.
func (e *Estimator) Flush(ctx context.Context) error {
	if e.opts.Samples == nil {
		return nil
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	all := e.all()
	var batches []Batch
	var owners []*series
	for _, s := range all {
		s.mu.Lock()
		if len(s.pending) > 0 {
			batches = append(batches, Batch{Key: s.key, Values: s.pending})
			owners = append(owners, s)
			s.pending, s.spare = s.spare[:0], nil
		}
		s.mu.Unlock()
	}
	if len(batches) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	err := e.opts.Samples.AppendSamples(ctx, batches, e.cfg.Load().Window)
	for i, s := range owners {
		sent := batches[i].Values
		s.mu.Lock()
		if err != nil { // keep them, oldest first, for the next flush
			kept := append(sent, s.pending...)
			if over := len(kept) - MaxPending; over > 0 {
				e.lost.Add(uint64(over))
				kept = kept[over:]
			}
			sent, s.pending = s.pending, kept
		}
		s.spare = sent[:0]
		s.mu.Unlock()
	}
	if err != nil {
		return fmt.Errorf("append samples: %w", err)
	}
	return nil
}

// Load replaces every pair's window by the newest Window values of the
// store's list followed by the pair's observations not yet flushed, so
// that each replica learns from all replicas' traffic. Pairs the store
// does not hold keep their window; pairs new to this replica are added
// up to MaxKeys. Without Samples it does nothing.
func (e *Estimator) Load(ctx context.Context) error {
	if e.opts.Samples == nil {
		return nil
	}
	e.syncMu.Lock()
	defer e.syncMu.Unlock()
	cfg := e.cfg.Load()
	ctx, cancel := context.WithTimeout(ctx, e.opts.Timeout)
	defer cancel()
	lists, err := e.opts.Samples.LoadSamples(ctx, cfg.Window)
	if err != nil {
		return fmt.Errorf("load samples: %w", err)
	}
	var merged []int64
	for key, vs := range lists {
		model, endpoint, ok := SplitKey(key)
		if !ok || len(vs) == 0 {
			continue
		}
		s := e.get(model, endpoint, true)
		if s == nil {
			continue // MaxKeys pairs known already
		}
		s.mu.Lock()
		merged = append(append(merged[:0], vs...), s.pending...)
		s.replace(merged)
		s.mu.Unlock()
	}
	return nil
}
