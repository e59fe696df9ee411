package usage

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
)

// statusOf feeds body to a fresh StatusScanner in chunks of n bytes.
func statusOf(body string, n int) (id, status string) {
	var s StatusScanner
	s.Reset()
	for i := 0; i < len(body); i += n {
		s.Write([]byte(body[i:min(i+n, len(body))]))
	}
	return s.ID(), s.Status()
}

func TestStatusScanner(t *testing.T) {
	tests := []struct {
		name, body, id, status string
	}{
		{"queued", `{"id":"resp_abc","created_at":1,"object":"response","model":"m","output":[],"status":"queued","usage":null}`, "resp_abc", "queued"},
		{"completed with nested ids", `{"id":"resp_1","output":[{"id":"msg_9","status":"completed","content":[{"type":"output_text","text":"\"id\":\"x\""}]}],"status":"completed","usage":{"input_tokens":3}}`, "resp_1", "completed"},
		{"spaces and escapes", "{ \"\\u0069d\" : \"resp_\\u0041\" ,\n \"stat\\u0075s\":\t\"in_progress\" }", "resp_A", "in_progress"},
		{"last member wins", `{"status":"queued","status":"completed","id":"a","id":"b"}`, "b", "completed"},
		{"not a string", `{"id":"a","id":7,"status":{"x":"completed"}}`, "", ""},
		{"not an object", `["id","status"]`, "", ""},
		{"nested only", `{"response":{"id":"resp_1","status":"completed"}}`, "", ""},
		{"value string keys", `{"a":"id","b":"status","c":["status"]}`, "", ""},
		{"too long", `{"id":"` + strings.Repeat("x", maxModelBytes+1) + `","status":"failed"}`, "", "failed"},
		{"long key", `{"` + strings.Repeat("k", 100) + `":"v","id":"r"}`, "r", ""},
		{"empty", ``, "", ""},
		{"truncated", `{"id":"resp_1","status":"compl`, "resp_1", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			for n := 1; n <= len(tt.body)+1; n++ {
				id, status := statusOf(tt.body, n)
				assert.Equal(t, tt.id, id, "chunks of %d", n)
				assert.Equal(t, tt.status, status, "chunks of %d", n)
			}
		})
	}
}

func TestStatusScannerReset(t *testing.T) {
	var s StatusScanner // the zero value works
	s.Write([]byte(`{"id":"one","status":"queued"`))
	assert.Equal(t, "one", s.ID())
	s.Reset()
	assert.Equal(t, "", s.ID())
	s.Write([]byte(`{"status":"failed"}`))
	assert.Equal(t, "", s.ID())
	assert.Equal(t, "failed", s.Status())
}

// FuzzStatusScanner checks the scanner against encoding/json on valid
// bodies, split at two arbitrary points.
func FuzzStatusScanner(f *testing.F) {
	for _, seed := range []string{
		`{"id":"resp_abc","object":"response","status":"queued","usage":null}`,
		`{"id":"r","output":[{"id":"m","status":"completed"}],"status":"incomplete","usage":{"input_tokens":1,"output_tokens":2}}`,
		"{\"\\u0069d\":\"\\ud83d\\ude00\",\"status\":\"\\\"\"}",
		`{"status":null,"id":["x"]}`,
		`[{"id":"x"}]`,
	} {
		f.Add([]byte(seed), uint16(3), uint16(9))
	}
	f.Fuzz(func(t *testing.T, body []byte, a, b uint16) {
		var s StatusScanner
		i, j := int(a)%(len(body)+1), int(b)%(len(body)+1)
		i, j = min(i, j), max(i, j)
		s.Write(body[:i])
		s.Write(body[i:j])
		s.Write(body[j:])
		id, status := s.ID(), s.Status()
		whole, wholeStatus := statusOf(string(body), len(body)+1)
		if id != whole || status != wholeStatus {
			t.Fatalf("split at %d,%d: %q %q; whole: %q %q", i, j, id, status, whole, wholeStatus)
		}
		var top map[string]json.RawMessage
		if json.Unmarshal(body, &top) != nil {
			return
		}
		for key, got := range map[string]string{"id": id, "status": status} {
			var want string
			if raw, ok := top[key]; ok && len(raw) <= maxModelBytes {
				_ = json.Unmarshal(raw, &want)
			}
			if got != want {
				t.Fatalf("%s: got %q, encoding/json says %q (body %q)", key, got, want, body)
			}
		}
	})
}
