package processor

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor/identity"
	"github.com/spendguard/spendguard/processor/usage"
)

// Response headers spendguard adds.
const (
	hdrRemaining      = "x-spendguard-remaining-usd"
	hdrBudget         = "x-spendguard-budget"
	hdrScope          = "x-spendguard-scope"
	hdrDowngradedFrom = "x-spendguard-downgraded-from"
)

// stream is the state of one ext_proc stream, that is of one HTTP request.
// It is used by one goroutine only. Streams and their scanners are pooled:
// release returns them once the stream has ended, and nothing keeps a
// reference to them after that (reports get copies).
type stream struct {
	srv  *Server
	snap *Snapshot
	log  *zap.Logger

	start     time.Time
	free      bool // not a cost path: never charged
	requestID string
	endpoint  pricing.Endpoint
	ident     identity.Result
	// modelKeyed: some budget matches on the model. scopesFinal: the
	// scopes found at the request headers are all that apply.
	modelKeyed, scopesFinal bool

	req         *pricing.Request // &parsed once the body is read, nil before
	parsed      pricing.Request
	model       string // requested model
	servedModel string // model sent upstream (after a downgrade)
	price       pricing.Price
	worstCase   pricing.Usage
	reservation *budget.Reservation
	settled     bool
	unmetered   bool // store failed with fail_open: served without budgets

	status       int            // upstream :status; 0 until response headers, or when missing or not a status
	firstByte    time.Time      // when response headers arrived
	scopes       []budget.Scope // applicable budgets (for alert states)
	forwarded    []byte         // request body as forwarded, kept only when Gather.RequestBody
	reported     bool
	sse          bool
	dropUsage    bool               // spendguard injected include_usage: hide the usage event
	sseScan      *usage.SSEScanner  // an SSE response's, from the pool
	scanner      *usage.JSONScanner // a JSON response's, from the pool
	reasoning    int64
	procTime     time.Duration
	bodyBytes    int64
	responseDone bool

	// seen: the messages had so far; protocol: the first message's
	// body modes (nil when Envoy sent none); violation: why the stream
	// is refused with InvalidArgument.
	seen      seen
	protocol  *extprocv3.ProtocolConfiguration
	violation string
	// sseKnown: the response's content-type said whether it is SSE; without
	// response headers the body's first bytes decide (sniffSSE).
	sseKnown bool

	mutBody *extprocv3.BodyMutation_Body  // reused replacement of a response chunk
	mut     *extprocv3.ProcessingResponse // the answer carrying mutBody
	// headersAns is the pooled answer to the response headers, until Send
	// has marshalled it.
	headersAns *headersAnswer
}

var (
	streams      = sync.Pool{New: func() any { return new(stream) }}
	jsonScanners = sync.Pool{New: func() any { return usage.NewJSONScanner() }}
	sseScanners  = sync.Pool{New: func() any { return new(usage.SSEScanner) }}
)

func newStream(srv *Server, cfg *loaded) *stream {
	st := streams.Get().(*stream)
	st.srv, st.snap, st.modelKeyed, st.log, st.start = srv, cfg.snap, cfg.modelKeyed, srv.opts.Log, srv.opts.Now()
	return st
}

// release returns the stream and its scanners to their pools; the stream
// must not be used after. The chunk answer is kept for the next stream.
func (st *stream) release() {
	if st.scanner != nil {
		jsonScanners.Put(st.scanner)
	}
	if st.sseScan != nil {
		sseScanners.Put(st.sseScan)
	}
	mut, mutBody := st.mut, st.mutBody
	if mutBody != nil {
		mutBody.Body = nil
	}
	*st = stream{mut: mut, mutBody: mutBody}
	streams.Put(st)
}

func (st *stream) onRequestHeaders(ctx context.Context, h *extprocv3.HttpHeaders, md *corev3.Metadata) *extprocv3.ProcessingResponse {
	hm := h.GetHeaders()
	st.requestID = headerString(hm, "x-request-id")
	ep, cost := pricing.EndpointForPath(string(headerBytes(findHeader(hm, ":path"))))
	if !cost || string(headerBytes(findHeader(hm, ":method"))) != "POST" {
		st.free = true
		return answerFreePath
	}
	st.endpoint = ep
	if e := st.unsupportedModes(); e != nil {
		return st.refuse(e, nil)
	}
	get := func(name string, n int) (string, bool) { return headerOccurrence(hm, name, n) }
	st.ident = st.snap.Identity.ResolveHeaders(identity.Request{Header: get, Claim: claimGetter(md)})
	if st.ident.Err != nil {
		return st.refuse(identityRefused(st.ident.Err), nil)
	}
	if len(st.ident.Missing) > 0 {
		return st.refuse(unauthorized(st.ident.Missing), nil)
	}
	if h.GetEndOfStream() {
		return st.refuse(invalidRequest(codeInvalidJSON, "request body is required: "+ep.String()+" takes a JSON object"), nil)
	}
	scopes := st.snap.Budgets.ApplicableKnown(st.ident.Values, st.knownAtHeaders)
	st.scopes = scopes
	st.scopesFinal = !st.modelKeyed && len(st.ident.Pending) == 0
	if len(scopes) > 0 {
		rej, err := st.srv.opts.Budgets.Exhausted(ctx, scopes, "")
		if err != nil && !st.unmeteredOnError(err) {
			return st.refuse(st.storeFailed(err), nil)
		}
		if rej != nil {
			return st.refuse(st.rejected(rej), rej)
		}
	}
	return answerRequestHeaders
}

// knownAtHeaders reports whether a dimension has its final value at request
// headers time: the model and body_field dimensions come with the body.
func (st *stream) knownAtHeaders(dim string) bool {
	if dim == identity.ModelDimension {
		return false
	}
	_, ok := st.ident.Values[dim]
	return ok
}

func (st *stream) onRequestBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if st.free {
		return answerRequestBody
	}
	body := b.GetBody()
	if err := pricing.ParseRequestInto(&st.parsed, st.endpoint, body); err != nil {
		return st.refuse(invalidRequest(codeInvalidJSON, err.Error()), nil)
	}
	req := &st.parsed
	if !identity.ValidValue(req.Model) {
		return st.refuse(invalidRequest(codeInvalidValue, "model must not contain control characters"), nil)
	}
	st.req, st.model, st.servedModel = req, req.Model, req.Model
	if len(st.ident.Pending) > 0 {
		st.snap.Identity.ResolveBody(&st.ident, bodyFields(body))
		if st.ident.Err != nil {
			return st.refuse(identityRefused(st.ident.Err), nil)
		}
		if len(st.ident.Missing) > 0 {
			return st.refuse(unauthorized(st.ident.Missing), nil)
		}
	}
	price, ok := st.snap.Pricing.Lookup(req.Model)
	if !ok {
		return st.refuse(invalidRequest(codeModelNotFound, fmt.Sprintf("model %q has no price in spendguard's pricing table and pricing.default is not set", req.Model)), nil)
	}
	st.price = price
	st.worstCase = req.WorstCase(st.snap.Pricing.DefaultMaxOutputTokens())
	cost := price.Cost(st.worstCase).Total
	if st.snap.MaxRequest > 0 && cost > st.snap.MaxRequest {
		return st.refuse(st.tooCostly(cost), nil)
	}
	scopes := st.bodyScopes(req.Model)
	st.scopes = scopes
	if st.unmetered {
		return st.serveUnmetered(nil)
	}

	adm, err := st.srv.opts.Budgets.Admit(ctx, st.snap.Budgets, scopes, req.Model, cost, st.reservationID())
	if err != nil {
		if st.unmeteredOnError(err) {
			return st.serveUnmetered(nil)
		}
		return st.refuse(st.storeFailed(err), nil)
	}
	var mutated []byte
	if adm.Downgrade != "" {
		// A soft cap asks for a cheaper model; nothing is held yet. Without
		// a price for it the requested model is served after all.
		if newBody, newCost, ok := st.downgrade(body, adm.Downgrade); ok {
			mutated, cost = newBody, newCost
			scopes = st.bodyScopes(st.servedModel)
			st.scopes = scopes
		}
		adm.Reservation, adm.Rejection, err = st.srv.opts.Budgets.Reserve(ctx, st.snap.Budgets, scopes, st.servedModel, cost, st.reservationID())
		if err != nil {
			if st.unmeteredOnError(err) {
				return st.serveUnmetered(mutated)
			}
			return st.refuse(st.storeFailed(err), nil)
		}
	}
	if rej := adm.Rejection; rej != nil {
		return st.refuse(st.rejected(rej), rej)
	}
	res := adm.Reservation
	st.reservation = res
	if o := st.srv.opts.Observer; o != nil {
		o.AddReservationsInFlight(1)
	}
	if injected, ok := st.injectUsage(body, mutated); ok {
		mutated = injected
	}
	st.keepForwarded(body, mutated)
	if mutated == nil {
		return answerRequestBody
	}
	return bodyReplace(mutated)
}

// bodyScopes are the budgets that apply to the request for model, once the
// body is read. When no budget matches on the model and no dimension
// waited for the body, they are the ones found at the request headers.
func (st *stream) bodyScopes(model string) []budget.Scope {
	if st.scopesFinal {
		return st.scopes
	}
	dims := make(map[string]string, len(st.ident.Values)+1)
	for k, v := range st.ident.Values {
		dims[k] = v
	}
	dims[identity.ModelDimension] = model
	return st.snap.Budgets.Applicable(dims)
}

// injectUsage adds stream_options.include_usage to a streaming chat or
// completions request whose client did not ask for usage, so that the
// upstream reports it; the usage event is then removed from the client's
// stream. body is the client's body, mutated the body rewritten so far (nil
// if none).
func (st *stream) injectUsage(body, mutated []byte) ([]byte, bool) {
	if !st.req.Stream || (st.endpoint != pricing.ChatCompletions && st.endpoint != pricing.Completions) {
		return nil, false
	}
	if mutated != nil {
		body = mutated
	}
	plan, err := planUsage(body)
	if err != nil || plan != usageInject {
		return nil, false
	}
	out, err := injectIncludeUsage(body)
	if err != nil {
		st.log.Warn("cannot add stream_options.include_usage; the stream's spend will be estimated", zap.Error(err))
		return nil, false
	}
	st.dropUsage = true
	return out, true
}

// downgrade rewrites the body for the soft cap's cheaper model and prices
// it. It refuses (ok=false, the request goes on unchanged) when the target
// model has no price, which Compile-time checks should make rare.
func (st *stream) downgrade(body []byte, target string) ([]byte, money.Nano, bool) {
	price, ok := st.snap.Pricing.Lookup(target)
	if !ok {
		st.log.Warn("soft-cap downgrade target has no price; serving the requested model", zap.String("model", st.model), zap.String("target", target))
		return nil, 0, false
	}
	newBody, err := replaceModel(body, target)
	if err != nil {
		st.log.Warn("cannot rewrite the model field", zap.Error(err))
		return nil, 0, false
	}
	st.price, st.servedModel = price, target
	return newBody, price.Cost(st.worstCase).Total, true
}

// reservationID is unique per stream even when clients reuse x-request-id:
// the request id, the stream's start and 64 random bits (from the
// runtime's per-thread generator, so streams on different cores share no
// counter).
func (st *stream) reservationID() string {
	var buf [96]byte
	b := append(buf[:0], st.requestID...)
	b = append(b, '/')
	b = strconv.AppendInt(b, st.start.UnixNano(), 36)
	b = append(b, '/')
	return string(strconv.AppendUint(b, rand.Uint64(), 36))
}

// refuse reports a request spendguard answers itself and returns Envoy's
// local reply for it.
func (st *stream) refuse(e *apiError, rej *budget.Rejection) *extprocv3.ProcessingResponse {
	name := ""
	if rej != nil {
		name = rej.Budget
	} else if e.code == codeRequestTooCostly {
		name = "limits.max_request_usd"
	}
	st.reportRefused(e, name, rej)
	return e.immediate()
}

// keepForwarded remembers the forwarded request body when a reporter asks
// for it (Helicone logs the request JSON).
func (st *stream) keepForwarded(body, mutated []byte) {
	if st.srv.opts.Reporter == nil || !st.srv.opts.Gather.RequestBody {
		return
	}
	if mutated != nil {
		st.forwarded = mutated
		return
	}
	st.forwarded = body
}
