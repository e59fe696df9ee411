package app

import (
	"context"
	"fmt"
	"path/filepath"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/metrics"
)

// DefaultReloadDebounce is the quiet time after a change in the
// configuration's directory before the file is read again: a kubelet
// update is a burst of a few events.
const DefaultReloadDebounce = time.Second

// openConfig loads the configuration: the embedded default without
// --config, else the file, through a Reloader when hot reload is on
// (ReloadInterval > 0).
func openConfig(opts ServeOptions, log *zap.Logger) (*config.Compiled, *config.Reloader, error) {
	if opts.ConfigPath == "" {
		cfg, err := config.Parse(DefaultConfig)
		if err != nil {
			return nil, nil, fmt.Errorf("embedded default configuration: %w", err)
		}
		return cfg, nil, nil
	}
	if opts.ReloadInterval <= 0 {
		cfg, err := config.Load(opts.ConfigPath)
		if err != nil {
			return nil, nil, fmt.Errorf("%s: %w", opts.ConfigPath, err)
		}
		return cfg, nil, nil
	}
	r, err := config.NewReloader(opts.ConfigPath, config.ReloaderOptions{Log: log})
	if err != nil {
		return nil, nil, fmt.Errorf("%s: %w", opts.ConfigPath, err)
	}
	return r.Current(), r, nil
}

// startReload watches the configuration's directory and polls the file,
// installing each valid change into the processor for the streams that
// start after it; its stop goes on the cleanup stack, so no configuration
// is installed once Shutdown begins. Without a Reloader it does nothing.
func (in *Instance) startReload() {
	if in.reloader == nil {
		return
	}
	in.reloader.OnReload(in.install)
	in.reloader.OnResult(in.Metrics.ObserveReload)
	dir := filepath.Dir(in.opts.ConfigPath)
	events, stopWatch, err := config.WatchDir(dir, in.Log)
	if err != nil {
		in.Log.Warn("cannot watch the configuration directory; polling only",
			zap.String("dir", dir), zap.Duration("interval", in.opts.ReloadInterval), zap.Error(err))
		stopWatch = func() error { return nil }
	}
	debounce := in.opts.ReloadDebounce
	if debounce <= 0 {
		debounce = DefaultReloadDebounce
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		in.reloader.Run(ctx, events, debounce, in.opts.ReloadInterval)
	}()
	in.stack.push(func() error {
		cancel()
		<-done
		_ = stopWatch()
		return nil
	})
}

// ReloadStatus reports the hot reload of the configuration file: the
// content in force, reloads, refused changes and why. It is false when
// hot reload is off (embedded configuration, or --reload-interval 0).
func (in *Instance) ReloadStatus() (config.Status, bool) {
	if in.reloader == nil {
		return config.Status{}, false
	}
	return in.reloader.Status(), true
}

// CurrentConfig is the configuration in force: the one loaded at start
// until a reload installs another. It is the app's only way to the
// configuration after Start: the processor's new streams, /readyz, the
// budgets API and the budget gauges all see the configuration it
// returns. Of the sections a reload does not apply (store, exporters,
// metrics, admin) it shows the file's latest content; what is in force
// of them is what Start read (startSettings, and the store, exporters
// and metrics it opened).
func (in *Instance) CurrentConfig() *config.Compiled { return in.current.Load() }

// install puts c in force: streams that start afterwards use its
// snapshot, and CurrentConfig returns it.
func (in *Instance) install(c *config.Compiled) {
	in.setEstimateConfig(c)
	in.Processor.Swap(c.Snapshot)
	in.current.Store(c)
	in.setTokenizer(c.Snapshot.Pricing.Tokenizer())
}

// startSettings are the settings of the start-only sections that the app
// reads after Start: they keep the values Start read whatever a reload
// brings (config.RestartSections).
type startSettings struct {
	adminTokens  admin.Tokens               // admin.token, admin.read_token: none leaves the admin API open
	metricsToken bool                       // metrics.require_token
	gauges       metrics.BudgetGaugeOptions // metrics.budget_gauges
}

func readStartSettings(cfg *config.Compiled) startSettings {
	return startSettings{
		adminTokens:  admin.Tokens{Admin: cfg.File.Admin.Token, Read: cfg.File.Admin.ReadToken},
		metricsToken: cfg.File.Metrics.RequireToken,
		gauges:       cfg.File.Metrics.BudgetGauges.Options(),
	}
}
