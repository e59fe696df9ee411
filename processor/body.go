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
