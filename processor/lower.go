package processor

import (
	"context"
	"strconv"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
)

// Serving a request with a lower output limit than it asked for: when the
// hard caps refuse its worst case and every budget that refuses it has
// on_hard.lower_output_limit (budget.Rejection.Lowerable), the request is
// claimed again with the largest output limit whose worst case fits the
// room those budgets have, and forwarded with that limit written in place
// of the one it replaced (announced in x-spendguard-max-tokens and
// x-spendguard-max-tokens-lowered-from). A stated limit is never lowered
// otherwise.

// hdrLoweredFrom announces the output limit a lowered one replaced.
const hdrLoweredFrom = "x-spendguard-max-tokens-lowered-from"

// lowerLimit follows up adm, a refusal of Admit on the request's claim:
// when the refusal is lowerable and an output limit of at least 1 below
// the one asked fits its room, the request is claimed again (without a
// soft-cap downgrade: the first Admit tried that) with that limit, and
// the second Admit's outcome returned, its refusal included (the room
// may have gone to a concurrent request meanwhile). Otherwise adm stands.
// On success st.loweredFrom is the limit asked, and st.req.MaxOutputTokens
// (the limit rewrite writes) and st.worstCase are the lowered request's,
// so that an estimated charge never passes what was reserved.
func (st *stream) lowerLimit(ctx context.Context, adm budget.Admission) (budget.Admission, error) {
	rej := adm.Rejection
	if rej == nil || !rej.Lowerable {
		return adm, nil
	}
	asked := st.askedLimit()
	if asked <= 1 {
		return adm, nil
	}
	limit := fittingLimit(st.req, st.price, st.snap.Pricing.DefaultMaxOutputTokens(), rej.Room, asked-1)
	if limit < 1 {
		return adm, nil
	}
	// A stream whose reservation would have grown is served as any
	// other request with a lowered limit: the limit is written and
	// reserved whole.
	grow, running := st.grow, st.runningUsage
	st.grow, st.runningUsage = nil, false
	before := st.worstCase
	st.worstCase = lowered(st.req, limit, st.snap.Pricing.DefaultMaxOutputTokens())
	next, err := st.srv.opts.Budgets.Admit(ctx, st.claim(st.servedModel, st.price, st.scopes), nil)
	if err != nil || next.Rejection != nil {
		st.worstCase, st.grow, st.runningUsage = before, grow, running
		return next, err
	}
	st.loweredFrom, st.req.MaxOutputTokens = asked, limit
	st.log.Debug("output limit lowered to what the budget can pay", zap.String("request_id", st.requestID),
		zap.String("budget", rej.Budget), zap.Int64("max_tokens", limit), zap.Int64("lowered_from", asked))
	return next, nil
}

// askedLimit is the per-sequence output limit the request's reservation
// was for, when spendguard can lower it: the limit the client stated, or
// the one spendguard writes into a request that states none
// (limitToWrite); 0 when it cannot be lowered (audio forms, kinds that
// generate nothing, a member spendguard does not write).
func (st *stream) askedLimit() int64 {
	e := st.endpoint
	if e.Multipart() || !e.Generates() {
		return 0
	}
	if st.req.OutputLimitStated {
		if len(statedLimitSpans(&st.parsed.Layout, e)) == 0 {
			return 0
		}
		return st.req.MaxOutputTokens
	}
	if limitMember(e) == "" {
		return 0
	}
	return max(st.snap.Pricing.DefaultMaxOutputTokens(), 0)
}

// lowered is the worst case of req with its output limit set to limit.
func lowered(req *pricing.Request, limit, defaultMaxOutput int64) pricing.Usage {
	r := *req
	r.MaxOutputTokens = limit
	return r.WorstCase(defaultMaxOutput)
}

// fittingLimit is the largest output limit L in [1, most] for which req,
// served at price with L, costs at most room in its worst case; 0 when
// not even 1 fits. The cost grows with L, so a binary search on the real
// cost function finds it exactly.
func fittingLimit(req *pricing.Request, price pricing.Price, defaultMaxOutput int64, room money.Nano, most int64) int64 {
	fits := func(l int64) bool { return price.Cost(lowered(req, l, defaultMaxOutput)).Total <= room }
	lo, hi := int64(0), most // lo fits (or is 0); every limit above hi does not fit
	for lo < hi {
		mid := lo + (hi-lo+1)/2
		if fits(mid) {
			lo = mid
		} else {
			hi = mid - 1
		}
	}
	return lo
}

// statedLimitSpans are the values of the members in which a request to e
// laid out as l states its output limit: max_tokens and
// max_completion_tokens for chat (vLLM reads the second first, so both
// are lowered), max_tokens for completions and messages,
// max_output_tokens for responses, sampling_params.max_tokens for
// /inference/v1/generate. Members that are absent are left out.
func statedLimitSpans(l *pricing.Layout, e pricing.Endpoint) []pricing.Span {
	var members []pricing.LimitMember
	switch e {
	case pricing.ChatCompletions:
		members = []pricing.LimitMember{pricing.LimitMaxTokens, pricing.LimitMaxCompletionTokens}
	case pricing.Completions, pricing.Messages:
		members = []pricing.LimitMember{pricing.LimitMaxTokens}
	case pricing.Responses:
		members = []pricing.LimitMember{pricing.LimitMaxOutputTokens}
	case pricing.Generate:
		members = []pricing.LimitMember{pricing.LimitSamplingMaxTokens}
	}
	var found []pricing.Span
	for _, m := range members {
		if s := l.OutputLimit(m); s.Found() {
			found = append(found, s)
		}
	}
	return found
}

// lowerEdits are the edits that write limit over every stated output
// limit of body (laid out as l, to e) that is above it; a null or a
// smaller value is kept, so no member the upstream reads ends up above
// limit and none is raised.
func lowerEdits(body []byte, l *pricing.Layout, e pricing.Endpoint, limit int64) []edit {
	var out []edit
	text := strconv.FormatInt(limit, 10)
	for _, s := range statedLimitSpans(l, e) {
		raw := body[s.Start:s.End]
		if string(raw) == "null" {
			continue
		}
		if v, err := strconv.ParseInt(string(raw), 10, 64); err == nil && v <= limit {
			continue
		}
		out = append(out, edit{at: s, text: text})
	}
	return out
}
