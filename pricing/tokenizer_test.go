package pricing

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestTokenizerSection(t *testing.T) {
	tab := compile(t, "pricing:\n  default: {input: 1, output: 1}\n")
	assert.False(t, tab.Tokenizer().Enabled(), "off unless a url is set")

	tab = compile(t, "pricing:\n  default: {input: 1, output: 1}\n  tokenizer:\n    url: http://vllm:8000\n    timeout: 1s\n")
	s := tab.Tokenizer()
	assert.Equal(t, "http://vllm:8000/tokenize", s.Endpoint)
	assert.Equal(t, time.Second, s.Timeout)

	_, err := decode(t, "pricing:\n  default: {input: 1, output: 1}\n  tokenizer:\n    url: vllm\n    queue: -2\n").Compile()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 4: pricing.tokenizer.url:")
	assert.Contains(t, err.Error(), "line 5: pricing.tokenizer.queue:")
}
