// Package estimate learns how many completion tokens a model really
// produces on an endpoint, so that a streamed response can first reserve
// a high quantile of that (limits.streams.estimate) instead of its whole
// output limit.
//
// An Estimator keeps, per model and endpoint, a window of the last
// Config.Window completion token counts (Observe) and answers a quantile
// of it by nearest rank (Estimate) once the window holds
// Config.MinSamples of them. Bounding the estimate by the request's own
// output limit, and falling back to pricing.default_max_output_tokens
// before there are enough samples, is the caller's job.
//
// With a Samples store (Options.Samples), the windows are shared by
// every replica and survive restarts: Run appends the observations to the
// store in batches and regularly replaces each window by the store's,
// which holds every replica's recent observations.
//
// The package imports nothing of spendguard's, so budget may import it.
package estimate

import (
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Defaults of Config, the defaults of limits.streams.estimate.
const (
	DefaultQuantile   = 0.95
	DefaultWindow     = 1000
	DefaultMinSamples = 20
)

// MaxWindow is the largest Config.Window.
const MaxWindow = 100_000

// DefaultMaxKeys bounds the model and endpoint pairs an Estimator learns
// (Options.MaxKeys). Past it, observations of new pairs are dropped (and
// counted, Dropped): those pairs keep the configured default, while the
// pairs already known keep learning.
const DefaultMaxKeys = 10_000

// Config is limits.streams.estimate.
type Config struct {
	// Quantile of the window that Estimate answers, in (0, 1].
	Quantile float64
	// Window is how many recent completions per model and endpoint are
	// kept, 1..MaxWindow.
	Window int
	// MinSamples is how many completions the window must hold before
	// Estimate answers, 1..Window.
	MinSamples int
}

// DefaultConfig is the Config of an unset limits.streams.estimate.
func DefaultConfig() Config {
	return Config{Quantile: DefaultQuantile, Window: DefaultWindow, MinSamples: DefaultMinSamples}
}

// Validate returns every reason c cannot be used, joined, or nil.
func (c Config) Validate() error {
	var errs []error
	if !(c.Quantile > 0 && c.Quantile <= 1) { // also refuses NaN
		errs = append(errs, fmt.Errorf("quantile must be in (0, 1], not %v", c.Quantile))
	}
	if c.Window < 1 || c.Window > MaxWindow {
		errs = append(errs, fmt.Errorf("window must be 1..%d, not %d", MaxWindow, c.Window))
	}
	if c.MinSamples < 1 || c.MinSamples > max(c.Window, 1) {
		errs = append(errs, fmt.Errorf("min_samples must be 1..window (%d), not %d", c.Window, c.MinSamples))
	}
	return errors.Join(errs...)
}

// Options configure an Estimator.
type Options struct {
	// Samples shares the windows between replicas and keeps them over
	// restarts; nil keeps them in this process only.
	Samples Samples
	// MaxKeys bounds the model and endpoint pairs (DefaultMaxKeys when 0).
	MaxKeys int
	// FlushInterval is how often Run appends the observations to Samples
	// (DefaultFlushInterval when 0); LoadInterval how often it reloads the
	// shared windows (DefaultLoadInterval when 0).
	FlushInterval, LoadInterval time.Duration
	// Timeout bounds one call to Samples (DefaultTimeout when 0).
	Timeout time.Duration
	// Log gets the failures of the background sync (nop when nil).
	Log *zap.Logger
}

// Estimator is the learned output estimate of every model and endpoint.
// Its methods are safe for concurrent use.
type Estimator struct {
	opts Options

	cfg atomic.Pointer[versioned]

	mu     sync.RWMutex
	series map[seriesKey]*series

	dropped atomic.Uint64 // observations of new pairs past MaxKeys
	lost    atomic.Uint64 // observations never appended to Samples

	syncMu sync.Mutex // one Flush or Load at a time
}

// versioned is a Config and its generation: a cached estimate is valid
// while it was computed under the current generation.
type versioned struct {
	Config
	gen uint64
}

type seriesKey struct{ model, endpoint string }

// New returns an Estimator with cfg, which must pass Validate.
func New(cfg Config, opts Options) (*Estimator, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if opts.MaxKeys <= 0 {
		opts.MaxKeys = DefaultMaxKeys
	}
	if opts.FlushInterval <= 0 {
		opts.FlushInterval = DefaultFlushInterval
	}
	if opts.LoadInterval <= 0 {
		opts.LoadInterval = DefaultLoadInterval
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	e := &Estimator{opts: opts, series: map[seriesKey]*series{}}
	e.cfg.Store(&versioned{Config: cfg, gen: 1})
	return e, nil
}

// Config is the configuration in force.
func (e *Estimator) Config() Config { return e.cfg.Load().Config }

// SetConfig puts cfg in force (a configuration reload): the windows are
// cut to the new Window (their newest samples kept; a larger Window fills
// up with new observations and the next load from Samples), and every
// estimate is computed again with the new Quantile at its next use. A
// cfg that fails Validate is refused and changes nothing.
func (e *Estimator) SetConfig(cfg Config) error {
	if err := cfg.Validate(); err != nil {
		return err
	}
	e.syncMu.Lock() // a Load in progress must not build windows of the old size
	defer e.syncMu.Unlock()
	old := e.cfg.Load()
	if old.Config == cfg {
		return nil
	}
	e.mu.RLock()
	defer e.mu.RUnlock()
	if cfg.Window != old.Window {
		for _, s := range e.series {
			s.mu.Lock()
			s.resize(cfg.Window)
			s.mu.Unlock()
		}
	}
	e.cfg.Store(&versioned{Config: cfg, gen: old.gen + 1})
	return nil
}

// Observe records that model produced completion tokens on endpoint in a
// completed response. It takes two short locks and, once the pair is
// known, allocates nothing; it never waits for the store (Run appends the
// observations in the background). A negative completion is ignored.
func (e *Estimator) Observe(model, endpoint string, completion int64) {
	if completion < 0 {
		return
	}
	s := e.get(model, endpoint, true)
	if s == nil {
		e.dropped.Add(1)
		return
	}
	s.mu.Lock()
	s.push(completion)
	if e.opts.Samples != nil && !s.queue(completion) {
		e.lost.Add(1)
	}
	s.mu.Unlock()
}

// Estimate returns the learned estimate of model on endpoint: the
// configured quantile of its window, by nearest rank, and the number of
// samples in the window. ok is false while there are fewer than
// MinSamples (the caller then uses its default). It allocates nothing and
// sorts only when no estimate was computed under the configuration in
// force; otherwise it answers the cached one, which the background
// Refresh (Run, every FlushInterval) keeps current with new observations.
func (e *Estimator) Estimate(model, endpoint string) (tokens int64, samples int, ok bool) {
	s := e.get(model, endpoint, false)
	if s == nil {
		return 0, 0, false
	}
	cfg := e.cfg.Load()
	samples = int(s.count.Load())
	if samples < cfg.MinSamples {
		return 0, samples, false
	}
	if s.gen.Load() != cfg.gen {
		s.mu.Lock()
		s.compute(cfg)
		s.mu.Unlock()
	}
	return s.est.Load(), samples, true
}

// Refresh computes again the estimate of every pair observed since its
// last computation. Run calls it every FlushInterval; tests call it to
// see new observations at once.
func (e *Estimator) Refresh() {
	cfg := e.cfg.Load()
	for _, s := range e.all() {
		s.mu.Lock()
		if s.dirty || s.gen.Load() != cfg.gen {
			s.compute(cfg)
		}
		s.mu.Unlock()
	}
}

// Series is one model and endpoint's window, as Snapshot reports it.
type Series struct {
	Model, Endpoint string
	// Samples is how many completions the window holds.
	Samples int
	// Tokens is the configured quantile of the window (0 when empty).
	Tokens int64
	// Active is Samples >= MinSamples: Tokens is the estimate in use.
	Active bool
}

// Snapshot returns the configuration in force and every pair's window,
// sorted by model then endpoint, with current estimates.
func (e *Estimator) Snapshot() (Config, []Series) {
	cfg := e.cfg.Load()
	all := e.all()
	out := make([]Series, 0, len(all))
	for _, s := range all {
		s.mu.Lock()
		if s.dirty || s.gen.Load() != cfg.gen {
			s.compute(cfg)
		}
		n := s.n
		out = append(out, Series{Model: s.model, Endpoint: s.endpoint, Samples: n, Tokens: s.est.Load(), Active: n >= cfg.MinSamples})
		s.mu.Unlock()
	}
	slices.SortFunc(out, func(a, b Series) int {
		if c := strings.Compare(a.Model, b.Model); c != 0 {
			return c
		}
		return strings.Compare(a.Endpoint, b.Endpoint)
	})
	return cfg.Config, out
}

// Dropped is how many observations were dropped because their pair was
// new and MaxKeys pairs were known already.
func (e *Estimator) Dropped() uint64 { return e.dropped.Load() }

// Lost is how many observations were learned locally but never appended
// to Samples (more than MaxPending of one pair between two flushes, or a
// store that kept failing).
func (e *Estimator) Lost() uint64 { return e.lost.Load() }

// get returns the series of the pair, creating it when create is set and
// fewer than MaxKeys pairs are known (nil otherwise).
func (e *Estimator) get(model, endpoint string, create bool) *series {
	k := seriesKey{model, endpoint}
	e.mu.RLock()
	s := e.series[k]
	e.mu.RUnlock()
	if s != nil || !create {
		return s
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if s = e.series[k]; s != nil {
		return s
	}
	if len(e.series) >= e.opts.MaxKeys {
		return nil
	}
	s = newSeries(model, endpoint, e.cfg.Load().Window)
	e.series[k] = s
	return s
}

func (e *Estimator) all() []*series {
	e.mu.RLock()
	defer e.mu.RUnlock()
	out := make([]*series, 0, len(e.series))
	for _, s := range e.series {
		out = append(out, s)
	}
	return out
}

// Key is the store key of a model and endpoint: model, a NUL byte, then
// endpoint. SplitKey undoes it.
func Key(model, endpoint string) string { return model + "\x00" + endpoint }

// SplitKey returns the model and endpoint of a Key; ok is false for a
// string that is not one.
func SplitKey(key string) (model, endpoint string, ok bool) {
	i := strings.LastIndexByte(key, 0)
	if i < 0 {
		return "", "", false
	}
	return key[:i], key[i+1:], true
}

// nearestRank is the 1-based rank of the q quantile of n sorted values:
// the smallest rank r with r >= q*n (a tiny tolerance keeps 0.95*20 at
// 19 despite binary floating point).
func nearestRank(q float64, n int) int {
	r := int(math.Ceil(q*float64(n) - 1e-9))
	return min(max(r, 1), n)
}
