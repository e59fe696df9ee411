package tokencount

import (
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
)

func compileYAML(t *testing.T, text string) (Settings, error) {
	t.Helper()
	var doc struct {
		Tokenizer Config `yaml:"tokenizer"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(text), &doc))
	return doc.Tokenizer.Compile()
}

func TestCompileDefaultsAndOff(t *testing.T) {
	s, err := compileYAML(t, "tokenizer:\n  url: http://vllm:8000/\n")
	require.NoError(t, err)
	assert.Equal(t, Settings{Endpoint: "http://vllm:8000/tokenize", Timeout: DefaultTimeout, Queue: DefaultQueue,
		Workers: DefaultWorkers, CacheEntries: DefaultCacheEntries}, s)
	assert.True(t, s.Enabled())

	s, err = compileYAML(t, "tokenizer:\n  url: https://h/base\n  timeout: 500ms\n  queue: 3\n  workers: 2\n  cache_entries: 9\n")
	require.NoError(t, err)
	assert.Equal(t, Settings{Endpoint: "https://h/base/tokenize", Timeout: 500 * time.Millisecond, Queue: 3, Workers: 2, CacheEntries: 9}, s)

	s, err = (Config{}).Compile()
	require.NoError(t, err)
	assert.False(t, s.Enabled(), "off without a url")
}

func TestCompileReportsEveryProblemWithItsLine(t *testing.T) {
	_, err := compileYAML(t, `tokenizer:
  url: ftp://vllm
  timeout: soon
  queue: -1
  workers: 100000
  cache_entries: -5
  timout: 2s
`)
	require.Error(t, err)
	for _, want := range []string{
		"line 2: pricing.tokenizer.url: \"ftp://vllm\": want an http:// or https:// URL",
		"line 3: pricing.tokenizer.timeout: \"soon\" is not a duration",
		"line 4: pricing.tokenizer.queue: -1 is outside 0 to 65536",
		"line 5: pricing.tokenizer.workers: 100000 is outside 0 to 256",
		"line 6: pricing.tokenizer.cache_entries: -5 is outside",
		"line 7: pricing.tokenizer.timout: unknown key",
	} {
		assert.Contains(t, err.Error(), want)
	}
	for text, want := range map[string]string{
		"tokenizer:\n  url: http://\n":                 "has no host",
		"tokenizer:\n  url: http://h?x=1\n":            "without user, query or fragment",
		"tokenizer:\n  url: h:8000\n":                  "want an http",
		"tokenizer:\n  url: http://h\n  timeout: 1m\n": "outside 0 to 30s",
		"tokenizer:\n  timeout: [1]\n":                 "is not a duration",
	} {
		_, err := compileYAML(t, text)
		assert.ErrorContains(t, err, want, text)
	}
}
