package postgres

import (
	"context"
	"fmt"
	"hash/fnv"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"go.uber.org/zap"
)

// reconciler compares vLLM's own token counters with the tokens the
// ledger recorded. One replica at a time does it (the holder of a
// PostgreSQL session advisory lock, per upstream), so that windows are
// written once however many replicas share the ledger.
//
// Every interval the leader scrapes the counters (a sample). The window
// from the oldest kept sample to the newest one that is at least
// settle_delay old — and older than the oldest row still waiting in this
// replica's spool — is then compared: vLLM's increase over the window, per
// model, against the prompt and completion tokens of the ledger rows
// (requests forwarded upstream) that ended within it, matched by the
// model the upstream named (else the served model). Ledger models that
// vLLM does not serve belong to other upstreams and are ignored. A
// counter that went down (vLLM restarted) skips the window.
//
// vLLM counts a request's tokens while serving it, the ledger when it
// ends, so a request running across a window's end is counted by vLLM in
// one window and by the ledger in the next: per-window drift evens out
// over the following windows, and the cumulative drift does not keep it.
// Requests that started before the leader's first sample are left out of
// the ledger's side, as vLLM counted (at least their prompts) before the
// first sample.
type reconciler struct {
	l        *Ledger
	cfg      ReconcileConfig
	obs      DriftObserver
	log      *zap.Logger
	client   *http.Client
	upstream string // the sorted URLs, space-separated: names the upstream in the table
	lockKey  int64

	cancel context.CancelFunc
	done   chan struct{}

	// Owned by the loop goroutine.
	lock    *pgx.Conn // the leader's session, holding the advisory lock
	samples []sample  // samples[0] starts the next window
	since   time.Time // the first sample: requests that started earlier are not compared
}

type sample struct {
	at     time.Time
	counts map[string]tokens
}

// Window is one reconciled window of one model, as written to
// spendguard_reconciliation.
type Window struct {
	Upstream           string
	Model              string
	Start, End         time.Time
	UpstreamPrompt     int64
	UpstreamGeneration int64
	RecordedPrompt     int64
	RecordedGeneration int64
}

func newReconciler(l *Ledger, cfg ReconcileConfig, obs DriftObserver, log *zap.Logger) *reconciler {
	urls := slices.Sorted(slices.Values(cfg.VLLMMetricsURLs))
	upstream := strings.Join(urls, " ")
	h := fnv.New64a()
	h.Write([]byte("spendguard reconcile " + upstream))
	return &reconciler{
		l: l, cfg: cfg, obs: obs, log: log, upstream: upstream, lockKey: int64(h.Sum64()),
		client: &http.Client{Timeout: cfg.Timeout},
	}
}

func startReconciler(l *Ledger, cfg ReconcileConfig, obs DriftObserver, log *zap.Logger) *reconciler {
	r := newReconciler(l, cfg, obs, log)
	ctx, cancel := context.WithCancel(context.Background())
	r.cancel, r.done = cancel, make(chan struct{})
	go r.loop(ctx)
	return r
}

func (r *reconciler) loop(ctx context.Context) {
	defer close(r.done)
	t := time.NewTicker(r.cfg.Interval)
	defer t.Stop()
	for {
		r.tick(ctx, time.Now())
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// stop ends the loop and gives up the leadership.
func (r *reconciler) stop() {
	r.cancel()
	<-r.done
	r.resign()
}

// tick scrapes once, when leading, and compares what has settled.
func (r *reconciler) tick(ctx context.Context, now time.Time) {
	if !r.lead(ctx) {
		return
	}
	sctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	counts, err := scrape(sctx, r.client, r.cfg.VLLMMetricsURLs)
	cancel()
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("reconciliation: scraping vLLM's metrics failed", zap.Error(err))
		}
		return
	}
	if len(r.samples) == 0 {
		r.since = now
	}
	r.samples = append(r.samples, sample{at: now, counts: counts})
	if _, err := r.compare(ctx, now); err != nil && ctx.Err() == nil {
		r.log.Warn("reconciliation: comparing with the ledger failed; the window is tried again", zap.Error(err))
	}
}

// lead reports whether this replica holds the reconciliation lock,
// trying to take it when it does not.
func (r *reconciler) lead(ctx context.Context) bool {
	if r.lock != nil {
		if err := r.lock.Ping(ctx); err == nil {
			return true
		}
		r.log.Warn("reconciliation: lost the leader's connection")
		r.resign()
	}
	conn, err := pgx.Connect(ctx, r.l.cfg.DSN)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("reconciliation: cannot reach the ledger", zap.Error(err))
		}
		return false
	}
	var got bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock($1)", r.lockKey).Scan(&got); err != nil || !got {
		conn.Close(context.Background())
		return false
	}
	r.lock = conn
	r.log.Info("reconciliation: leading for this upstream", zap.String("upstream", r.upstream))
	return true
}

// resign closes the leader's session, which releases the lock, and
// forgets the samples (a later leader starts afresh).
func (r *reconciler) resign() {
	if r.lock != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		r.lock.Close(ctx)
		cancel()
		r.lock = nil
	}
	r.samples = nil
}

// compare reconciles the window from samples[0] to the newest sample at
// least settle_delay old, if there is one; it writes and observes the
// window and returns it (nil when nothing was compared).
func (r *reconciler) compare(ctx context.Context, now time.Time) ([]Window, error) {
	cut := now.Add(-r.cfg.SettleDelay)
	if oldest := r.l.SpoolStats().Oldest; !oldest.IsZero() && oldest.Add(-time.Second).Before(cut) {
		// Rows that ended after this are still in the spool (the ledger's
		// PostgreSQL was away): a window past it would show them as drift.
		cut = oldest.Add(-time.Second)
	}
	end := -1
	for i := 1; i < len(r.samples); i++ {
		if !r.samples[i].at.After(cut) {
			end = i
		}
	}
	if end < 0 {
		return nil, nil
	}
	first, last := r.samples[0], r.samples[end]
	delta, ok := increase(first.counts, last.counts)
	if !ok {
		r.log.Warn("reconciliation: a vLLM counter went down (restart?); skipping the window",
			zap.Time("from", first.at), zap.Time("to", last.at))
		r.samples = r.samples[end:]
		return nil, nil
	}
	recorded, err := r.l.recordedTokens(ctx, r.since, first.at, last.at)
	if err != nil {
		return nil, err
	}
	windows := make([]Window, 0, len(delta))
	for _, m := range slices.Sorted(maps.Keys(delta)) {
		d, rec := delta[m], recorded[m]
		windows = append(windows, Window{Upstream: r.upstream, Model: m, Start: first.at, End: last.at,
			UpstreamPrompt: d.prompt, UpstreamGeneration: d.generation,
			RecordedPrompt: rec.prompt, RecordedGeneration: rec.generation})
	}
	if err := r.l.writeWindows(ctx, windows); err != nil {
		return nil, err
	}
	for _, w := range windows {
		if r.obs != nil {
			r.obs.ObserveDrift(w.Model, w.UpstreamPrompt, w.UpstreamGeneration, w.RecordedPrompt, w.RecordedGeneration)
		}
	}
	r.samples = r.samples[end:]
	return windows, nil
}

// increase is last - first per model; false when a counter went down or
// a model's series disappeared (vLLM restarted).
func increase(first, last map[string]tokens) (map[string]tokens, bool) {
	out := make(map[string]tokens, len(last))
	for m := range first {
		if _, ok := last[m]; !ok {
			return nil, false
		}
	}
	for m, e := range last {
		b := first[m] // a model new since first counts from zero
		if e.prompt < b.prompt || e.generation < b.generation {
			return nil, false
		}
		out[m] = tokens{prompt: e.prompt - b.prompt, generation: e.generation - b.generation}
	}
	return out, true
}

// recordedTokens sums the prompt and completion tokens of the requests
// forwarded upstream that started at or after since and ended in
// (from, to], by the model the upstream named (else the served model).
func (l *Ledger) recordedTokens(ctx context.Context, since, from, to time.Time) (map[string]tokens, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT coalesce(nullif(response_model, ''), served_model), least(sum(prompt_tokens), 9223372036854775807)::bigint, least(sum(completion_tokens), 9223372036854775807)::bigint
		FROM spendguard_ledger
		WHERE decision <> 'rejected' AND end_time > $1 AND end_time <= $2 AND start_time >= $3
		GROUP BY 1`, from, to, since)
	if err != nil {
		return nil, fmt.Errorf("ledger tokens: %w", err)
	}
	out := map[string]tokens{}
	var (
		m string
		t tokens
	)
	_, err = pgx.ForEachRow(rows, []any{&m, &t.prompt, &t.generation}, func() error {
		out[m] = t
		return nil
	})
	return out, err
}

// writeWindows stores reconciled windows; a window written before (by a
// retry) is kept as it was.
func (l *Ledger) writeWindows(ctx context.Context, ws []Window) error {
	if len(ws) == 0 {
		return nil
	}
	b := &pgx.Batch{}
	for _, w := range ws {
		b.Queue(`INSERT INTO spendguard_reconciliation (upstream, model, window_start, window_end,
			upstream_prompt_tokens, upstream_generation_tokens, recorded_prompt_tokens, recorded_generation_tokens)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8) ON CONFLICT DO NOTHING`,
			w.Upstream, w.Model, w.Start, w.End, w.UpstreamPrompt, w.UpstreamGeneration, w.RecordedPrompt, w.RecordedGeneration)
	}
	if err := l.pool.SendBatch(ctx, b).Close(); err != nil {
		return fmt.Errorf("ledger reconciliation: %w", err)
	}
	return nil
}
