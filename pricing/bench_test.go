package pricing

import (
	"encoding/json"
	"strings"
	"testing"
)

// chatBody1K is a realistic chat request of about 1 KiB: a system prompt,
// a few turns, one multi-part message, sampling options.
func chatBody1K(tb testing.TB) []byte {
	tb.Helper()
	turn := strings.Repeat("Summarise the quarterly report in three bullet points. ", 2)
	body, err := json.Marshal(map[string]any{
		"model": "meta-llama/Llama-3.1-70B-Instruct",
		"messages": []any{
			map[string]any{"role": "system", "content": "You are a concise analyst. Answer in English, cite figures, and say when data is missing."},
			map[string]any{"role": "user", "content": turn},
			map[string]any{"role": "assistant", "content": turn + turn},
			map[string]any{"role": "user", "content": []any{
				map[string]any{"type": "text", "text": turn},
				map[string]any{"type": "text", "text": "Keep it under 50 words, and end with one open question for the team."},
			}},
		},
		"max_completion_tokens": 256,
		"temperature":           0.2,
		"n":                     1,
		"stream":                true,
		"stream_options":        map[string]any{"include_usage": true},
		"user":                  "user-1234",
	})
	if err != nil {
		tb.Fatal(err)
	}
	return body
}

func BenchmarkParseRequestWorstCase(b *testing.B) {
	body := chatBody1K(b)
	if len(body) < 900 || len(body) > 1200 {
		b.Fatalf("body is %d bytes, want about 1 KiB", len(body))
	}
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		r, err := ParseRequest(ChatCompletions, body)
		if err != nil {
			b.Fatal(err)
		}
		_ = r.WorstCase(1024)
	}
}

// loadgenChatBody is the body of the load generator's non-streaming chat
// request (requestBody(false) in test/loadgen/messages.go), copied here so
// that pricing does not import the load generator: 1 KiB, keys in the
// order an OpenAI client writes them.
func loadgenChatBody() []byte {
	turn := strings.Repeat("Summarise the quarterly report in three bullet points. ", 2)
	return []byte(`{"model":"meta-llama/Llama-3.1-70B-Instruct","messages":[` +
		`{"role":"system","content":"You are a concise analyst. Answer in English, cite figures, and say when data is missing."},` +
		`{"role":"user","content":"` + turn + `"},` +
		`{"role":"assistant","content":"` + turn + turn + `"},` +
		`{"role":"user","content":[{"type":"text","text":"` + turn + `"},` +
		`{"type":"text","text":"Keep it under 50 words, and end with one open question for the team."}]}],` +
		`"max_tokens":256,"temperature":0.2,"n":1}`)
}

// benchParse measures ParseRequest of a chat completions body.
func benchParse(b *testing.B, body []byte) {
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := ParseRequest(ChatCompletions, body); err != nil {
			b.Fatal(err)
		}
	}
}

// twoMessages is a chat body with a system and a user message.
func twoMessages(b *testing.B, system, user string) []byte {
	body, err := json.Marshal(map[string]any{
		"model": "meta-llama/Llama-3.1-70B-Instruct",
		"messages": []any{
			map[string]any{"role": "system", "content": system},
			map[string]any{"role": "user", "content": user},
		},
	})
	if err != nil {
		b.Fatal(err)
	}
	return body
}

// BenchmarkParseRequestChat1KiB is ParseRequest on the load generator's
// request body, the one the end-to-end CPU profile measures.
func BenchmarkParseRequestChat1KiB(b *testing.B) { benchParse(b, loadgenChatBody()) }

// BenchmarkParseRequestEscapedPrompt is a chat whose texts have the
// newlines, quotes and non-ASCII letters of real prompts, which JSON
// escapes: they are measured without being decoded.
func BenchmarkParseRequestEscapedPrompt(b *testing.B) {
	doc := strings.Repeat("Line one of the \"Q3\" report: revenue €4.2M.\n\tDetails follow.\n", 12)
	benchParse(b, twoMessages(b, "You are a concise analyst.\nAnswer in English.", doc))
}

// BenchmarkParseRequestLongPrompt is an agent's request: a 32 KiB context
// of plain text in one message, where reading long strings dominates.
func BenchmarkParseRequestLongPrompt(b *testing.B) {
	ctx := strings.Repeat("The build failed at step 12 because the cache key changed. ", 550)
	benchParse(b, twoMessages(b, "You are a build assistant.", ctx))
}

// BenchmarkParseBodyChat1KiB is ParseBody, the processor's parse, on the
// load generator's request into a Body kept across requests as the
// stream keeps it: ParseRequestChat1KiB plus recording the layout and the
// top-level fields.
func BenchmarkParseBodyChat1KiB(b *testing.B) {
	body := loadgenChatBody()
	var into Body
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		if err := ParseBody(&into, ChatCompletions, body); err != nil {
			b.Fatal(err)
		}
	}
}
