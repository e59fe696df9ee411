package usage

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Token events as they arrive, one per chunk.
var (
	// vllmTokenChunk is a vLLM chat token event: no usage member.
	vllmTokenChunk = event("\n", tokA)
	// openAITokenChunk is an OpenAI chat token event with "usage":null, as
	// OpenAI sends when include_usage is set.
	openAITokenChunk = event("\n", `data: {"id":"chatcmpl-C4Hq5a6K3RaPMymUv70btQNYv6SvY","object":"chat.completion.chunk","created":1755137921,"model":"gpt-5-nano-2025-08-07","service_tier":"default","system_fingerprint":null,"choices":[{"index":0,"delta":{"content":"Hi"},"finish_reason":null}],"usage":null,"obfuscation":"WuQNX"}`)
	// responsesDeltaChunk is a Responses API text delta event.
	responsesDeltaChunk = event("\n", "event: response.output_text.delta", respDelta)
)

type allocCase struct {
	name   string
	kind   SSEKind
	chunks []string // written in turn; together they are whole events
	noText bool     // no content events
}

func allocCases() []allocCase {
	half := len(vllmTokenChunk) / 2
	return []allocCase{
		{name: "vLLM token event", chunks: []string{vllmTokenChunk}},
		{name: "OpenAI token event with usage null", chunks: []string{openAITokenChunk}},
		{name: "CRLF token event", chunks: []string{event("\r\n", "id: 7", tokB)}},
		{name: "keep-alive comment", chunks: []string{": keep-alive\n\n"}, noText: true},
		{name: "several events in one chunk", chunks: []string{strings.Repeat(vllmTokenChunk+openAITokenChunk, 4)}},
		{name: "token event split in two", chunks: []string{vllmTokenChunk[:half], vllmTokenChunk[half:]}},
		{name: "token event split after CR", chunks: []string{event("\r\n", tokA)[:len(tokA)+1], event("\r\n", tokA)[len(tokA)+1:]}},
		{name: "Responses delta event", kind: SSEResponses, chunks: []string{responsesDeltaChunk}},
	}
}

// TestSSEScannerWriteDoesNotAllocate counts allocations (not time): once
// its buffers have grown, the scanner does not allocate for chunks of token
// events, with or without dropping, whole or split.
func TestSSEScannerWriteDoesNotAllocate(t *testing.T) {
	for _, c := range allocCases() {
		for _, drop := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/drop=%v", c.name, drop), func(t *testing.T) {
				s := NewSSEScanner(c.kind, drop)
				chunks := make([][]byte, len(c.chunks))
				for i, ch := range c.chunks {
					chunks[i] = []byte(ch)
				}
				var forwarded int
				writeAll := func() {
					for _, ch := range chunks {
						out, _ := s.Write(ch)
						forwarded += len(out)
					}
				}
				writeAll() // grows the buffers
				allocs := testing.AllocsPerRun(100, writeAll)
				assert.Zero(t, allocs, "allocations per run")
				assert.Equal(t, 102*len(strings.Join(c.chunks, "")), forwarded, "everything is forwarded (AllocsPerRun runs once more to warm up)")
				_, found, err := s.Result()
				require.NoError(t, err)
				assert.False(t, found)
				assert.Equal(t, !c.noText, s.ContentEvents() > 0, "content events")
			})
		}
	}
}

// BenchmarkSSEScannerTokenEvent writes chunks of token events (with
// -benchmem: 0 allocs/op, with or without dropping).
func BenchmarkSSEScannerTokenEvent(b *testing.B) {
	for _, c := range allocCases() {
		for _, drop := range []bool{false, true} {
			b.Run(fmt.Sprintf("%s/drop=%v", strings.ReplaceAll(c.name, " ", "_"), drop), func(b *testing.B) {
				s := NewSSEScanner(c.kind, drop)
				chunks := make([][]byte, len(c.chunks))
				n := 0
				for i, ch := range c.chunks {
					chunks[i] = []byte(ch)
					n += len(ch)
				}
				b.SetBytes(int64(n))
				b.ReportAllocs()
				for b.Loop() {
					for _, ch := range chunks {
						s.Write(ch)
					}
				}
			})
		}
	}
}

// BenchmarkSSEScannerStream scans whole recorded streams in 512-byte chunks
// with the usage event dropped; the allocations are those of decoding the
// one usage event, not per chunk.
func BenchmarkSSEScannerStream(b *testing.B) {
	for _, file := range []string{"openai-chat-stream-no-usage.sse", "openai-completion-stream-usage.sse"} {
		b.Run(strings.TrimSuffix(file, ".sse"), func(b *testing.B) {
			body, err := os.ReadFile(filepath.Join(upstreamFixtures(b), file))
			require.NoError(b, err)
			s := NewSSEScanner(SSEChat, true)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				s.Reset(SSEChat, true)
				for rest := body; len(rest) > 0; {
					n := min(512, len(rest))
					s.Write(rest[:n])
					rest = rest[n:]
				}
				s.Finish()
			}
		})
	}
}

// Continuous-usage token events as vLLM sends them, one per chunk.
var (
	// vllmContinuousChunk is a chat token event with its running usage.
	vllmContinuousChunk = event("\n", `data: {"id":"chatcmpl-c0ffee0000000003","object":"chat.completion.chunk","created":1755200200,"model":"Qwen/Qwen3-8B","choices":[{"index":0,"delta":{"content":" upon"},"logprobs":null,"finish_reason":null}],"usage":{"prompt_tokens":21,"total_tokens":23,"completion_tokens":2}}`)
	// vllmContinuousTextChunk is a completions token event with its
	// running usage, dumped with every field.
	vllmContinuousTextChunk = event("\n", `data: {"id":"cmpl-c0ffee000000000000000000000000n2","object":"text_completion","created":1755200600,"model":"Qwen/Qwen3-8B","choices":[{"index":1,"text":" one","logprobs":null,"finish_reason":null,"stop_reason":null,"prompt_token_ids":null,"token_ids":null}],"usage":{"prompt_tokens":6,"total_tokens":7,"completion_tokens":1,"prompt_tokens_details":null}}`)
)

type stripCase struct {
	name   string
	mode   StripMode
	chunks []string // written in turn; together they are whole events
}

func stripCases() []stripCase {
	half := len(vllmContinuousChunk) / 2
	usageAt := strings.Index(vllmContinuousChunk, `"usage"`) + 12
	crlf := strings.ReplaceAll(vllmContinuousChunk, "\n", "\r\n")
	return []stripCase{
		{name: "chat continuous event", mode: StripDelete, chunks: []string{vllmContinuousChunk}},
		{name: "completions continuous event", mode: StripNull, chunks: []string{vllmContinuousTextChunk}},
		{name: "several events in one chunk", mode: StripDelete, chunks: []string{strings.Repeat(vllmContinuousChunk+vllmTokenChunk, 4)}},
		{name: "event split in two", mode: StripDelete, chunks: []string{vllmContinuousChunk[:half], vllmContinuousChunk[half:]}},
		{name: "event split inside the usage", mode: StripDelete, chunks: []string{vllmContinuousChunk[:usageAt], vllmContinuousChunk[usageAt:]}},
		{name: "CRLF event split after CR", mode: StripDelete, chunks: []string{crlf[:len(crlf)-3], crlf[len(crlf)-3:]}},
	}
}

// TestSSEScannerStripDoesNotAllocate counts allocations (not time): once
// its buffers have grown, hiding each chunk's usage allocates nothing,
// with or without dropping, whole or split; the usage is still read.
func TestSSEScannerStripDoesNotAllocate(t *testing.T) {
	for _, c := range stripCases() {
		for _, drop := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/drop=%v", c.name, drop), func(t *testing.T) {
				s := NewSSEScanner(SSEChat, drop)
				s.SetStripChunkUsage(c.mode)
				chunks := make([][]byte, len(c.chunks))
				for i, ch := range c.chunks {
					chunks[i] = []byte(ch)
				}
				var out []byte
				writeAll := func() {
					out = out[:0]
					for _, ch := range chunks {
						o, _ := s.Write(ch)
						out = append(out, o...)
					}
				}
				writeAll() // grows the buffers
				allocs := testing.AllocsPerRun(100, writeAll)
				assert.Zero(t, allocs, "allocations per run")
				assert.NotContains(t, string(out), `"usage":{`, "the usage is hidden")
				_, found, err := s.Result()
				require.NoError(t, err)
				assert.True(t, found, "the running usage is read")
			})
		}
	}
}

// BenchmarkSSEScannerStripEvent writes chunks of continuous-usage token
// events with their usage hidden (with -benchmem: 0 allocs/op).
func BenchmarkSSEScannerStripEvent(b *testing.B) {
	for _, c := range stripCases() {
		b.Run(strings.ReplaceAll(c.name, " ", "_"), func(b *testing.B) {
			s := NewSSEScanner(SSEChat, true)
			s.SetStripChunkUsage(c.mode)
			chunks := make([][]byte, len(c.chunks))
			n := 0
			for i, ch := range c.chunks {
				chunks[i] = []byte(ch)
				n += len(ch)
			}
			b.SetBytes(int64(n))
			b.ReportAllocs()
			for b.Loop() {
				for _, ch := range chunks {
					s.Write(ch)
				}
			}
		})
	}
}

// BenchmarkSSEScannerStripStream scans whole continuous-usage streams in
// 512-byte chunks, dropping the usage event and hiding each chunk's usage.
func BenchmarkSSEScannerStripStream(b *testing.B) {
	for _, c := range []struct {
		file string
		mode StripMode
	}{{"vllm-chat-stream-continuous-n2.sse", StripDelete}, {"vllm-completion-stream-continuous-n2.sse", StripNull}} {
		b.Run(strings.TrimSuffix(c.file, ".sse"), func(b *testing.B) {
			body, err := os.ReadFile(filepath.Join("testdata", c.file))
			require.NoError(b, err)
			s := NewSSEScanner(SSEChat, true)
			b.SetBytes(int64(len(body)))
			b.ReportAllocs()
			for b.Loop() {
				s.Reset(SSEChat, true)
				s.SetStripChunkUsage(c.mode)
				for rest := body; len(rest) > 0; {
					n := min(512, len(rest))
					s.Write(rest[:n])
					rest = rest[n:]
				}
				s.Finish()
			}
		})
	}
}
