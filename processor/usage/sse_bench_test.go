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
