package processor

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
	"github.com/spendguard/spendguard/processor/usage"
)

// Background responses (POST /v1/responses with "background": true).
//
// vLLM answers such a request at once with the response object in status
// "queued" and "usage": null, and goes on working; the result, with its
// usage, is read later with GET /v1/responses/{id} (or comes back from
// POST /v1/responses/{id}/cancel), through Envoy and spendguard, maybe on
// another replica. So the POST's reservation is not settled: it is parked
// in the budget store under the response id (Parking), with what settling
// it needs, and kept open (the claim's TTL is limits.background_ttl plus
// limits.reservation_ttl). The answer to the GET or the cancel is
// watched: once it says the response is over, the record is taken (one
// replica wins) and settled from that answer's usage. Past
// limits.background_ttl the sweeper (SweepParked) charges the whole
// reservation, marked estimated.

// Parking is what the processor needs of the budget store for background
// responses (budget.Parker: the memory and Redis stores). Take and
// PopExpired hand each record to exactly one caller, across replicas.
type Parking interface {
	Park(ctx context.Context, key string, record []byte, deadline time.Time) error
	Take(ctx context.Context, key string) ([]byte, bool, error)
	PopExpired(ctx context.Context, now time.Time, max int) ([]budget.Parked, error)
}

// parkPrefix starts the parking key of a response id.
const parkPrefix = "bg:"

// Statuses of a Responses API object (vLLM's ResponseStatus).
const (
	statusQueued     = "queued"
	statusInProgress = "in_progress"
	statusCompleted  = "completed"
	statusIncomplete = "incomplete"
	statusFailed     = "failed"
	statusCancelled  = "cancelled"
)

// parkedRequest is what settling a parked background response needs; it
// travels through the store as JSON, so any replica can settle it.
type parkedRequest struct {
	ResponseID    string            `json:"response_id"`
	RequestID     string            `json:"request_id"`
	ReservationID string            `json:"reservation_id"`
	Amount        money.Nano        `json:"amount"`
	Items         []budget.Item     `json:"items"`
	Budget        string            `json:"budget,omitempty"` // the budget with the least room left
	Scope         map[string]string `json:"scope,omitempty"`
	Model         string            `json:"model"`
	ServedModel   string            `json:"served_model"`
	Price         pricing.Price     `json:"price"`
	WorstCase     pricing.Usage     `json:"worst_case"`
	// Typical is the estimate of a response cancelled before it reported
	// usage: the typical prompt (bytes/4), no output.
	Typical pricing.Usage `json:"typical"`
	Start   time.Time     `json:"start"`
}

// isBackground reports whether the request just parsed asks for a
// background response that can be parked.
func (st *stream) isBackground() bool {
	return st.endpoint == pricing.Responses && st.srv.opts.Parking != nil &&
		string(st.parsed.Raw("background")) == "true"
}

// reservationTTL is the TTL of the request's claim: a background
// response's reservation must outlive its parking.
func (st *stream) reservationTTL() time.Duration {
	ttl := st.snap.Budgets.ReservationTTL()
	if st.background {
		ttl += st.snap.Budgets.BackgroundTTL()
	}
	return ttl
}

// parkable reports the response id when the completed JSON response is a
// background response still being worked on: a 2xx (or unknown) status,
// no usage, status queued or in_progress, and an id.
func (st *stream) parkable() (string, bool) {
	if !st.background || st.status >= 300 || st.scanner == nil || st.idStatus == nil {
		return "", false
	}
	if _, found, err := st.scanner.Result(); found || err != nil {
		return "", false
	}
	switch st.idStatus.Status() {
	case statusQueued, statusInProgress:
	default:
		return "", false
	}
	id := st.idStatus.ID()
	return id, id != ""
}

// park parks the stream's reservation under the response id and reports
// true, or reports false (the caller then settles as for any response)
// when the store refuses. The request is reported once, when it settles.
func (st *stream) park(ctx context.Context, id string) bool {
	res := st.reservation
	rec := parkedRequest{
		ResponseID: id, RequestID: st.requestID, ReservationID: res.ID, Amount: res.Amount,
		Items: res.Items, Budget: res.RemainingBudget, Scope: st.ident.Values,
		Model: st.model, ServedModel: st.servedModel, Price: st.price,
		WorstCase: st.worstCase, Typical: st.typical(), Start: st.start,
	}
	b, err := json.Marshal(&rec)
	if err == nil {
		deadline := st.srv.opts.Now().Add(st.snap.Budgets.BackgroundTTL())
		err = st.srv.opts.Parking.Park(ctx, parkPrefix+id, b, deadline)
	}
	if err != nil {
		st.log.Warn("parking a background response failed; charging it now", zap.String("request_id", st.requestID), zap.String("response_id", id), zap.Error(err))
		return false
	}
	st.settled = true // the reservation is the parked record's now
	if o := st.srv.opts.Observer; o != nil {
		o.AddReservationsInFlight(-1)
	}
	st.log.Debug("background response parked", zap.String("request_id", st.requestID), zap.String("response_id", id))
	return true
}

// typical is the typical prompt of the request (bytes/4), capped at the
// worst case.
func (st *stream) typical() pricing.Usage {
	return pricing.Usage{Prompt: min((st.req.PromptBytes+3)/4+st.req.PromptTokensKnown, st.worstCase.Prompt)}
}

// mayBeLookup is the cheap test before responseLookup, so other paths
// cost no conversion: the path starts with /v1/responses/ or has a
// percent escape.
func mayBeLookup(path []byte) bool {
	return bytes.HasPrefix(path, []byte("/v1/responses/")) || bytes.IndexByte(path, '%') >= 0
}

// responseLookup recognises the requests whose answers settle a parked
// background response: GET /v1/responses/{id} (query ignored) and POST
// /v1/responses/{id}/cancel. It returns the response id.
func responseLookup(method, path string) (string, bool) {
	path, _, _ = strings.Cut(path, "?")
	if strings.IndexByte(path, '%') >= 0 {
		p, err := url.PathUnescape(path)
		if err != nil {
			return "", false
		}
		path = p
	}
	rest, ok := strings.CutPrefix(path, "/v1/responses/")
	if !ok {
		return "", false
	}
	id, cancel := rest, false
	if method == "POST" {
		if id, cancel = strings.CutSuffix(rest, "/cancel"); !cancel {
			return "", false
		}
	} else if method != "GET" {
		return "", false
	}
	if id == "" || strings.IndexByte(id, '/') >= 0 {
		return "", false
	}
	return id, true
}

// Lookup streams: a GET /v1/responses/{id} or a cancel passes like a free
// request (nothing is charged for it, and it needs no identity), but its
// response is read: status, usage, and the response's own id and status.

// onLookupHeaders notes the status and kind of a lookup's answer.
func (st *stream) onLookupHeaders(ctx context.Context, eos bool, status int, sse, known bool) {
	st.status, st.firstByte = status, st.srv.opts.Now()
	st.sse, st.sseKnown = sse, known
	if eos {
		st.lookupEnd(ctx)
	}
}

// lookupBody scans a chunk of a lookup's answer; it returns the bytes to
// send instead and true when the SSE scanner changed them.
func (st *stream) lookupBody(ctx context.Context, chunk []byte, eos bool) ([]byte, bool) {
	if st.lookupDone || st.status >= 300 {
		return nil, false
	}
	if st.scanner == nil && st.sseScan == nil {
		if !st.sseKnown {
			sse, decided := sniffSSE(chunk)
			if !decided {
				if eos {
					st.lookupEnd(ctx)
				}
				return nil, false
			}
			st.sse, st.sseKnown = sse, true
		}
		if st.sse {
			st.sseScan = sseScanners.Get().(*usage.SSEScanner)
			st.sseScan.Reset(usage.SSEResponses, false)
		} else {
			st.scanner = jsonScanners.Get().(*usage.JSONScanner)
			st.scanner.Reset()
			st.idStatus = new(usage.StatusScanner)
		}
	}
	if st.scanner != nil {
		st.scanner.Write(chunk)
		st.idStatus.Write(chunk)
		if eos {
			st.lookupEnd(ctx)
		}
		return nil, false
	}
	out, changed := st.sseScan.Write(chunk)
	if eos {
		if tail := st.sseScan.Finish(); len(tail) > 0 {
			out = append(out[:len(out):len(out)], tail...)
			changed = true
		}
		st.lookupEnd(ctx)
	}
	return out, changed
}

// lookupEnd settles the parked response when the lookup's complete answer
// says it is over: completed or incomplete with usage (exact), failed
// (its usage, else released: an upstream failure is never charged) or
// cancelled (its usage, else the typical prompt, estimated, as for a
// client abort). A streamed answer (?stream=true) is over when its
// response.completed event carried usage. Anything else leaves the record
// parked for a later lookup or the sweeper.
func (st *stream) lookupEnd(ctx context.Context) {
	if st.lookupDone {
		return
	}
	st.lookupDone = true
	if st.status >= 300 {
		return
	}
	u, found, err := st.usage()
	if err != nil {
		return
	}
	status := statusCompleted
	if st.scanner != nil {
		if id := st.idStatus.ID(); id != "" && id != st.lookup {
			return // not the object the path named: settle nothing
		}
		status = st.idStatus.Status()
	} else if !found {
		return
	}
	var how func(*parkedRequest) outcome
	switch {
	case found && (status == statusCompleted || status == statusIncomplete || status == statusFailed || status == statusCancelled):
		how = func(*parkedRequest) outcome { return reported(u) }
	case status == statusCompleted || status == statusIncomplete:
		how = func(r *parkedRequest) outcome { return outcome{usage: r.WorstCase, estimated: true} }
	case status == statusFailed:
		how = func(*parkedRequest) outcome { return outcome{} }
	case status == statusCancelled:
		how = func(r *parkedRequest) outcome { return outcome{usage: r.Typical, estimated: true, aborted: true} }
	default:
		return // queued, in_progress: still running
	}
	rec, ok := st.srv.takeParked(ctx, st.lookup)
	if !ok {
		return
	}
	st.srv.settleParked(ctx, rec, how(rec), st)
}

// takeParked takes and decodes the record parked for a response id.
func (s *Server) takeParked(ctx context.Context, id string) (*parkedRequest, bool) {
	b, found, err := s.opts.Parking.Take(ctx, parkPrefix+id)
	if err != nil {
		s.opts.Log.Warn("taking a parked background response failed; it stays parked", zap.String("response_id", id), zap.Error(err))
		return nil, false
	}
	if !found {
		return nil, false
	}
	return decodeParked(s.opts.Log, id, b)
}

func decodeParked(log *zap.Logger, key string, b []byte) (*parkedRequest, bool) {
	var rec parkedRequest
	if err := json.Unmarshal(b, &rec); err != nil || rec.ReservationID == "" {
		log.Error("a parked background response cannot be read; its reservation expires unsettled",
			zap.String("key", key), zap.Error(errors.Join(err, errors.New("no reservation id"))))
		return nil, false
	}
	return &rec, true
}

// settleParked settles a parked request with outcome o and reports it
// under the POST's request id. from is the lookup stream whose answer
// settles it (its status and response model go into the report), nil
// for the sweeper.
func (s *Server) settleParked(ctx context.Context, rec *parkedRequest, o outcome, from *stream) {
	st := from
	if st == nil {
		st = newStream(s, s.cfg.Load())
		defer st.release()
	}
	st.requestID, st.start, st.endpoint = rec.RequestID, rec.Start, pricing.Responses
	st.ident = identity.Result{Values: rec.Scope}
	st.model, st.servedModel, st.price, st.worstCase = rec.Model, rec.ServedModel, rec.Price, rec.WorstCase
	res := &budget.Reservation{ID: rec.ReservationID, Amount: rec.Amount, Items: rec.Items, RemainingBudget: rec.Budget}
	st.reservation, st.settled, st.reported, st.unmetered = res, false, false, false
	if s.opts.Reporter != nil && s.opts.Gather.Budgets && st.snap != nil && st.snap.Budgets != nil {
		dims := make(map[string]string, len(rec.Scope)+1)
		for k, v := range rec.Scope {
			dims[k] = v
		}
		dims[identity.ModelDimension] = rec.ServedModel
		st.scopes = st.snap.Budgets.Applicable(dims)
	}
	if obs := s.opts.Observer; obs != nil {
		obs.AddReservationsInFlight(1) // settle takes it back
	}
	st.settle(ctx, o)
}

// sweepBatch is how many expired records one PopExpired call takes.
const sweepBatch = 100

// SweepParked charges every background response whose
// limits.background_ttl has passed without a result: its whole
// reservation, reported estimated. It returns how many it settled; the
// records are popped atomically, so replicas sweeping together settle
// each once. Without Parking it does nothing.
func (s *Server) SweepParked(ctx context.Context) (int, error) {
	if s.opts.Parking == nil {
		return 0, nil
	}
	n := 0
	for {
		due, err := s.opts.Parking.PopExpired(ctx, s.opts.Now(), sweepBatch)
		if err != nil {
			return n, fmt.Errorf("sweeping parked background responses: %w", err)
		}
		for _, d := range due {
			rec, ok := decodeParked(s.opts.Log, d.Key, d.Record)
			if !ok {
				continue
			}
			s.opts.Log.Warn("background response got no result within limits.background_ttl; charging its reservation",
				zap.String("request_id", rec.RequestID), zap.String("response_id", rec.ResponseID))
			s.settleParked(ctx, rec, outcome{usage: rec.WorstCase, estimated: true}, nil)
			n++
		}
		if len(due) < sweepBatch {
			return n, nil
		}
	}
}

// RunSweeper calls SweepParked every interval until ctx is done.
func (s *Server) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		s.sweepOnce(ctx)
	}
}

// sweepOnce is one tick of RunSweeper; a panic is recovered and counted
// as a stream's would be, and the next tick tries again.
func (s *Server) sweepOnce(ctx context.Context) {
	defer func() {
		if r := recover(); r != nil {
			_ = s.recovered("", "sweeping background responses", r)
		}
	}()
	ctx, cancel := context.WithTimeout(ctx, 10*s.opts.SettleTimeout)
	defer cancel()
	if _, err := s.SweepParked(ctx); err != nil {
		s.opts.Log.Warn("sweeping background responses failed; retrying at the next tick", zap.Error(err))
	}
}

// onLookupResponseHeaders answers a lookup's response headers.
func (st *stream) onLookupResponseHeaders(ctx context.Context, h *extprocv3.HttpHeaders) *extprocv3.ProcessingResponse {
	if st.seen&seenResponseHeaders == 0 {
		st.seen |= seenResponseHeaders
		hm := h.GetHeaders()
		ct := findHeader(hm, "content-type")
		st.onLookupHeaders(ctx, h.GetEndOfStream(), parseStatus(headerBytes(findHeader(hm, ":status"))),
			ct != nil && hasPrefixFold(headerBytes(ct), "text/event-stream"), ct != nil)
	}
	return answerResponseHeaders
}

// onLookupResponseBody answers a chunk of a lookup's answer.
func (st *stream) onLookupResponseBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	out, changed := st.lookupBody(ctx, b.GetBody(), b.GetEndOfStream())
	if !changed {
		return answerResponseBody
	}
	return st.replaceChunk(out)
}

// lookupTrailers ends a lookup's answer whose last chunk came without
// end_of_stream: an SSE scanner's held-back event is read first.
func (st *stream) lookupTrailers(ctx context.Context) {
	if st.sseScan != nil && !st.lookupDone {
		st.sseScan.Finish()
	}
	st.lookupEnd(ctx)
}
