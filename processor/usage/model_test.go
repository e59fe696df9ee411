package usage

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"unsafe"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// modelOf feeds body to a fresh JSONScanner in chunks of the sizes next
// returns, clobbering each chunk after Write, and returns its Model.
func modelOf(body []byte, next func(rest int) int) string {
	s := NewJSONScanner()
	scratch := make([]byte, 0, len(body))
	for rest := body; len(rest) > 0; {
		n := max(min(next(len(rest)), len(rest)), 1)
		scratch = append(scratch[:0], rest[:n]...)
		s.Write(scratch)
		for i := range scratch {
			scratch[i] = '"'
		}
		rest = rest[n:]
	}
	return s.Model("")
}

// checkModel checks that body gives want however it is split.
func checkModel(t *testing.T, body []byte, want string, seed uint64) {
	t.Helper()
	assert.Equal(t, want, modelOf(body, whole), "whole")
	assert.Equal(t, want, modelOf(body, bytewise), "byte by byte")
	for k := range uint64(50) {
		if !assert.Equal(t, want, modelOf(body, randomSplits(seed+k)), "random split, -usage.seed=%d", seed+k) {
			return
		}
	}
}

func TestJSONScannerModel(t *testing.T) {
	seed := baseSeed(t)
	long := strings.Repeat("m", maxModelBytes)
	for _, c := range []struct{ name, body, want string }{
		{"plain", `{"id":"x","object":"chat.completion","model":"Qwen/Qwen3-8B","usage":{"prompt_tokens":1}}`, "Qwen/Qwen3-8B"},
		{"after usage", `{"usage":{"prompt_tokens":1},"model" : "m1"}`, "m1"},
		{"escaped key and value", `{"mod\u0065l":"a\/b\u00e9\"q"}`, `a/bé"q`},
		{"the last member wins", `{"model":"a","x":1,"model":"b"}`, "b"},
		{"a later non-string hides it", `{"model":"a","model":null}`, ""},
		{"an object is no model", `{"model":{"model":"x"}}`, ""},
		{"nested members do not count", `{"choices":[{"model":"x","message":{"content":"\"model\":\"y\""}}]}`, ""},
		{"similar keys do not count", `{"models":"a","mode":"b","Model":"c","mod\u0065ls":"d"}`, ""},
		{"not an object", `["model","x"]`, ""},
		{"longest kept", `{"model":"` + long[:maxModelBytes-2] + `"}`, long[:maxModelBytes-2]},
		{"too long", `{"model":"` + long + `"}`, ""},
		{"truncated keeps what came", `{"model":"m1","choices":[`, "m1"},
	} {
		t.Run(c.name, func(t *testing.T) { checkModel(t, []byte(c.body), c.want, seed) })
	}
}

// TestJSONScannerModelFixtures: every JSON fixture gives the top-level model
// encoding/json finds.
func TestJSONScannerModelFixtures(t *testing.T) {
	seed := baseSeed(t)
	for _, dir := range []string{upstreamFixtures(t), "testdata"} {
		files, err := filepath.Glob(filepath.Join(dir, "*.json"))
		require.NoError(t, err)
		for _, f := range files {
			t.Run(filepath.Base(f), func(t *testing.T) {
				body, err := os.ReadFile(f)
				require.NoError(t, err)
				var top struct{ Model any }
				want := ""
				if json.Unmarshal(body, &top) == nil {
					want, _ = top.Model.(string)
				}
				checkModel(t, body, want, seed)
			})
		}
	}
}

func TestSSEScannerModel(t *testing.T) {
	seed := baseSeed(t)
	for _, c := range []struct {
		name string
		kind SSEKind
		body string
		want string
	}{
		{name: "the first event naming one", body: event("\n", `data: {"choices":[{"delta":{"content":"a"}}]}`) + event("\n", `data: {"model":"m1","choices":[]}`) + event("\n", `data: {"model":"m2","choices":[]}`) + event("\n", done), want: "m1"},
		{name: "escaped", body: event("\n", `data: {"mod\u0065l":"a\u00e9","choices":[]}`), want: "aé"},
		{name: "nested or not a string", body: event("\n", `data: {"choices":[{"model":"x"}],"model":null}`) + event("\n", `data: {"model":1}`)},
		{name: "not JSON", body: event("\n", `data: {"model":"m1",`)},
		{name: "responses: the response's model", kind: SSEResponses,
			body: event("\n", "event: response.created", `data: {"type":"response.created","model":"top","response":{"id":"r","model":"Qwen/Qwen3-8B"}}`), want: "Qwen/Qwen3-8B"},
		{name: "responses: not at the top", kind: SSEResponses, body: event("\n", `data: {"type":"x","model":"top"}`)},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := checkSSE(t, []byte(c.body), c.kind, 0, c.body, seed, 20)
			assert.Equal(t, c.want, got.Model)
		})
	}
}

// TestModelLikely: the likely name is returned itself when it is the
// model, and never when only its escaped form matches.
func TestModelLikely(t *testing.T) {
	s := NewJSONScanner()
	s.Write([]byte(`{"model":"Qwen/Qwen3-8B"}`))
	likely := strings.Clone("Qwen/Qwen3-8B")
	got := s.Model(likely)
	assert.Equal(t, likely, got)
	assert.Same(t, unsafe.StringData(likely), unsafe.StringData(got), "no copy")
	assert.Zero(t, testing.AllocsPerRun(100, func() { _ = s.Model(likely) }), "the likely name costs no copy")
	assert.Equal(t, "Qwen/Qwen3-8B", s.Model("other"))

	s.Reset()
	s.Write([]byte(`{"model":"a\\nb"}`))
	assert.Equal(t, `a\nb`, s.Model(`a\\nb`), "the raw form is not the model")
}
