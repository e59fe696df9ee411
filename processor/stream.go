package processor

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor/identity"
	"github.com/spendguard/spendguard/processor/usage"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// Response headers spendguard adds.
const (
	hdrRemaining      = "x-spendguard-remaining-usd"
	hdrBudget         = "x-spendguard-budget"
	hdrScope          = "x-spendguard-scope"
	hdrDowngradedFrom = "x-spendguard-downgraded-from"
)

// stream is the state of one ext_proc stream, that is of one HTTP request.
// It is used by one goroutine only.
type stream struct {
	srv  *Server
	snap *Snapshot
	log  *zap.Logger

	start     time.Time
	free      bool // not a cost path: never charged
	requestID string
	endpoint  pricing.Endpoint
	ident     identity.Result

	req         *pricing.Request
	model       string // requested model
	servedModel string // model sent upstream (after a downgrade)
	price       pricing.Price
	worstCase   pricing.Usage
	reservation *budget.Reservation
	settled     bool
	unmetered   bool // store failed with fail_open: served without budgets

	status       int            // upstream :status, 0 until response headers
	firstByte    time.Time      // when response headers arrived
	scopes       []budget.Scope // applicable budgets (for alert states)
	forwarded    []byte         // request body as forwarded, kept only for a DetailedReporter that wants it
	reported     bool
	sse          bool
	dropUsage    bool // spendguard injected include_usage: hide the usage event
	sseScan      *usage.SSEScanner
	reasoning    int64
	procTime     time.Duration
	scanner      usage.JSONScanner
	bodyBytes    int64
	responseDone bool

	cont    *extprocv3.ProcessingResponse // reused CONTINUE answer for body chunks
	mutBody *extprocv3.BodyMutation_Body  // reused replacement of a response chunk
	mut     *extprocv3.ProcessingResponse // the answer carrying mutBody
}

func newStream(srv *Server, snap *Snapshot) *stream {
	return &stream{
		srv:   srv,
		snap:  snap,
		log:   srv.opts.Log,
		start: srv.opts.Now(),
		cont: &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocv3.BodyResponse{},
		}},
	}
}

// handle answers one message; nil means the message kind is not one Envoy
// sends in this mode.
func (st *stream) handle(ctx context.Context, req *extprocv3.ProcessingRequest) *extprocv3.ProcessingResponse {
	switch r := req.GetRequest().(type) {
	case *extprocv3.ProcessingRequest_RequestHeaders:
		return st.onRequestHeaders(ctx, r.RequestHeaders, req.GetMetadataContext())
	case *extprocv3.ProcessingRequest_RequestBody:
		return st.onRequestBody(ctx, r.RequestBody)
	case *extprocv3.ProcessingRequest_ResponseHeaders:
		return st.onResponseHeaders(ctx, r.ResponseHeaders)
	case *extprocv3.ProcessingRequest_ResponseBody:
		return st.onResponseBody(ctx, r.ResponseBody)
	case *extprocv3.ProcessingRequest_RequestTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	case *extprocv3.ProcessingRequest_ResponseTrailers:
		return &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
	}
	return nil
}

func (st *stream) onRequestHeaders(ctx context.Context, h *extprocv3.HttpHeaders, md *corev3.Metadata) *extprocv3.ProcessingResponse {
	get := headerGetter(h.GetHeaders())
	st.requestID = get("x-request-id")
	ep, cost := pricing.EndpointForPath(splitPath(get(":path")))
	if !cost || get(":method") != "POST" {
		st.free = true
		return freePath()
	}
	st.endpoint = ep
	st.ident = st.snap.Identity.ResolveHeaders(identity.Request{Header: get, Claim: claimGetter(md)})
	if len(st.ident.Missing) > 0 {
		return st.refuse(unauthorized(st.ident.Missing), nil)
	}
	if h.GetEndOfStream() {
		return st.refuse(invalidRequest(codeInvalidJSON, "request body is required: "+ep.String()+" takes a JSON object"), nil)
	}
	scopes := st.snap.Budgets.ApplicableKnown(st.ident.Values, st.knownAtHeaders)
	st.scopes = scopes
	if len(scopes) > 0 {
		rej, err := st.srv.opts.Budgets.Exhausted(ctx, scopes, "")
		if err != nil && !st.unmeteredOnError(err) {
			return st.refuse(st.storeFailed(err), nil)
		}
		if rej != nil {
			return st.refuse(st.rejected(rej), rej)
		}
	}
	return headersContinue(nil)
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
		return bodyContinue(false)
	}
	body := b.GetBody()
	req, err := pricing.ParseRequest(st.endpoint, body)
	if err != nil {
		return st.refuse(invalidRequest(codeInvalidJSON, err.Error()), nil)
	}
	st.req, st.model, st.servedModel = req, req.Model, req.Model
	if len(st.ident.Pending) > 0 {
		st.snap.Identity.ResolveBody(&st.ident, bodyFields(body))
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
	dims := make(map[string]string, len(st.ident.Values)+1)
	for k, v := range st.ident.Values {
		dims[k] = v
	}
	dims[identity.ModelDimension] = req.Model
	scopes := st.snap.Budgets.Applicable(dims)
	st.scopes = scopes
	if st.unmetered {
		return st.serveUnmetered(nil)
	}

	var mutated []byte
	if target, _, err := st.srv.opts.Budgets.SoftDowngrade(ctx, scopes, req.Model, cost); err != nil {
		if st.unmeteredOnError(err) {
			return st.serveUnmetered(nil)
		}
		return st.refuse(st.storeFailed(err), nil)
	} else if target != "" && target != req.Model {
		if newBody, newCost, ok := st.downgrade(body, target); ok {
			mutated, cost = newBody, newCost
			dims[identity.ModelDimension] = target
			scopes = st.snap.Budgets.Applicable(dims)
			st.scopes = scopes
		}
	}

	res, rej, err := st.srv.opts.Budgets.Reserve(ctx, st.snap.Budgets, scopes, st.servedModel, cost, st.reservationID())
	if err != nil {
		if st.unmeteredOnError(err) {
			return st.serveUnmetered(mutated)
		}
		return st.refuse(st.storeFailed(err), nil)
	}
	if rej != nil {
		return st.refuse(st.rejected(rej), rej)
	}
	st.reservation = res
	if o := st.srv.opts.Observer; o != nil {
		o.AddReservationsInFlight(1)
	}
	if injected, ok := st.injectUsage(body, mutated); ok {
		mutated = injected
	}
	st.keepForwarded(body, mutated)
	if mutated == nil {
		return bodyContinue(true)
	}
	return bodyReplace(mutated)
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

// reservationID is unique per stream even when clients reuse x-request-id.
func (st *stream) reservationID() string {
	return st.requestID + "/" + strconv.FormatInt(st.start.UnixNano(), 36) + "/" + strconv.FormatInt(st.srv.seq.Add(1), 36)
}

func (st *stream) onResponseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	if st.free || st.reservation == nil {
		return responseHeadersContinue(nil)
	}
	get := headerGetter(h.GetHeaders())
	st.status, _ = strconv.Atoi(get(":status"))
	st.firstByte = st.srv.opts.Now()
	st.sse = strings.HasPrefix(strings.ToLower(get("content-type")), "text/event-stream")
	if st.sse {
		kind := usage.SSEChat
		if st.endpoint == pricing.Responses {
			kind = usage.SSEResponses
		}
		st.sseScan = usage.NewSSEScanner(kind, st.dropUsage)
	}
	if st.status >= 400 || st.status < 200 {
		st.settle(ctx, outcome{})
		return responseHeadersContinue(nil)
	}
	set := []*corev3.HeaderValueOption{}
	if st.reservation.HasRemaining {
		set = append(set,
			header(hdrRemaining, st.reservation.Remaining.USD()),
			header(hdrBudget, st.reservation.RemainingBudget))
	}
	if st.servedModel != st.model {
		set = append(set, header(hdrDowngradedFrom, st.model))
	}
	if h.GetEndOfStream() {
		st.complete(ctx)
	}
	return responseHeadersContinue(set)
}

func (st *stream) onResponseBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if st.free || st.settled || st.reservation == nil {
		return st.cont
	}
	chunk := b.GetBody()
	st.bodyBytes += int64(len(chunk))
	if !st.sse {
		st.scanner.Write(chunk)
		if b.GetEndOfStream() {
			st.complete(ctx)
		}
		return st.cont
	}
	out, changed := st.sseScan.Write(chunk)
	if b.GetEndOfStream() {
		if tail := st.sseScan.Finish(); len(tail) > 0 {
			out = append(out[:len(out):len(out)], tail...)
			changed = true
		}
		st.complete(ctx)
	}
	if !changed {
		return st.cont
	}
	return st.replaceChunk(out)
}

// replaceChunk answers a response chunk with other bytes, reusing one
// answer per stream.
func (st *stream) replaceChunk(out []byte) *extprocv3.ProcessingResponse {
	if st.mut == nil {
		st.mutBody = &extprocv3.BodyMutation_Body{}
		st.mut = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
			ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
				BodyMutation: &extprocv3.BodyMutation{Mutation: st.mutBody},
			}},
		}}
	}
	if len(out) == 0 {
		return clearChunk
	}
	st.mutBody.Body = out
	return st.mut
}

// clearChunk answers a response chunk whose bytes are all held back or
// dropped. It is never modified.
var clearChunk = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{
	ResponseBody: &extprocv3.BodyResponse{Response: &extprocv3.CommonResponse{
		BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_ClearBody{ClearBody: true}},
	}},
}}

// complete settles a response that reached its end of stream.
func (st *stream) complete(ctx context.Context) {
	st.responseDone = true
	u, found, err := st.usage()
	if err != nil || !found {
		if err != nil {
			st.log.Warn("response usage unreadable; charging the estimate", zap.String("request_id", st.requestID), zap.Error(err))
		}
		st.settle(ctx, outcome{usage: st.estimate(), estimated: true})
		return
	}
	st.settle(ctx, outcome{usage: u})
}

// usage is the usage the upstream reported so far, from the JSON or SSE
// scanner.
func (st *stream) usage() (pricing.Usage, bool, error) {
	if st.sseScan != nil {
		u, found, err := st.sseScan.Result()
		if found {
			st.reasoning = st.sseScan.Details().Reasoning
		}
		return u, found, err
	}
	if st.sse {
		return pricing.Usage{}, false, nil
	}
	u, found, err := st.scanner.Result()
	if found {
		st.reasoning = st.scanner.Details().Reasoning
	}
	return u, found, err
}

// estimate is the usage charged when the upstream's own count is missing.
// For a stream: the typical prompt (bytes/4) plus one token per content
// event seen. For a JSON response that completed without usage: the worst
// case (nothing better is known); cut short: the typical prompt plus the
// response bytes seen / 4. Each part is capped at the worst case.
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
	u.Completion = min(u.Completion, st.worstCase.Completion)
	return u
}

// finish runs when the stream ends, however it ends, and settles a
// reservation that is still open: nothing is charged when the upstream had
// not answered, else the usage seen or the estimate.
func (st *stream) finish() {
	if st.reservation == nil || st.settled {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), st.srv.opts.SettleTimeout)
	defer cancel()
	if st.status == 0 {
		st.settle(ctx, outcome{aborted: true})
		return
	}
	if u, found, err := st.usage(); found && err == nil {
		st.settle(ctx, outcome{usage: u, aborted: true})
		return
	}
	st.settle(ctx, outcome{usage: st.estimate(), estimated: true, aborted: true})
}

// settle commits the outcome's cost, releases the reservation and reports,
// once per stream.
func (st *stream) settle(ctx context.Context, o outcome) {
	if st.settled || st.reservation == nil {
		return
	}
	st.settled = true
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
	st.report(o, decision, "", st.reservation.RemainingBudget)
}

// bodyFields returns a lookup of top-level string fields of a JSON body.
func bodyFields(body []byte) func(string) string {
	var m map[string]json.RawMessage
	_ = json.Unmarshal(body, &m) // already validated by ParseRequest
	return func(name string) string {
		var s string
		if json.Unmarshal(m[name], &s) != nil {
			return ""
		}
		return s
	}
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
	dr, ok := st.srv.opts.Reporter.(DetailedReporter)
	if !ok || !dr.WantsRequestBody() {
		return
	}
	if mutated != nil {
		st.forwarded = mutated
		return
	}
	st.forwarded = body
}
