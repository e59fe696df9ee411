package processor

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"strconv"
)

// span is the byte range [start, end) of a top-level member's value in a
// JSON object.
type span struct{ start, end int }

// topLevelValue finds the value of key in the top-level JSON object body.
// When the key is repeated the last one wins, as for every JSON parser the
// upstream might use. The body has already been validated.
func topLevelValue(body []byte, key string) (span, bool, error) {
	dec := json.NewDecoder(bytes.NewReader(body))
	tok, err := dec.Token()
	if err != nil {
		return span{}, false, err
	}
	if d, ok := tok.(json.Delim); !ok || d != '{' {
		return span{}, false, errors.New("not a JSON object")
	}
	var found span
	ok := false
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return span{}, false, err
		}
		name, _ := tok.(string)
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			return span{}, false, err
		}
		if name == key {
			end := int(dec.InputOffset())
			found, ok = span{start: end - len(raw), end: end}, true
		}
	}
	if _, err := dec.Token(); err != nil && !errors.Is(err, io.EOF) {
		return span{}, false, err
	}
	return found, ok, nil
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

// contentLength formats a body length for the content-length header.
func contentLength(n int) string { return strconv.Itoa(n) }

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

// planUsage decides whether a streaming chat or completions request needs
// stream_options.include_usage added.
func planUsage(body []byte) (usageInjection, error) {
	sp, ok, err := topLevelValue(body, "stream_options")
	if err != nil {
		return usageAsked, err
	}
	if !ok {
		return usageInject, nil
	}
	raw := body[sp.start:sp.end]
	if string(raw) == "null" {
		return usageInject, nil
	}
	var opts struct {
		IncludeUsage *bool `json:"include_usage"`
	}
	if err := json.Unmarshal(raw, &opts); err != nil {
		return usageAsked, err
	}
	if opts.IncludeUsage != nil && !*opts.IncludeUsage {
		return usageInject, nil
	}
	return usageAsked, nil
}

// injectIncludeUsage returns body with stream_options.include_usage set to
// true, every other byte kept: the member is added to an existing
// stream_options object (or replaces include_usage false / a null
// stream_options), else stream_options is added at the end of the object.
func injectIncludeUsage(body []byte) ([]byte, error) {
	sp, ok, err := topLevelValue(body, "stream_options")
	if err != nil {
		return nil, err
	}
	if !ok {
		end := bytes.LastIndexByte(body, '}')
		if end < 0 {
			return nil, errors.New("not a JSON object")
		}
		sep := ","
		if len(bytes.TrimSpace(body[bytes.IndexByte(body, '{')+1:end])) == 0 {
			sep = ""
		}
		return splice(body, end, end, sep+`"stream_options":{"include_usage":true}`), nil
	}
	raw := body[sp.start:sp.end]
	if string(raw) == "null" {
		return splice(body, sp.start, sp.end, `{"include_usage":true}`), nil
	}
	inner, found, err := topLevelValue(raw, "include_usage")
	if err != nil {
		return nil, err
	}
	if found {
		return splice(body, sp.start+inner.start, sp.start+inner.end, "true"), nil
	}
	open := sp.start + bytes.IndexByte(raw, '{') + 1
	sep := ","
	if len(bytes.TrimSpace(body[open:sp.end-1])) == 0 {
		sep = ""
	}
	return splice(body, open, open, `"include_usage":true`+sep), nil
}

// splice returns a new slice: body with [start, end) replaced by s.
func splice(body []byte, start, end int, s string) []byte {
	out := make([]byte, 0, len(body)-(end-start)+len(s))
	out = append(out, body[:start]...)
	out = append(out, s...)
	return append(out, body[end:]...)
}
