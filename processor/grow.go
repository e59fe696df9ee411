package processor

import (
	"context"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Streams whose reservation grows (limits.streams.grow, docs/design.md
// "Reservations that grow"). A streamed chat, completions, Responses or
// Messages response that Envoy sends full duplex (response_body_mode
// FULL_DUPLEX_STREAMED, so spendguard can end it cleanly) is reserved for
// what it is likely to cost, not for its whole output limit: its prompt
// bound plus, per sequence, the learned estimate of the model's output on
// that endpoint (OutputEstimates; pricing.default_max_output_tokens until
// enough samples exist), at most the limit the request states. No limit
// is written into it.
//
// While it streams, its running cost is read after every chunk: from the
// usage vLLM puts on every chunk (continuous_usage_stats, asked for by
// spendguard and hidden from a client that did not ask for it) on chat and
// completions; on the Responses and Messages APIs, which report usage only
// at their end, from the prompt bound (Messages: the prompt message_start
// reports) plus one token per content event. Once the running cost comes
// within half a step of what is reserved, the reservation is extended by a
// step on every budget at once (budget.Engine.Extend) in the background:
// the chunk is answered without waiting. A chunk whose running cost would
// pass what is reserved waits for the extension in flight, or asks for one
// itself; when the budgets cannot pay for it (or limits.max_request_usd is
// reached) the chunk is not delivered: the stream is cut. The client gets a
// final error event in the endpoint's streaming shape and a clean end
// (cutevent.go), Envoy resets the upstream request so vLLM stops
// generating, and the request is charged what was delivered and reported
// cut.

// minStepTokens is the smallest extension, in output tokens per sequence.
const minStepTokens = 64

// growth is the state of a stream whose reservation grows, allocated
// for such a stream only (the stream struct keeps to its size class).
type growth struct {
	// claim is the usage the initial claim covers: the prompt bound and
	// the learned estimate of the output.
	claim pricing.Usage
	// perSeq is the output per sequence the initial claim covers; step is
	// what one extension asks for (minStepTokens per sequence at least),
	// priced at the served model once admitted.
	perSeq    int64
	stepUsage pricing.Usage
	step      money.Nano
	// reserved is the reservation's amount as this stream knows it: the
	// claim plus every extension whose result it has received.
	reserved money.Nano
	// pending receives the result of the extension in flight; nil when
	// none is. full: an extension got less than it asked (or none could be
	// asked): none is started ahead of need any more.
	pending chan extension
	full    bool
	// delivered is the usage of what the client has received, counted
	// from content events when estimated; events is how many events it
	// holds (a Responses stream's next sequence_number).
	delivered pricing.Usage
	estimated bool
	events    int
}

// extension is the result of one Engine.Extend.
type extension struct {
	granted money.Nano
	err     error
}

// growable reports whether the request's reservation may grow while its
// response streams: limits.streams.grow is on, the response body reaches
// spendguard full duplex, and it is a streamed chat, completions,
// Responses or Messages request that is not a background response.
func (st *stream) growable() bool {
	if !st.duplex || !st.req.Stream || st.background || !st.snap.Budgets.StreamsGrow() {
		return false
	}
	switch st.endpoint {
	case pricing.ChatCompletions, pricing.Completions, pricing.Responses, pricing.Messages:
		return true
	}
	return false
}

// startGrowth sizes a growable request's claim (growth.claim): its
// prompt bound plus, per sequence, the learned estimate of the model's
// output (the default output limit without one), at most the stated limit.
// Chat and completions ask the upstream for usage on every chunk.
func (st *stream) startGrowth() {
	g := new(growth)
	perSeq := st.snap.Pricing.DefaultMaxOutputTokens()
	if est := st.srv.opts.Estimates; est != nil {
		if t, ok := est.Estimate(st.model, st.endpoint.String()); ok {
			perSeq = t
		}
	}
	perSeq = max(perSeq, 1)
	if st.req.MaxOutputTokens > 0 {
		perSeq = min(perSeq, st.req.MaxOutputTokens)
	}
	r := *st.req
	r.MaxOutputTokens = perSeq
	g.claim = r.WorstCase(0)
	r.MaxOutputTokens = max(perSeq, minStepTokens)
	g.stepUsage = pricing.Usage{Completion: r.WorstCase(0).Completion}
	g.perSeq = perSeq
	st.grow = g
	st.runningUsage = st.endpoint == pricing.ChatCompletions || st.endpoint == pricing.Completions
}

// claimed is the usage a request's claim covers: the learned estimate
// for a stream that grows, its worst case otherwise.
func (st *stream) claimed() pricing.Usage {
	if st.grow != nil {
		return st.grow.claim
	}
	return st.worstCase
}

// admittedGrowth records what was reserved for a growing stream, priced
// at the served model (after a downgrade too).
func (st *stream) admittedGrowth() {
	g := st.grow
	if g == nil {
		return
	}
	g.reserved = st.reservation.Amount
	g.step = max(st.price.Cost(g.stepUsage).Total, 1)
}

// streamedUsage is the usage of the stream so far: what the upstream
// reported (on every chunk under continuous usage, or at the end), else
// the prompt bound (the prompt message_start reported on Messages) plus
// one token per content event, then marked estimated.
func (st *stream) streamedUsage() (u pricing.Usage, estimated bool) {
	if u, found, err := st.sseScan.Result(); found && err == nil {
		return u, false
	}
	u = pricing.Usage{Prompt: st.grow.claim.Prompt, Completion: int64(st.sseScan.ContentEvents())}
	if p, ok := st.sseScan.PromptOnly(); ok {
		u.Prompt, u.CachedPrompt = p.Prompt, p.CachedPrompt
	}
	return u, true
}

// checkGrowth runs after a chunk was scanned and before what the scanner
// returned is delivered: it returns the answer that cuts the stream when
// the budgets cannot pay for it, else nil, having started an extension
// ahead of need when the reservation runs low.
func (st *stream) checkGrowth(ctx context.Context) *extprocv3.ProcessingResponse {
	g := st.grow
	g.poll()
	u, estimated := st.streamedUsage()
	cost := st.price.Cost(u).Total
	if cost > g.reserved {
		g.await()
		if cost > g.reserved {
			g.receive(st.extend(ctx, cost-g.reserved+g.step))
		}
		if cost > g.reserved {
			return st.cut(ctx, u)
		}
	}
	g.delivered, g.estimated, g.events = u, estimated, st.sseScan.Events()
	if !g.full && g.pending == nil && cost > g.reserved-g.step/2 {
		st.extendAhead(g.step)
	}
	return nil
}

// bounded is amount bounded so that the reservation never passes
// limits.max_request_usd.
func (st *stream) bounded(amount money.Nano) money.Nano {
	if ceiling := st.snap.MaxRequest; ceiling > 0 {
		amount = min(amount, max(ceiling-st.grow.reserved, 0))
	}
	return amount
}

// extend asks the budgets for amount more and waits for the answer.
func (st *stream) extend(ctx context.Context, amount money.Nano) extension {
	want := st.bounded(amount)
	if want <= 0 {
		return extension{}
	}
	granted, err := st.srv.opts.Budgets.Extend(ctx, st.reservation, want, st.reservationTTL())
	st.logExtension(want, granted, err)
	return extension{granted: granted, err: err}
}

// extendAhead starts an extension by amount in the background; the next
// chunks collect its result (await).
func (st *stream) extendAhead(amount money.Nano) {
	g := st.grow
	want := st.bounded(amount)
	if want <= 0 {
		g.full = true
		return
	}
	ch := make(chan extension, 1)
	g.pending = ch
	budgets, res, ttl, timeout := st.srv.opts.Budgets, st.reservation, st.reservationTTL(), st.srv.opts.SettleTimeout
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), timeout)
		defer cancel()
		granted, err := budgets.Extend(ctx, res, want, ttl)
		ch <- extension{granted: granted, err: err}
	}()
}

// await receives the result of the extension in flight, if any (g may
// be nil: a stream that does not grow).
func (g *growth) await() {
	if g == nil || g.pending == nil {
		return
	}
	g.receive(<-g.pending)
}

// poll receives the result of the extension in flight if it has come.
func (g *growth) poll() {
	if g.pending == nil {
		return
	}
	select {
	case x := <-g.pending:
		g.receive(x)
	default:
	}
}

// receive applies an extension's result.
func (g *growth) receive(x extension) {
	g.pending = nil
	g.reserved += x.granted
	if x.err != nil || x.granted == 0 {
		g.full = true
	}
}

// logExtension logs an extension the stream waited for that the store
// refused.
func (st *stream) logExtension(want, granted money.Nano, err error) {
	if err != nil {
		st.log.Warn("growing a stream's reservation failed; the stream ends at what is reserved",
			zap.String("request_id", st.requestID), zap.Stringer("want_usd", want), zap.Error(err))
	}
}

// cut ends the stream at the cap: it settles what was delivered (the
// prompt as now, with u, the usage including what is not delivered: the
// upstream read the prompt whatever was delivered of the answer), reports
// the request cut, and answers with the final error event and the end of
// the response.
func (st *stream) cut(ctx context.Context, u pricing.Usage) *extprocv3.ProcessingResponse {
	g := st.grow
	g.delivered.Prompt, g.delivered.CachedPrompt = u.Prompt, u.CachedPrompt
	by := st.reservation.RemainingBudget
	if ceiling := st.snap.MaxRequest; ceiling > 0 && g.reserved >= ceiling {
		by = maxRequestBudget
	}
	ev := cutEvent(st.endpoint, cutMessage(by, g.delivered.Completion), st.servedModel, st.sseScan.ResponseID(), g.events, st.start.Unix())
	src := spendguardv1.UsageSource_USAGE_SOURCE_REPORTED
	if g.estimated {
		src = spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED
	}
	st.log.Info("stream ended at a budget cap", zap.String("request_id", st.requestID), zap.String("budget", by),
		zap.Int64("completion_tokens", g.delivered.Completion))
	st.responseDone = true
	st.settle(ctx, outcome{usage: g.delivered, estimated: g.estimated, source: src, cut: true, cutBy: by})
	if o, ok := st.srv.opts.Observer.(CutObserver); ok {
		o.ObserveStreamCut(by)
	}
	return st.endResponse(ev)
}

// CutObserver is an Observer that also counts the streams spendguard
// ended at a cap, by the budget that had no room (or
// limits.max_request_usd). metrics.Metrics implements it.
type CutObserver interface {
	ObserveStreamCut(budget string)
}
