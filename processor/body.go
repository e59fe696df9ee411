package processor

import (
	"bytes"
	"encoding/json"
	"errors"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// span is the byte range [start, end) of a top-level member's value in a
// JSON object.
type span struct{ start, end int }

// topLevel reads the members of the top-level object of body in place
// (into buf's storage) and the offset they are relative to; an error when
// body is not a JSON object.
func topLevel(body []byte, buf jsonscan.Object) (jsonscan.Object, int, error) {
	top, valid, object := jsonscan.ValidMembers(body, buf)
	switch {
	case !valid:
		return nil, 0, errors.New("not valid JSON")
	case !object:
		return nil, 0, errors.New("not a JSON object")
	}
	return top, jsonscan.SkipSpace(body, 0), nil
}

// topLevelValue finds the value of key in the top-level JSON object body.
// When the key is repeated the last one wins, as for every JSON parser the
// upstream might use.
func topLevelValue(body []byte, key string) (span, bool, error) {
	var buf [16]jsonscan.Member
	top, off, err := topLevel(body, buf[:0])
	if err != nil {
		return span{}, false, err
	}
	return valueSpan(top, off, key)
}

func valueSpan(o jsonscan.Object, off int, key string) (span, bool, error) {
	m, ok := o.Lookup(key)
	if !ok {
		return span{}, false, nil
	}
	start := off + m.Offset
	return span{start: start, end: start + len(m.Value)}, true, nil
}

// replaceModel returns body with the top-level "model" value replaced by
// model, every other byte as the client sent it.
func replaceModel(body []byte, model string) ([]byte, error) {
	sp, ok, err := topLevelValue(body, "model")
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, errors.New("no model field")
	}
	quoted, err := json.Marshal(model)
	if err != nil {
		return nil, err
	}
	out := make([]byte, 0, len(body)-(sp.end-sp.start)+len(quoted))
	out = append(out, body[:sp.start]...)
	out = append(out, quoted...)
	return append(out, body[sp.end:]...), nil
}

// usageInjection says what the request body needs for spendguard to see the
// usage of a streamed response.
type usageInjection int

const (
	// usageAsked: the client asked for usage itself (include_usage true, or
	// vLLM's default when a stream_options object is present without
	// include_usage). The body and the stream stay untouched.
	usageAsked usageInjection = iota
	// usageInject: spendguard adds include_usage and removes the usage
	// event from the client's stream.
	usageInject
)

// usagePlan is where include_usage goes in a body, and whether the
// client asked for usage already.
type usagePlan struct {
	plan usageInjection
	// The bytes [at.start, at.end) are replaced by text.
	at   span
	text string
}

// planUsageAt reads the body once for planUsage and injectIncludeUsage:
// stream_options absent (add it at the end of the object), null (replace
// it), with include_usage (set it to true) or without (add it first).
func planUsageAt(body []byte) (usagePlan, error) {
	var buf [16]jsonscan.Member
	top, off, err := topLevel(body, buf[:0])
	if err != nil {
		return usagePlan{}, err
	}
	sp, ok, _ := valueSpan(top, off, "stream_options")
	if !ok {
		end := bytes.LastIndexByte(body, '}')
		sep := ","
		if len(top) == 0 {
			sep = ""
		}
		return usagePlan{plan: usageInject, at: span{end, end}, text: sep + `"stream_options":{"include_usage":true}`}, nil
	}
	raw := body[sp.start:sp.end]
	if string(raw) == "null" {
		return usagePlan{plan: usageInject, at: sp, text: `{"include_usage":true}`}, nil
	}
	if raw[0] != '{' {
		return usagePlan{}, errors.New("stream_options is not an object")
	}
	var inner [8]jsonscan.Member
	opts := jsonscan.Members(raw, inner[:0])
	in, found, _ := valueSpan(opts, sp.start, "include_usage")
	if !found {
		open := sp.start + 1
		sep := ","
		if len(opts) == 0 {
			sep = ""
		}
		return usagePlan{plan: usageAsked, at: span{open, open}, text: `"include_usage":true` + sep}, nil
	}
	plan := usageAsked
	if string(body[in.start:in.end]) == "false" {
		plan = usageInject
	}
	return usagePlan{plan: plan, at: in, text: "true"}, nil
}

// planUsage decides whether a streaming chat or completions request needs
// stream_options.include_usage added.
func planUsage(body []byte) (usageInjection, error) {
	p, err := planUsageAt(body)
	return p.plan, err
}

// injectIncludeUsage returns body with stream_options.include_usage set to
// true, every other byte kept: the member is added to an existing
// stream_options object (or replaces include_usage false / a null
// stream_options), else stream_options is added at the end of the object.
func injectIncludeUsage(body []byte) ([]byte, error) {
	p, err := planUsageAt(body)
	if err != nil {
		return nil, err
	}
	return splice(body, p.at.start, p.at.end, p.text), nil
}

// splice returns a new slice: body with [start, end) replaced by s.
func splice(body []byte, start, end int, s string) []byte {
	out := make([]byte, 0, len(body)-(end-start)+len(s))
	out = append(out, body[:start]...)
	out = append(out, s...)
	return append(out, body[end:]...)
}

// bodyFields returns a lookup of top-level string fields of a JSON body
// ("" for a field that is absent or not a string).
func bodyFields(body []byte) func(string) string {
	top, _, _ := topLevel(body, nil)
	return func(name string) string {
		s, _ := jsonscan.String(top.Get(name))
		return s
	}
}
