package processor

import (
	"context"
	"fmt"

	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/pricing"
)

// The request-body phase. The body is read once (pricing.ParseBody): the
// request, its identity fields and where the members a rewrite changes
// are. The request is priced for its worst case and the budget engine
// takes one decision on its claim (budget.Engine.Admit): reserve, refuse,
// or serve a soft cap's cheaper model, which the stream prices when the
// engine asks (Downgrade). The body is then forwarded, rewritten in one
// copy when the model changed or spendguard adds include_usage or the
// output limit the reservation covers.

func (st *stream) onRequestBody(ctx context.Context, b *extprocv3.HttpBody) *extprocv3.ProcessingResponse {
	if st.free {
		return answerRequestBody
	}
	body := b.GetBody()
	if e := st.readBody(body); e != nil {
		return st.refuse(e, nil)
	}
	if st.unmetered {
		st.grow = nil
		return st.serveUnmetered(nil)
	}
	adm, err := st.srv.opts.Budgets.Admit(ctx, st.claim(st.model, st.price, st.scopes), st)
	if adm.Downgrade != "" {
		st.servedModel, st.price, st.scopes = adm.Downgrade, st.alt.price, st.alt.scopes
	}
	if err == nil && adm.Rejection != nil {
		adm, err = st.lowerLimit(ctx, adm)
	}
	switch {
	case err != nil && st.unmeteredOnError(err):
		st.grow = nil
		return st.serveUnmetered(st.rewrite(body, false))
	case err != nil:
		return st.refuse(st.storeFailed(err), nil)
	case adm.Rejection != nil:
		return st.refuse(st.rejected(adm.Rejection), adm.Rejection)
	}
	st.reservation = adm.Reservation
	st.admittedGrowth()
	if o := st.srv.opts.Observer; o != nil {
		o.AddReservationsInFlight(1)
	}
	out := st.rewrite(body, true)
	st.keepForwarded(body, out)
	st.keepForCount(body)
	st.parsed.Forget() // the rest of the stream needs no part of the body
	if out == nil {
		return answerRequestBody
	}
	return bodyReplace(out)
}

// readBody parses the body, finishes the identity from its fields, and
// prices the request for the model it asks (st.price, st.worstCase,
// st.scopes); the answer when the request is refused before any budget is
// asked, else nil.
//
// An /invocations request takes the kind its body resolves to
// (st.endpoint), so that its response is read and reported as that kind's.
// An audio request's body is a multipart form (pricing.ParseForm), read
// with the boundary of the request's content-type.
func (st *stream) readBody(body []byte) *apiError {
	var err error
	if st.endpoint.Multipart() {
		err = pricing.ParseForm(&st.parsed, st.endpoint, st.contentType, body, st.snap.Pricing.AudioMaxSeconds())
	} else {
		err = pricing.ParseBody(&st.parsed, st.endpoint, body)
	}
	if err != nil {
		return invalidRequest(codeInvalidJSON, err.Error())
	}
	req := &st.parsed.Request
	st.endpoint = req.Endpoint
	if !identity.ValidValue(req.Model) {
		return invalidRequest(codeInvalidValue, "model must not contain control characters")
	}
	st.req, st.model, st.servedModel = req, req.Model, req.Model
	if len(st.ident.Pending) > 0 {
		st.snap.Identity.ResolveBody(&st.ident, st.parsed.Field)
		if st.ident.Err != nil {
			return identityRefused(st.ident.Err)
		}
		if len(st.ident.Missing) > 0 {
			return unauthorized(st.ident.Missing)
		}
	}
	price, ok := st.snap.Pricing.Lookup(req.Model)
	if !ok {
		return invalidRequest(codeModelNotFound, fmt.Sprintf("model %q has no price in spendguard's pricing table and pricing.default is not set", req.Model))
	}
	st.price = price
	st.background = st.isBackground()
	st.worstCase = req.WorstCase(st.snap.Pricing.DefaultMaxOutputTokens())
	if cost := price.Cost(st.worstCase).Total; st.snap.MaxRequest > 0 && cost > st.snap.MaxRequest {
		return st.tooCostly(cost)
	}
	st.scopes = st.bodyScopes(req.Model)
	if st.growable() {
		st.startGrowth()
	}
	return nil
}

// claim is what the request asks of scopes when served with model at
// price: its worst case, under a reservation id of its own.
func (st *stream) claim(model string, price pricing.Price, scopes []budget.Scope) budget.Claim {
	return budget.Claim{
		ID: st.reservationID(), Scopes: scopes, Model: model,
		Amount: price.Cost(st.claimed()).Total, TTL: st.reservationTTL(),
	}
}

// downgraded is the request priced for a soft cap's cheaper model, kept
// until Admit says whether the downgrade holds.
type downgraded struct {
	price  pricing.Price
	scopes []budget.Scope
}

// Downgrade implements budget.Downgrader for Admit: the claim of the
// request served with target, priced and scoped for it. It declines (the
// requested model is served after all) when target has no price, which
// Compile-time checks should make rare.
func (st *stream) Downgrade(target string) (budget.Claim, bool) {
	if !st.parsed.Layout.Model.Found() {
		// A form whose model part cannot be rewritten byte for byte.
		st.log.Debug("soft-cap downgrade not possible for this body; serving the requested model", zap.String("model", st.model))
		return budget.Claim{}, false
	}
	price, ok := st.snap.Pricing.Lookup(target)
	if !ok {
		st.log.Warn("soft-cap downgrade target has no price; serving the requested model", zap.String("model", st.model), zap.String("target", target))
		return budget.Claim{}, false
	}
	st.alt = downgraded{price: price, scopes: st.bodyScopes(target)}
	return st.claim(target, price, st.alt.scopes), true
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

// rewrite returns the body to forward, nil when it goes as the client sent
// it: the served model in place of the requested one after a downgrade;
// and, when reserved (the request holds a reservation), the output limit
// the reservation covers added to a request that states none
// (st.limitWritten, announced in a response header), and
// stream_options.include_usage added to a streaming chat or completions
// request whose client did not ask for usage (the upstream then reports
// it, and the usage event is removed from the client's stream:
// dropUsage); with runningUsage, continuous_usage_stats too, the usage
// then hidden from each chunk of a client that did not ask for it
// (stripUsage). A request whose limit was lowered to what its budget can
// pay (lower.go) gets the lowered limit, over the stated one or added as
// above. The edits come from the parse's layout and are made in one copy.
func (st *stream) rewrite(body []byte, reserved bool) []byte {
	var edits [4]edit
	n := 0
	if st.servedModel != st.model {
		if st.endpoint.Multipart() {
			// A form field's value is its raw bytes.
			edits[n] = edit{at: st.parsed.Layout.Model, text: st.servedModel}
		} else {
			edits[n] = modelEdit(&st.parsed.Layout, st.servedModel)
		}
		n++
	}
	streams := st.req.Stream && (st.endpoint == pricing.ChatCompletions || st.endpoint == pricing.Completions)
	if reserved && streams {
		if plan, e, err := includeUsage(body, &st.parsed.Layout, st.runningUsage); err == nil && plan.rewrites() {
			edits[n] = e
			n++
			st.dropUsage, st.stripUsage = plan.dropUsageEvent, plan.stripChunkUsage
		}
	}
	if reserved {
		if name, limit := st.limitToWrite(); name != "" {
			if st.endpoint == pricing.Generate {
				edits[n] = samplingLimitEdit(body, &st.parsed.Layout, limit)
			} else {
				edits[n] = limitEdit(&st.parsed.Layout, name, limit)
			}
			n++
			st.limitWritten = limit
		}
	}
	if reserved && st.loweredFrom > 0 && st.req.OutputLimitStated {
		n += copy(edits[n:], lowerEdits(body, &st.parsed.Layout, st.endpoint, st.req.MaxOutputTokens))
		st.limitWritten = st.req.MaxOutputTokens
	}
	if n == 0 {
		return nil
	}
	return applyEdits(body, edits[:n])
}

// limitToWrite is the member and the per-sequence output limit to add to
// a request that states no output limit: what its reservation covers
// (pricing.default_max_output_tokens, see pricing.Request.WorstCase).
// The name is "" when nothing is written: the client stated a limit, the
// endpoint has no member spendguard writes (limitMember), the default is
// not positive, or the request is a stream whose reservation grows (its
// cut at the cap keeps it within its budgets: grow.go). A stream that
// does not grow (limits.streams.grow off, or Envoy not sending its body
// full duplex) gets the limit like any other request.
func (st *stream) limitToWrite() (string, int64) {
	name := limitMember(st.endpoint)
	limit := st.snap.Pricing.DefaultMaxOutputTokens()
	if name == "" || st.req.OutputLimitStated || limit <= 0 || st.grow != nil {
		return "", 0
	}
	if st.loweredFrom > 0 { // lowered to what the budget can pay (lower.go)
		limit = st.req.MaxOutputTokens
	}
	return name, limit
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
