package usage

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSSEHoldPartial: with SetHoldPartial, what Write returns always ends
// on an event boundary, however the body is split, and the whole output
// is the body unchanged; Events counts the events returned so far.
func TestSSEHoldPartial(t *testing.T) {
	for _, tc := range []struct {
		file string
		kind SSEKind
	}{
		{"vllm-chat-stream-usage.sse", SSEChat},
		{"vllm-chat-stream-crlf-keepalive.sse", SSEChat},
		{"vllm-responses-stream.sse", SSEResponses},
		{"vllm-messages-stream.sse", SSEAnthropic},
	} {
		body, err := os.ReadFile(filepath.Join("testdata", tc.file))
		if err != nil {
			t.Fatal(err)
		}
		norm := func(b []byte) string {
			return strings.ReplaceAll(strings.ReplaceAll(string(b), "\r\n", "\n"), "\r", "\n")
		}
		whole := strings.Count(norm(body), "\n\n")
		for seed := range uint64(20) {
			rng := rand.New(rand.NewPCG(seed, 1))
			s := NewSSEScanner(tc.kind, false)
			s.SetHoldPartial()
			var got []byte
			rest := body
			for len(rest) > 0 {
				n := 1 + rng.IntN(min(len(rest), 40))
				out, _ := s.Write(rest[:n])
				rest = rest[n:]
				got = append(got, out...)
				if len(got) > 0 && !strings.HasSuffix(norm(got), "\n\n") {
					t.Fatalf("%s seed %d: output ends inside an event: %q", tc.file, seed, got[max(len(got)-40, 0):])
				}
				blocks := strings.Count(norm(got), "\n\n")
				if ev := s.Events(); ev > blocks {
					t.Fatalf("%s seed %d: %d events dispatched but %d blocks returned", tc.file, seed, ev, blocks)
				}
			}
			got = append(got, s.Finish()...)
			if !bytes.Equal(got, body) {
				t.Fatalf("%s seed %d: output differs from the body", tc.file, seed)
			}
			if s.Events() == 0 || s.Events() > whole {
				t.Fatalf("%s: %d events of %d blocks", tc.file, s.Events(), whole)
			}
		}
	}
}

func TestSSEResponseID(t *testing.T) {
	body, err := os.ReadFile(filepath.Join("testdata", "vllm-responses-stream.sse"))
	if err != nil {
		t.Fatal(err)
	}
	s := NewSSEScanner(SSEResponses, false)
	s.Write(body)
	id := s.ResponseID()
	if !strings.HasPrefix(id, "resp_") || !bytes.Contains(body, []byte(`"id":"`+id+`"`)) {
		t.Fatalf("ResponseID() = %q", id)
	}
	c := NewSSEScanner(SSEChat, false)
	c.Write([]byte("data: {\"id\":\"chatcmpl-1\",\"choices\":[]}\n\n"))
	if c.ResponseID() != "" {
		t.Fatalf("a chat stream has no response id, got %q", c.ResponseID())
	}
}
