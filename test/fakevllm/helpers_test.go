package fakevllm

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/spendguard/spendguard/test/fixtures"

	"github.com/stretchr/testify/require"
)

func readFixture(t *testing.T, name string) []byte {
	t.Helper()
	return fixtures.Read(t, name)
}

// flushRecorder counts the flushes a handler asks for.
type flushRecorder struct {
	*httptest.ResponseRecorder
	flushes int
}

func (f *flushRecorder) Flush() {
	f.flushes++
	f.ResponseRecorder.Flush()
}

// do sends one request straight to the handler.
func do(t *testing.T, s *Server, method, path, body string, header map[string]string) *flushRecorder {
	t.Helper()
	var r io.Reader
	if body != "" {
		r = bytes.NewBufferString(body)
	}
	req := httptest.NewRequest(method, path, r)
	req.Header.Set("Content-Type", "application/json")
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	s.ServeHTTP(rec, req)
	return rec
}

func post(t *testing.T, s *Server, path, body string) *flushRecorder {
	t.Helper()
	return do(t, s, http.MethodPost, path, body, nil)
}

// shape lists every key of a JSON document in document order as
// "path:kind", array elements as "[]", each path once. Two bodies with the
// same shape have the same keys, in the same order, with the same JSON kinds.
func shape(t *testing.T, raw []byte) []string {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.UseNumber()
	var out []string
	seen := map[string]bool{}
	add := func(s string) {
		if !seen[s] {
			seen[s] = true
			out = append(out, s)
		}
	}
	var walk func(path string) error
	walk = func(path string) error {
		tok, err := dec.Token()
		if err != nil {
			return err
		}
		switch v := tok.(type) {
		case json.Delim:
			switch v {
			case '{':
				add(path + ":object")
				for dec.More() {
					k, err := dec.Token()
					if err != nil {
						return err
					}
					if err := walk(path + "." + k.(string)); err != nil {
						return err
					}
				}
			case '[':
				add(path + ":array")
				for dec.More() {
					if err := walk(path + "[]"); err != nil {
						return err
					}
				}
			}
			_, err = dec.Token() // the closing delimiter
			return err
		case string:
			add(path + ":string")
		case json.Number:
			add(path + ":number")
		case bool:
			add(path + ":bool")
		case nil:
			add(path + ":null")
		default:
			return fmt.Errorf("unexpected token %v", tok)
		}
		return nil
	}
	require.NoError(t, walk(""))
	return out
}

// usageOf decodes the "usage" object of a body.
func usageOf(t *testing.T, raw []byte) map[string]any {
	t.Helper()
	var body struct {
		Usage map[string]any `json:"usage"`
	}
	require.NoError(t, json.Unmarshal(raw, &body), "%s", raw)
	return body.Usage
}
