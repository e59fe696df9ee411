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

// usageInjection says what the request body needs for spendguard to see the
// usage of a streamed response.
type usageInjection int

const (
	// usageAsked: the client asked for usage itself (include_usage true, or
	// vLLM's default when a stream_options object is present without
	// include_usage: stream_options {} turns usage on). The body and the
	// stream stay untouched: the client gets the usage events vLLM sends.
	usageAsked usageInjection = iota
	// usageInject: spendguard sets include_usage (and turns
	// continuous_usage_stats off) and removes the usage event from the
	// client's stream.
	usageInject
)

// includeUsage decides whether a streaming chat or completions request
// laid out as l needs stream_options.include_usage, and the edit that sets
// it: stream_options absent (add it at the end of the object) or null
// (replace it); an object whose include_usage is false or null (vLLM
// reads null as no usage) is rewritten with include_usage true and every
// continuous_usage_stats member that is not false or null set to false,
// each other byte kept. That last rule keeps the client's stream as vLLM
// would have sent it: vLLM puts continuous usage on every chunk only when
// include_usage is on, so a client that turned usage off but asked for
// continuous_usage_stats gets no usage on any chunk, and the one usage
// event spendguard asked for is removed. An object without include_usage,
// or with include_usage true, needs nothing (usageAsked, an empty edit).
func includeUsage(body []byte, l *pricing.Layout) (usageInjection, edit, error) {
	so := l.StreamOptions
	if !so.Found() {
		sep := ","
		if l.Members == 0 {
			sep = ""
		}
		at := pricing.Span{Start: l.End, End: l.End}
		return usageInject, edit{at: at, text: sep + `"stream_options":{"include_usage":true}`}, nil
	}
	switch raw := body[so.Start:so.End]; {
	case string(raw) == "null":
		return usageInject, edit{at: so, text: `{"include_usage":true}`}, nil
	case raw[0] != '{':
		return 0, edit{}, errors.New("stream_options is not an object")
	}
	in := l.IncludeUsage
	if !in.Found() {
		return usageAsked, edit{}, nil
	}
	switch string(body[in.Start:in.End]) {
	case "false", "null":
	default:
		return usageAsked, edit{}, nil
	}
	inner := []edit{{at: pricing.Span{Start: in.Start - so.Start, End: in.End - so.Start}, text: "true"}}
	obj := body[so.Start:so.End]
	var buf [4]jsonscan.Member
	for _, m := range jsonscan.Members(obj, buf[:0]) {
		if !jsonscan.KeyIs(m.Key, "continuous_usage_stats") {
			continue
		}
		if v := string(m.Value); v != "false" && v != "null" {
			inner = append(inner, edit{at: pricing.Span{Start: m.Offset, End: m.Offset + len(m.Value)}, text: "false"})
		}
	}
	return usageInject, edit{at: so, text: string(applyEdits(obj, inner))}, nil
}

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
