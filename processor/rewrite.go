package processor

import (
	"encoding/json"
	"errors"
	"slices"
	"strconv"

	"github.com/spendguard/spendguard/internal/jsonscan"
	"github.com/spendguard/spendguard/pricing"
)

// Rewrites of a request body, placed by the layout pricing.ParseBody
// found: every byte but the edited ones is forwarded as the client sent
// it, and nothing here reads the body again to find a member.

// edit replaces the bytes at of a body by text (an insertion when at is
// empty).
type edit struct {
	at   pricing.Span
	text string
}

// modelEdit sets the top-level "model" value (the last one, the one the
// upstream reads) to model.
func modelEdit(l *pricing.Layout, model string) edit {
	quoted, _ := json.Marshal(model) // a string always marshals
	return edit{at: l.Model, text: string(quoted)}
}

// usagePlan says what the client of a streaming chat or completions
// request would not receive of the usage that spendguard asks vLLM for,
// and so must be hidden from its stream. The zero plan: the client asked
// for all of it, the body and the stream stay untouched.
type usagePlan struct {
	// dropUsageEvent: the client did not ask for usage (include_usage off):
	// the final usage-only event (choices []) is removed from its stream.
	dropUsageEvent bool
	// stripChunkUsage: the client did not ask for continuous usage
	// (continuous_usage_stats off, or usage off): the per-chunk usage is
	// hidden from every chunk that carries choices.
	stripChunkUsage bool
}

// rewrites reports whether the body needs the plan's edit.
func (p usagePlan) rewrites() bool { return p.dropUsageEvent || p.stripChunkUsage }

// includeUsage decides whether a streaming chat or completions request
// laid out as l needs stream_options rewritten for spendguard to see its
// usage, returns the edit that does it and what the client's stream must
// then lose. vLLM reads usage as on when stream_options is an object whose
// include_usage is absent (the default is true) or is neither false nor
// null, and continuous usage (a running count on every chunk) as on when
// usage is on and continuous_usage_stats is neither absent, false nor
// null; of duplicate keys the last counts.
//
// With continuous false, spendguard needs the final usage event only:
// stream_options absent (added at the end of the object) or null
// (replaced) gets {"include_usage":true}; an object whose include_usage is
// false or null is rewritten with include_usage true and every
// continuous_usage_stats member that is not false or null set to false,
// each other byte kept. That last rule keeps the client's stream as vLLM
// would have sent it: vLLM puts continuous usage on every chunk only when
// include_usage is on, so a client that turned usage off but asked for
// continuous_usage_stats gets no usage on any chunk, and the one usage
// event spendguard asked for is removed. An object with usage on needs
// nothing (the zero plan, an empty edit).
//
// With continuous true (the stream's reservation grows while it
// streams), spendguard needs both: stream_options absent or null gets
// {"include_usage":true,"continuous_usage_stats":true}; in an object, an
// include_usage that is false or null becomes true, and the last
// continuous_usage_stats becomes true when it is false or null, or is
// added at the end of the object when there is none, each other byte
// kept. A client that asked for both gets the zero plan.
//
// A stream_options that is neither an object nor null is an error (vLLM
// refuses the request).
func includeUsage(body []byte, l *pricing.Layout, continuous bool) (usagePlan, edit, error) {
	want := `{"include_usage":true}`
	if continuous {
		want = `{"include_usage":true,"continuous_usage_stats":true}`
	}
	all := usagePlan{dropUsageEvent: true, stripChunkUsage: continuous}
	so := l.StreamOptions
	if !so.Found() {
		return all, appendMember(l, "stream_options", want), nil
	}
	obj := body[so.Start:so.End]
	switch {
	case string(obj) == "null":
		return all, edit{at: so, text: want}, nil
	case obj[0] != '{':
		return usagePlan{}, edit{}, errors.New("stream_options is not an object")
	}
	in := l.IncludeUsage
	usageOn := !in.Found() || !isOff(body[in.Start:in.End])
	if usageOn && !continuous {
		return usagePlan{}, edit{}, nil
	}
	var buf [4]jsonscan.Member
	members := jsonscan.Members(obj, buf[:0])
	var inner []edit
	if !usageOn {
		inner = append(inner, edit{at: pricing.Span{Start: in.Start - so.Start, End: in.End - so.Start}, text: "true"})
	}
	if !continuous {
		for _, m := range members {
			if jsonscan.KeyIs(m.Key, "continuous_usage_stats") && !isOff(m.Value) {
				inner = append(inner, edit{at: pricing.Span{Start: m.Offset, End: m.Offset + len(m.Value)}, text: "false"})
			}
		}
		return usagePlan{dropUsageEvent: true}, edit{at: so, text: string(applyEdits(obj, inner))}, nil
	}
	cont, found := members.Lookup("continuous_usage_stats")
	switch {
	case usageOn && found && !isOff(cont.Value):
		return usagePlan{}, edit{}, nil
	case !found:
		member := `"continuous_usage_stats":true`
		if len(members) > 0 {
			member = "," + member
		}
		end := len(obj) - 1 // the closing brace
		inner = append(inner, edit{at: pricing.Span{Start: end, End: end}, text: member})
	case isOff(cont.Value):
		inner = append(inner, edit{at: pricing.Span{Start: cont.Offset, End: cont.Offset + len(cont.Value)}, text: "true"})
	}
	return usagePlan{dropUsageEvent: !usageOn, stripChunkUsage: true}, edit{at: so, text: string(applyEdits(obj, inner))}, nil
}

// isOff reports whether a stream_options flag's raw value reads as off:
// false or null.
func isOff(raw []byte) bool { return string(raw) == "false" || string(raw) == "null" }

// limitMember is the member in which a request to e states its output
// limit, as spendguard writes it when the client stated none; "" when
// spendguard writes none for e. Chat completions get
// max_completion_tokens, the name vLLM reads first (it uses max_tokens
// only when max_completion_tokens is unset) and OpenAI's current one;
// /inference/v1/generate gets max_tokens inside sampling_params
// (samplingLimitEdit). Messages requests always state max_tokens (the API
// requires it) and audio forms are multipart, so spendguard writes none
// for those.
func limitMember(e pricing.Endpoint) string {
	switch e {
	case pricing.ChatCompletions:
		return "max_completion_tokens"
	case pricing.Completions:
		return "max_tokens"
	case pricing.Responses:
		return "max_output_tokens"
	case pricing.Generate:
		return "sampling_params.max_tokens"
	}
	return ""
}

// limitEdit adds the top-level member name with the output limit limit
// at the end of the object laid out as l. Being last, it is the member
// the upstream reads even when the body has the key already (with a null
// value: a stated limit is never rewritten).
func limitEdit(l *pricing.Layout, name string, limit int64) edit {
	return appendMember(l, name, strconv.FormatInt(limit, 10))
}

// appendMember adds the top-level member name: value (raw JSON) at the
// end of the object laid out as l.
func appendMember(l *pricing.Layout, name, value string) edit {
	sep := ","
	if l.Members == 0 {
		sep = ""
	}
	return edit{at: pricing.Span{Start: l.End, End: l.End}, text: sep + strconv.Quote(name) + ":" + value}
}

// samplingLimitEdit sets sampling_params.max_tokens to limit in a
// /inference/v1/generate body laid out as l: sampling_params absent
// (added at the end of the body), null (replaced) or an object (the
// member added last in it, every other byte kept; last, it is the one
// read even after a max_tokens that is null).
func samplingLimitEdit(body []byte, l *pricing.Layout, limit int64) edit {
	member := `"max_tokens":` + strconv.FormatInt(limit, 10)
	sp := l.SamplingParams
	switch {
	case !sp.Found():
		return appendMember(l, "sampling_params", "{"+member+"}")
	case body[sp.Start] != '{':
		return edit{at: sp, text: "{" + member + "}"}
	}
	obj := body[sp.Start:sp.End]
	if obj[jsonscan.SkipSpace(obj, 1)] != '}' {
		member = "," + member
	}
	return edit{at: pricing.Span{Start: sp.End - 1, End: sp.End - 1}, text: member}
}

// applyEdits returns a new slice: body with each edit made. The edits'
// spans are apart; they may come in any order (edits is sorted in place),
// and insertions at one offset are made in the order they come in.
func applyEdits(body []byte, edits []edit) []byte {
	slices.SortStableFunc(edits, func(a, b edit) int { return a.at.Start - b.at.Start })
	size := len(body)
	for _, e := range edits {
		size += len(e.text) - (e.at.End - e.at.Start)
	}
	out := make([]byte, 0, size)
	done := 0
	for _, e := range edits {
		out = append(out, body[done:e.at.Start]...)
		out = append(out, e.text...)
		done = e.at.End
	}
	return append(out, body[done:]...)
}
