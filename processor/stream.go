package processor

import (
	"context"
	"math/rand/v2"
	"strconv"
	"sync"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor/usage"
)

// Response headers spendguard adds.
const (
	hdrRemaining      = "x-spendguard-remaining-usd"
	hdrBudget         = "x-spendguard-budget"
	hdrScope          = "x-spendguard-scope"
	hdrDowngradedFrom = "x-spendguard-downgraded-from"
	hdrMaxTokens      = "x-spendguard-max-tokens"
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
	// endpoint is the route's kind; for /invocations, the kind the body
	// resolves to once it is read.
	endpoint pricing.Endpoint
	// contentType is the request's content-type, kept for the multipart
	// boundary of audio requests.
	contentType string
	ident       identity.Result
	// modelKeyed: some budget matches on the model. scopesFinal: the
	// scopes found at the request headers are all that apply.
	modelKeyed, scopesFinal bool
	// alt: the request priced for a soft cap's cheaper model (Downgrade),
	// until Admit says whether the downgrade holds.
	alt downgraded

	req         *pricing.Request // &parsed.Request once the body is read, nil before
	parsed      pricing.Body
	model       string // requested model
	servedModel string // model sent upstream (after a downgrade)
	price       pricing.Price
	worstCase   pricing.Usage
	// limitWritten is the output limit spendguard wrote into the
	// forwarded body of a request that stated none, or over a stated one
	// it lowered (loweredFrom); 0 when it wrote none.
	limitWritten int64
	// grow is the growth of a stream whose reservation grows (grow.go),
	// nil for every other request.
	grow        *growth
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
	respUsage    responseUsage // usage read from the response headers, a body not scanned (response.go)

	// runningUsage: set when the stream's reservation grows while it
	// streams (issue 19); the lead sets it. The forwarded body then asks
	// vLLM for continuous usage (a running count on every chunk), and
	// stripUsage says the client did not ask for it: the SSE scanner
	// hides each chunk's usage.
	runningUsage, stripUsage bool

	// seen: the messages had so far; protocol: the first message's
	// body modes (nil when Envoy sent none); violation: why the stream
	// is refused with InvalidArgument.
	seen      seen
	protocol  *extprocv3.ProtocolConfiguration
	violation string
	// duplex: the response body is FULL_DUPLEX_STREAMED (protocol_config):
	// every response chunk is answered with a streamed_response (duplex.go).
	duplex bool
	// sseKnown: the response's content-type said whether it is SSE; without
	// response headers the body's first bytes decide (sniffSSE).
	sseKnown bool

	// Background responses (background.go). background: a POST
	// /v1/responses with background: true, parked when vLLM answers
	// queued; idStatus reads the JSON answer's id and status (of such a
	// POST, or of a lookup); lookup: the response id of a GET
	// /v1/responses/{id} or cancel whose answer may settle a parked one.
	background bool
	idStatus   *usage.StatusScanner
	lookup     string
	lookupDone bool

	// loweredFrom is the output limit the request asked when a lowerable
	// refusal let it be served with a lower one, req.MaxOutputTokens
	// (lower.go); 0 when not lowered.
	loweredFrom int64

	wire wire // how the answers reach Envoy (wire.go)

	count counting // counting missing usage with the tokenizer (count.go)
}

var (
	streams      = sync.Pool{New: func() any { return new(stream) }}
	jsonScanners = sync.Pool{New: func() any { return usage.NewJSONScanner() }}
	sseScanners  = sync.Pool{New: func() any { return new(usage.SSEScanner) }}
)

func newStream(srv *Server, cfg *loaded) *stream {
	st := streams.Get().(*stream)
	st.srv, st.snap, st.modelKeyed, st.log, st.start = srv, cfg.snap, cfg.modelKeyed, srv.opts.Log, srv.opts.Now()
	st.runningUsage = srv.runningUsage.Load()
	return st
}

// release returns the stream and its scanners to their pools; the stream
// must not be used after. Its wire is kept for the next stream (reuse).
func (st *stream) release() {
	if st.scanner != nil {
		jsonScanners.Put(st.scanner)
	}
	if st.sseScan != nil {
		sseScanners.Put(st.sseScan)
	}
	*st = stream{wire: st.wire.reuse()}
	streams.Put(st)
}

func (st *stream) onRequestHeaders(ctx context.Context, h *extprocv3.HttpHeaders, md *corev3.Metadata) *extprocv3.ProcessingResponse {
	hm := h.GetHeaders()
	st.requestID = headerString(hm, "x-request-id")
	path := headerBytes(findHeader(hm, ":path"))
	if st.srv.opts.Parking != nil && mayBeLookup(path) {
		if id, ok := responseLookup(string(headerBytes(findHeader(hm, ":method"))), string(path)); ok {
			// Free, but its answer may settle a parked background response.
			st.free, st.lookup = true, id
			return answerRequestHeaders
		}
	}
	method := string(headerBytes(findHeader(hm, ":method")))
	if isUpgrade(hm, method) {
		// A WebSocket (vLLM's /v1/realtime transcribes audio over one) is
		// a GET whose traffic ext_proc never sees as a body: it cannot be
		// metered, so it passes only where the operator freed its path.
		if st.snap.Pricing.Route("POST", string(path)).Kind != pricing.RouteFree {
			return st.refuse(unmeteredUpgrade(path), nil)
		}
		st.free = true
		return answerFreePath
	}
	route := st.snap.Pricing.Route(method, string(path))
	switch route.Kind {
	case pricing.RouteCost:
	case pricing.RouteRefused:
		return st.refuse(unpricedPath(path), nil)
	case pricing.RouteResponseLookup:
		// GET /v1/responses/{id} without Parking: nothing can be parked,
		// so nothing to settle from its answer.
		st.free = true
		return answerFreePath
	default: // RouteFree
		st.free = true
		return answerFreePath
	}
	ep := route.Endpoint
	st.endpoint = ep
	if ep.Multipart() {
		st.contentType = headerString(hm, "content-type")
	}
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
	if a := st.srv.opts.Admission; a != nil && a.Admit() != nil {
		// The ledger cannot take rows (its spool is full): serving would
		// leave no record of what the request cost.
		return st.refuse(unavailable("spendguard cannot record the cost of requests right now; try again shortly"), nil)
	}
	if h.GetEndOfStream() {
		return st.refuse(bodyRequired(ep), nil)
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
	e.anthropic = st.endpoint == pricing.Messages
	st.reportRefused(e, name, rej)
	return e.immediate()
}
