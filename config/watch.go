package config

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"go.uber.org/zap"
)

// Hot reload
//
// A Reloader holds the configuration in force and replaces it when the
// file's content changes. Check reads the file (following symlinks, so a
// ConfigMap's ..data swap is seen), hashes it, and does nothing if the
// hash is one it has already judged. Otherwise it parses and validates the
// whole file; a valid file is installed as a whole (the OnReload function, then the
// atomic swap of Current), an invalid one is refused: the configuration
// in force stays, the failure is counted and logged with every problem,
// and Status says why until a later file is installed. Run calls Check
// after a debounce following each change notification (WatchDir) and on a
// periodic poll, the fallback for lost notifications.
//
// Some sections are read once at start (RestartSections): a reload that
// changes them installs the rest and says, in the log and in Status, that
// they take effect at the next restart.

// RestartSections are the top-level sections a reload does not apply.
var RestartSections = []string{"store", "exporters", "metrics", "admin"}

// Status is what a Reloader reports about itself, for logs, metrics and
// the admin API.
type Status struct {
	// Path is the file watched.
	Path string
	// Hash is the SHA-256 (hex) of the file content in force.
	Hash string
	// LoadedAt is when the configuration in force was installed.
	LoadedAt time.Time
	// Reloads counts configurations installed after the first.
	Reloads int64
	// Failures counts changed files that were refused (invalid or
	// unreadable).
	Failures int64
	// LastError says why the file on disk is not the configuration in
	// force: every problem, one per line. It is "" when they agree.
	LastError string
	// LastErrorAt is when LastError was set.
	LastErrorAt time.Time
	// RestartNeeded lists the RestartSections whose change waits for a
	// restart.
	RestartNeeded []string
}

// ReloaderOptions configure a Reloader.
type ReloaderOptions struct {
	Loader Loader
	Log    *zap.Logger
	Now    func() time.Time
}

// Reloader keeps a configuration file's latest valid content in force.
// Its methods are safe for concurrent use.
type Reloader struct {
	path    string
	opts    ReloaderOptions
	current atomic.Pointer[Compiled]
	first   *Compiled // the configuration loaded at start

	mu      sync.Mutex // serialises Check; guards the fields below
	apply   func(*Compiled)
	observe func(error)
	inForce [sha256.Size]byte
	judged  [sha256.Size]byte // the last content parsed, valid or not
	readErr string
	status  Status
}

// NewReloader loads path; it fails if the file cannot be read or is
// invalid, so a process never starts without a configuration.
func NewReloader(path string, opts ReloaderOptions) (*Reloader, error) {
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	c, err := opts.Loader.Parse(data)
	if err != nil {
		return nil, err
	}
	r := &Reloader{path: path, opts: opts, first: c, apply: func(*Compiled) {}, observe: func(error) {}}
	r.inForce = sha256.Sum256(data)
	r.judged = r.inForce
	r.current.Store(c)
	r.status = Status{Path: path, Hash: hex.EncodeToString(r.inForce[:]), LoadedAt: opts.Now()}
	return r, nil
}

// OnReload sets the function that installs each new configuration (the
// processor's Swap). Check calls it, one call at a time, before Current
// changes. Set it before Run starts.
func (r *Reloader) OnReload(apply func(*Compiled)) {
	r.mu.Lock()
	r.apply = apply
	r.mu.Unlock()
}

// OnResult sets a function told the outcome of every change Check judges:
// nil when a configuration was installed, else why it was refused (the
// reload metrics). Checks that find nothing new are not reported.
func (r *Reloader) OnResult(observe func(error)) {
	r.mu.Lock()
	r.observe = observe
	r.mu.Unlock()
}

// Current is the configuration in force.
func (r *Reloader) Current() *Compiled { return r.current.Load() }

// Status returns a copy of the reloader's state.
func (r *Reloader) Status() Status {
	r.mu.Lock()
	defer r.mu.Unlock()
	s := r.status
	s.RestartNeeded = append([]string(nil), s.RestartNeeded...)
	return s
}

// Check reads the file and installs it if its content is new and valid.
// It reports whether it installed a configuration, and the reason a new
// content was refused.
func (r *Reloader) Check() (bool, error) {
	data, err := os.ReadFile(r.path)
	r.mu.Lock()
	defer r.mu.Unlock()
	if err != nil {
		// Not remembered as judged: the next Check reads again.
		if msg := err.Error(); msg != r.readErr {
			r.readErr = msg
			r.refuse(fmt.Errorf("cannot read the configuration: %w", err))
		}
		return false, err
	}
	r.readErr = ""
	sum := sha256.Sum256(data)
	if sum == r.judged {
		return false, nil
	}
	r.judged = sum
	if sum == r.inForce { // back to the content in force
		r.status.LastError, r.status.LastErrorAt = "", time.Time{}
		r.opts.Log.Info("configuration file is back to the configuration in force")
		return false, nil
	}
	c, err := r.opts.Loader.Parse(data)
	if err != nil {
		r.refuse(err)
		return false, err
	}
	previous := r.current.Load()
	r.apply(c)
	r.current.Store(c)
	r.inForce = sum
	r.status.Hash = hex.EncodeToString(sum[:])
	r.status.LoadedAt = r.opts.Now()
	r.status.Reloads++
	r.status.LastError, r.status.LastErrorAt = "", time.Time{}
	r.status.RestartNeeded = changedSections(r.first.File, c.File)
	r.observe(nil)
	r.opts.Log.Info("configuration reloaded", zap.String("path", r.path), zap.String("sha256", r.status.Hash),
		zap.Int("budgets", len(c.Snapshot.Budgets.Budgets())), zap.Int64("reloads", r.status.Reloads))
	if added, removed := budgetChanges(previous, c); len(added)+len(removed) > 0 {
		// Counters are keyed by budget name: a renamed budget starts from zero.
		r.opts.Log.Warn("budgets added or removed: a new name starts with no spend, a removed one's counters are no longer read",
			zap.Strings("added", added), zap.Strings("removed", removed))
	}
	if len(r.status.RestartNeeded) > 0 {
		r.opts.Log.Warn("configuration sections changed that take effect only at restart",
			zap.Strings("sections", r.status.RestartNeeded))
	}
	return true, nil
}

// refuse records a refused change; mu is held.
func (r *Reloader) refuse(err error) {
	r.observe(err)
	r.status.Failures++
	r.status.LastError = err.Error()
	r.status.LastErrorAt = r.opts.Now()
	var ps Problems
	problems := []string{err.Error()}
	if errors.As(err, &ps) {
		problems = problems[:0]
		for _, p := range ps {
			problems = append(problems, p.String())
		}
	}
	r.opts.Log.Error("configuration change refused; still serving the previous configuration",
		zap.String("path", r.path), zap.Strings("problems", problems), zap.Int64("failures", r.status.Failures))
}

// Run checks the file debounce after the last of a burst of notifications
// on events, and every poll (0: no polling), until ctx is done.
func (r *Reloader) Run(ctx context.Context, events <-chan struct{}, debounce, poll time.Duration) {
	var tick <-chan time.Time
	if poll > 0 {
		t := time.NewTicker(poll)
		defer t.Stop()
		tick = t.C
	}
	quiet := time.NewTimer(debounce)
	quiet.Stop()
	defer quiet.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case _, ok := <-events:
			if !ok {
				events = nil
				continue
			}
			quiet.Reset(debounce)
		case <-quiet.C:
			_, _ = r.Check()
		case <-tick:
			_, _ = r.Check()
		}
	}
}
