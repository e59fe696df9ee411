package processor

import (
	"context"
	"strconv"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor/usage"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// onResponseHeaders notes the upstream's status and content type. A status
// from 400 to 599 releases the reservation: failed requests are never
// charged. Any other status, a missing one or one that is not a status
// counts as success and the response is metered (Envoy sends no 1xx
// headers to ext_proc, so a 1xx here is no final answer to trust).
func (st *stream) onResponseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	if st.settled || st.reservation == nil {
		return answerResponseHeaders
	}
	hm := h.GetHeaders()
	st.status = parseStatus(headerBytes(findHeader(hm, ":status")))
	st.firstByte = st.srv.opts.Now()
	if ct := findHeader(hm, "content-type"); ct != nil {
		st.sse, st.sseKnown = hasPrefixFold(headerBytes(ct), "text/event-stream"), true
		st.respUsage.binary = hasPrefixFold(headerBytes(ct), "application/octet-stream")
	}
	if st.status >= 400 {
		st.settle(ctx, outcome{})
		return answerResponseHeaders
	}
	if st.respUsage.binary {
		st.readMetadataHeader(hm)
	}
	if h.GetEndOfStream() {
		st.complete(ctx)
	}
	res := st.reservation
	if !res.HasRemaining && st.servedModel == st.model && st.limitWritten == 0 {
		return answerResponseHeaders
	}
	a := st.wire.headers()
	if res.HasRemaining {
		a.set(hdrRemaining, func(b []byte) []byte { return res.Remaining.AppendFixed(b, 6) })
		a.setString(hdrBudget, res.RemainingBudget)
	}
	if st.servedModel != st.model {
		a.setString(hdrDowngradedFrom, st.model)
	}
	if st.limitWritten > 0 {
		a.set(hdrMaxTokens, func(b []byte) []byte { return strconv.AppendInt(b, st.limitWritten, 10) })
	}
	if st.loweredFrom > 0 {
		a.set(hdrLoweredFrom, func(b []byte) []byte { return strconv.AppendInt(b, st.loweredFrom, 10) })
	}
	return &a.resp
}

// onResponseBody scans a chunk for usage and settles at the end of the
// stream. Without response headers (response_header_mode: SKIP) the
// status is unknown, which counts as success, and the body's first bytes
// say whether it is SSE.
func (st *stream) onResponseBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if st.settled || st.reservation == nil {
		return answerResponseBody
	}
	chunk := b.GetBody()
	st.bodyBytes += int64(len(chunk))
	if st.respUsage.binary {
		// Not JSON: its usage, if any, came in the metadata header.
		if b.GetEndOfStream() {
			st.complete(ctx)
		}
		return answerResponseBody
	}
	if st.scanner == nil && st.sseScan == nil && !st.startScan(chunk) {
		// Only whitespace so far: nothing to scan yet.
		if b.GetEndOfStream() {
			st.complete(ctx)
		}
		return answerResponseBody
	}
	if !st.sse {
		st.scanner.Write(chunk)
		if st.idStatus != nil {
			st.idStatus.Write(chunk)
		}
		if b.GetEndOfStream() {
			st.complete(ctx)
		}
		return answerResponseBody
	}
	out, changed := st.sseScan.Write(chunk)
	end := b.GetEndOfStream()
	if end {
		if tail := st.sseScan.Finish(); len(tail) > 0 {
			out = append(out[:len(out):len(out)], tail...)
			changed = true
		}
	}
	if st.grow != nil {
		if cut := st.checkGrowth(ctx); cut != nil {
			return cut
		}
	}
	if end {
		st.complete(ctx)
	}
	if !changed {
		return answerResponseBody
	}
	return st.replaceChunk(out)
}

// startScan takes the response's scanner from its pool, once its kind is
// known: from the content-type, else from chunk (sniffSSE). It reports
// false while chunk cannot tell.
func (st *stream) startScan(chunk []byte) bool {
	if st.firstByte.IsZero() { // no response headers: the body is the first byte
		st.firstByte = st.srv.opts.Now()
	}
	if !st.sseKnown {
		sse, decided := sniffSSE(chunk)
		if !decided {
			return false
		}
		st.sse, st.sseKnown = sse, true
	}
	if st.sse {
		st.sseScan = sseScanners.Get().(*usage.SSEScanner)
		st.sseScan.Reset(sseKind(st.endpoint), st.dropUsage)
		if st.stripUsage {
			st.sseScan.SetStripChunkUsage(stripMode(st.endpoint))
		}
		if st.grow != nil {
			// A cut adds its event after what was delivered: only whole
			// events are.
			st.sseScan.SetHoldPartial()
		}
		if st.endpoint == pricing.Completions && st.req != nil {
			// Continuous usage gives each choice its own prompt's count.
			st.sseScan.SetChoicesPerPrompt(int(min(max(st.req.N, 1), maxChoicesPerPrompt)))
		}
		st.startCapture()
		return true
	}
	st.scanner = jsonScanners.Get().(*usage.JSONScanner)
	st.scanner.Reset()
	if st.background {
		st.idStatus = new(usage.StatusScanner)
	}
	return true
}

// onResponseTrailers completes a response whose last chunk came without
// end_of_stream because trailers follow. What an SSE scanner still holds
// cannot go into a trailers answer and is dropped; its usage counts.
func (st *stream) onResponseTrailers(ctx context.Context) {
	if st.settled || st.reservation == nil {
		return
	}
	if st.sseScan != nil {
		st.sseScan.Finish()
	}
	st.complete(ctx)
}

// replaceChunk answers a response chunk with other bytes.
func (st *stream) replaceChunk(out []byte) *extprocv3.ProcessingResponse {
	if len(out) == 0 {
		return answerClearChunk
	}
	return st.wire.chunkAnswer(out)
}

// complete settles a response that reached its end of stream.
func (st *stream) complete(ctx context.Context) {
	st.responseDone = true
	if id, ok := st.parkable(); ok && st.park(ctx, id) {
		return
	}
	u, found, err := st.usage()
	if err != nil || !found {
		if err != nil {
			st.log.Warn("response usage unreadable; charging the estimate", zap.String("request_id", st.requestID), zap.Error(err))
		}
		if st.deferCount() { // counted in finish, after the stream (count.go)
			return
		}
		st.settle(ctx, outcome{usage: st.estimate(), estimated: true})
		return
	}
	st.settle(ctx, outcome{usage: u, source: spendguardv1.UsageSource_USAGE_SOURCE_REPORTED})
}

// sseKind is the kind of stream an endpoint answers with when it streams:
// the Responses API's events, the Anthropic Messages API's, and for every
// other endpoint (chat, completions, generate, transcriptions and
// translations) chat-like chunks with a top-level usage.
func sseKind(e pricing.Endpoint) usage.SSEKind {
	switch e {
	case pricing.Responses:
		return usage.SSEResponses
	case pricing.Messages:
		return usage.SSEAnthropic
	}
	return usage.SSEChat
}

// stripMode is how a client that did not ask for continuous usage sees
// the chunks of e without it, as vLLM sends them: completions chunks
// carry "usage":null, chat chunks no usage member.
func stripMode(e pricing.Endpoint) usage.StripMode {
	if e == pricing.Completions {
		return usage.StripNull
	}
	return usage.StripDelete
}

// usage is the usage the upstream reported so far: in the metadata
// response header of a binary body, else from the JSON or SSE scanner.
func (st *stream) usage() (pricing.Usage, bool, error) {
	if st.respUsage.binary {
		return st.respUsage.usage, st.respUsage.found, st.respUsage.err
	}
	if st.sseScan != nil {
		u, found, err := st.sseScan.Result()
		if found {
			st.reasoning = st.sseScan.Details().Reasoning
		}
		return u, found, err
	}
	if st.scanner == nil {
		return pricing.Usage{}, false, nil
	}
	u, found, err := st.scanner.Result()
	if found {
		st.reasoning = st.scanner.Details().Reasoning
	}
	return u, found, err
}

// estimate is the usage charged when the upstream's own count is missing.
// For a stream: the typical prompt (bytes/4), or the prompt the stream
// reported when it did (PromptOnly: an Anthropic message_start), plus one
// token per content event seen. For a JSON or binary response that
// completed without usage: the worst case (nothing better is known); cut
// short: the typical prompt plus the response bytes seen / 4. The prompt
// estimate is capped at the worst case; the completion only by a limit the
// request itself stated (max_tokens and the like, times n and prompts):
// what was delivered is charged whatever default_max_output_tokens says,
// as vLLM's own limit without max_tokens is the context length. An
// endpoint that generates nothing (embeddings, rerank, score, pooling,
// classify) is charged no completion.
func (st *stream) estimate() pricing.Usage {
	if st.sseScan == nil && st.responseDone {
		return st.worstCase
	}
	completion := (st.bodyBytes + 3) / 4
	if st.sseScan != nil {
		completion = int64(st.sseScan.ContentEvents())
	}
	u := pricing.Usage{Prompt: (st.req.PromptBytes+3)/4 + st.req.PromptTokensKnown, Completion: completion}
	u.Prompt = min(u.Prompt, st.worstCase.Prompt)
	if st.sseScan != nil {
		if p, ok := st.sseScan.PromptOnly(); ok {
			u.Prompt, u.CachedPrompt = p.Prompt, p.CachedPrompt
		}
	}
	switch {
	case !st.endpoint.Generates():
		u.Completion = 0
	case st.req.MaxOutputTokens > 0:
		u.Completion = min(u.Completion, st.worstCase.Completion)
	}
	if st.endpoint.Multipart() {
		// The audio was sent whole, whatever was transcribed of it: its
		// length (from its header, else pricing.audio.max_seconds) is
		// charged at per_second, so a stream without usage cannot skip
		// the price of the audio.
		u.Seconds = st.worstCase.Seconds
	}
	return u
}

// finish runs when the stream ends, however it ends, and settles a
// reservation that is still open: nothing is charged when the upstream had
// not answered (no response message at all), else the usage seen, or the
// usage the tokenizer counted (waiting at most its timeout; count.go), or
// the estimate. A response complete() left to be counted is not aborted.
func (st *stream) finish() {
	if st.reservation == nil || st.settled {
		return
	}
	o := outcome{aborted: !st.count.pending}
	if st.responded() {
		if u, found, err := st.usage(); found && err == nil {
			o.usage, o.source = u, spendguardv1.UsageSource_USAGE_SOURCE_REPORTED
		} else if c, ok := st.countedOutcome(); ok {
			o.usage, o.estimated, o.source = c.usage, c.estimated, c.source
		} else {
			o.usage, o.estimated = st.estimate(), true
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.srv.opts.SettleTimeout)
	defer cancel()
	st.settle(ctx, o)
}

// settle commits the outcome's cost, releases the reservation and reports,
// once per stream.
func (st *stream) settle(ctx context.Context, o outcome) {
	if st.settled || st.reservation == nil {
		return
	}
	st.settled = true
	// An extension in flight writes the reservation's amount and
	// remaining: its result is taken first (Settle would wait for it too).
	st.grow.await()
	if o := st.srv.opts.Observer; o != nil && !st.unmetered {
		o.AddReservationsInFlight(-1)
	}
	o.cost = st.price.Cost(o.usage)
	if err := st.srv.opts.Budgets.Settle(ctx, st.reservation, o.cost.Total); err != nil {
		st.log.Error("settling spend failed", zap.String("request_id", st.requestID), zap.Stringer("actual_usd", o.cost.Total), zap.Error(err))
	}
	decision := spendguardv1.Decision_DECISION_ALLOWED
	if st.servedModel != st.model {
		decision = spendguardv1.Decision_DECISION_DOWNGRADED
	}
	if st.unmetered {
		decision = spendguardv1.Decision_DECISION_UNMETERED
	}
	name := st.reservation.RemainingBudget
	if o.cut {
		name = o.cutBy
	}
	st.observeOutput(o)
	st.report(o, decision, "", name)
}

// observeOutput gives the learned output estimate (OutputEstimates) the
// completion per sequence of a response that completed with the usage the
// upstream reported, on an endpoint that generates; a cut, aborted,
// counted or estimated one would teach it something else than what the
// model produces.
func (st *stream) observeOutput(o outcome) {
	est := st.srv.opts.Estimates
	if est == nil || o.cut || o.aborted || o.estimated || st.unmetered || st.req == nil ||
		o.source != spendguardv1.UsageSource_USAGE_SOURCE_REPORTED || !st.endpoint.Generates() ||
		st.status >= 400 || st.endpoint.Multipart() {
		return
	}
	seqs := int64(max(st.req.N, 1)) * int64(max(st.req.Prompts, 1))
	est.Observe(st.servedModel, st.endpoint.String(), o.usage.Completion/seqs)
}

// maxChoicesPerPrompt bounds the choices per prompt handed to the SSE
// scanner: it keeps the counts of choice indexes up to 4095 only.
const maxChoicesPerPrompt = 4096
