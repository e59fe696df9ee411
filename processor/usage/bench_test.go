package usage

import (
	"bytes"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// embeddingsBody is a compact vLLM-style /v1/embeddings response of about
// 50 MB: 1024-dimension vectors of float64 reprs, usage at the very end.
var embeddingsBody = sync.OnceValue(func() []byte {
	const size = 50 << 20
	r := rand.New(rand.NewPCG(1, 2))
	var b bytes.Buffer
	b.Grow(size + 64<<10)
	b.WriteString(`{"id":"embd-8136155c01e8411d","object":"list","created":1784538286,"model":"Qwen/Qwen3-Embedding-0.6B","data":[`)
	var num []byte
	for i := 0; b.Len() < size; i++ {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(`{"index":` + strconv.Itoa(i) + `,"object":"embedding","embedding":[`)
		for d := range 1024 {
			if d > 0 {
				b.WriteByte(',')
			}
			num = strconv.AppendFloat(num[:0], r.Float64()*0.2-0.1, 'g', -1, 64)
			b.Write(num)
		}
		b.WriteString(`]}`)
	}
	b.WriteString(`],"usage":{"prompt_tokens":123456,"total_tokens":123456,"completion_tokens":0,"prompt_tokens_details":null}}`)
	return b.Bytes()
})

func benchmarkChunked(b *testing.B, body []byte, chunk int, want pricing.Usage) {
	b.Helper()
	s := NewJSONScanner()
	b.SetBytes(int64(len(body)))
	b.ReportAllocs()
	for b.Loop() {
		s.Reset()
		for rest := body; len(rest) > 0; {
			n := min(chunk, len(rest))
			s.Write(rest[:n])
			rest = rest[n:]
		}
	}
	u, found, err := s.Result()
	require.NoError(b, err)
	require.True(b, found)
	require.Equal(b, want, u)
}

// BenchmarkJSONScannerEmbeddings50MB feeds a 50 MB embeddings body in
// 16 KiB chunks, as Envoy streams it. Its allocations are those of the one
// usage object at the end, not per chunk.
func BenchmarkJSONScannerEmbeddings50MB(b *testing.B) {
	benchmarkChunked(b, embeddingsBody(), 16<<10, pricing.Usage{Prompt: 123456})
}

// BenchmarkJSONScannerVLLMChat scans the recorded vLLM chat body whole.
func BenchmarkJSONScannerVLLMChat(b *testing.B) {
	body, err := os.ReadFile(filepath.Join(upstreamFixtures(b), "vllm-chat.json"))
	require.NoError(b, err)
	benchmarkChunked(b, body, 16<<10, pricing.Usage{Prompt: 12, Completion: 100})
}

func TestEmbeddingsBenchmarkBody(t *testing.T) {
	if testing.Short() {
		t.Skip("builds a 50 MB body")
	}
	body := embeddingsBody()
	got := scanRandom(body, baseSeed(t))
	require.NoError(t, got.err)
	assert.Equal(t, pricing.Usage{Prompt: 123456}, got.Usage)
}

// TestWriteDoesNotAllocate counts allocations (not time): a chunk that holds
// no part of the top-level usage value must not allocate, whatever it skips.
func TestWriteDoesNotAllocate(t *testing.T) {
	tests := []struct {
		name   string
		prefix string
		chunk  string // repeatable in place
		suffix string
	}{
		{
			name:   "embedding vectors",
			prefix: `{"object":"list","data":[`,
			chunk:  `{"index":0,"object":"embedding","embedding":[0.0123,-4.5e-3,1E+2,0,-0.047252766788]},`,
			suffix: `{}]}`,
		},
		{
			name:   "top-level keys near usage",
			prefix: `{"id":"x",`,
			chunk:  "\"usag\":\"usage\",\"usages\":{\"usage\":{\"prompt_tokens\":1}},\"us\\u0061gf\":[true,false,null],\n\t \"u\":{},",
			suffix: `"z":0}`,
		},
		{
			name:   "long string",
			prefix: `{"choices":[{"message":{"content":"`,
			chunk:  strings.Repeat(`text with \"escapes\" \\ \u00e9 \ud83d\ude00 日本語 `, 50),
			suffix: `"}}]}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := NewJSONScanner()
			s.Write([]byte(tt.prefix))
			chunk := []byte(tt.chunk)
			allocs := testing.AllocsPerRun(100, func() { s.Write(chunk) })
			assert.Zero(t, allocs, "allocations per Write")

			s.Write([]byte(tt.suffix))
			_, found, err := s.Result()
			require.NoError(t, err, "the repeated chunks form a valid body")
			assert.False(t, found)
		})
	}
}
