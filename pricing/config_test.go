package pricing

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/money"
)

// configFile stands in for the whole configuration file: the pricing
// section is decoded the way the config package decodes it.
type configFile struct {
	Pricing Config `yaml:"pricing"`
}

func decode(t testing.TB, src string) Config {
	t.Helper()
	dec := yaml.NewDecoder(strings.NewReader(src))
	dec.KnownFields(true)
	var f configFile
	require.NoError(t, dec.Decode(&f))
	return f.Pricing
}

func compile(t testing.TB, src string) *Table {
	t.Helper()
	tab, err := decode(t, src).Compile()
	require.NoError(t, err)
	return tab
}

// examplePricing is the pricing section of spec/spendguard.example.yaml.
const examplePricing = `
pricing:
  # USD per million tokens. "match" is an exact served model name or a glob.
  models:
    - match: meta-llama/Llama-3.1-70B-Instruct
      input: 0.60
      cached_input: 0.30
      output: 0.80
    - match: meta-llama/Llama-3.1-8B-Instruct
      input: 0.06
      output: 0.06
    - match: "qwen*"
      input: 0.10
      output: 0.20
    - match: free-tier-model
      input: 0
      output: 0
  default: {input: 1.00, output: 2.00}
  default_max_output_tokens: 1024
`

func TestExampleSection(t *testing.T) {
	tab := compile(t, examplePricing)
	assert.Equal(t, int64(1024), tab.DefaultMaxOutputTokens())

	p, ok := tab.Lookup("meta-llama/Llama-3.1-70B-Instruct")
	require.True(t, ok)
	assert.Equal(t, Price{Match: "meta-llama/Llama-3.1-70B-Instruct",
		Input: 600_000_000, CachedInput: 300_000_000, Output: 800_000_000}, p)

	p, ok = tab.Lookup("meta-llama/Llama-3.1-8B-Instruct")
	require.True(t, ok)
	assert.Equal(t, Price{Match: "meta-llama/Llama-3.1-8B-Instruct",
		Input: 60_000_000, CachedInput: 60_000_000, Output: 60_000_000}, p, "cached_input defaults to input")

	p, ok = tab.Lookup("qwen2.5-7b")
	require.True(t, ok)
	assert.Equal(t, "qwen*", p.Match)

	p, ok = tab.Lookup("free-tier-model")
	require.True(t, ok)
	assert.Equal(t, Price{Match: "free-tier-model"}, p)

	p, ok = tab.Lookup("mistral-7b")
	require.True(t, ok)
	assert.Equal(t, Price{Input: money.PerUSD, CachedInput: money.PerUSD, Output: 2 * money.PerUSD}, p)
}

func TestRateDecodesScalarTextExactly(t *testing.T) {
	tests := []struct {
		yaml string
		want money.Nano
	}{
		{"0.60", 600_000_000},
		{"0.1", 100_000_000},
		{"0.3", 300_000_000}, // 0.1+0.2 != 0.3 in float64; here it is exact
		{"15", 15_000_000_000},
		{"2.5", 2_500_000_000},
		{"0.000000001", 1},
		{"+1.25", 1_250_000_000},
		{`"0.60"`, 600_000_000}, // a quoted decimal is accepted too
		{"0", 0},
		{"1000000", 1_000_000 * money.PerUSD},
	}
	for _, tt := range tests {
		t.Run(tt.yaml, func(t *testing.T) {
			var r Rate
			require.NoError(t, yaml.Unmarshal([]byte("\n"+tt.yaml), &r))
			require.NoError(t, r.err)
			assert.Equal(t, tt.want, r.PerMillion)
			assert.Equal(t, 2, r.Line)
		})
	}
}

func TestRateRejectsWhatIsNotADecimal(t *testing.T) {
	for _, src := range []string{"1e-6", "0.0000000001", ".inf", ".nan", "true", "abc", "0x10", "[1]", "{a: 1}", "1_000"} {
		t.Run(src, func(t *testing.T) {
			var r Rate
			require.NoError(t, yaml.Unmarshal([]byte(src), &r), "errors are left to Compile")
			assert.Error(t, r.err)
		})
	}
}

func TestDefaultMaxOutputTokens(t *testing.T) {
	tests := []struct {
		name string
		line string
		want int64
	}{
		{"absent", "", 1024},
		{"zero", "  default_max_output_tokens: 0\n", 1024},
		{"set", "  default_max_output_tokens: 4096\n", 4096},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			tab := compile(t, "pricing:\n  default: {input: 1, output: 1}\n"+tt.line)
			assert.Equal(t, tt.want, tab.DefaultMaxOutputTokens())
		})
	}
}

func TestCompileReportsEveryProblemWithItsLine(t *testing.T) {
	src := `pricing:
  models:
    - match: ""
      input: 1
      output: 1
    - match: "qwen["
      input: 1
      output: 1
    - match: llama
      input: -0.5
      output: 1e-3
    - match: llama
      input: 1
      output: 1
    - match: cached
      input: 0.60
      cached_input: 0.70
      output: 1
    - match: noout
      input: 1
    - input: 1
      output: 1
    - match: [a, b]
      input: 1
      output: {usd: 1}
  default: {input: 0.0000000001}
  default_max_output_tokens: -1
`
	_, err := decode(t, src).Compile()
	require.Error(t, err)
	want := []string{
		`pricing.models[0].match: line 3: missing or empty: want a model name or glob`,
		`pricing.models[1].match: line 6: invalid glob "qwen[": syntax error in pattern`,
		`pricing.models[2].input: line 10: -0.5: must not be negative`,
		`pricing.models[2].output: line 11: want a decimal number of USD per million tokens with at most 9 decimals: "1e-3": not a decimal USD amount`,
		`pricing.models[3].match: line 12: "llama" duplicates pricing.models[2] (line 9); the second entry could never be used`,
		`pricing.models[4].cached_input: line 17: 0.7 is above input 0.6: cached prompt tokens must not cost more than uncached ones`,
		`pricing.models[5].output: line 19: missing: want a price in USD per million tokens`,
		`pricing.models[6].match: line 21: missing or empty: want a model name or glob`,
		`pricing.models[7].match: line 23: want a model name or glob, got a sequence`,
		`pricing.models[7].output: line 25: want a number of USD per million tokens, got a mapping`,
		`pricing.default.input: line 26: want a decimal number of USD per million tokens with at most 9 decimals: "0.0000000001": more than 9 decimal places: not a decimal USD amount`,
		`pricing.default.output: line 26: missing: want a price in USD per million tokens`,
		"pricing.default_max_output_tokens: -1: must not be negative",
	}
	assert.Equal(t, want, strings.Split(err.Error(), "\n"))
}

func TestCompileRejectsAnEmptySection(t *testing.T) {
	_, err := Config{}.Compile()
	require.Error(t, err)
	assert.Contains(t, err.Error(), "no models and no default")
}

func TestCompileWithoutYAML(t *testing.T) {
	c := Config{Models: []ModelConfig{{
		Match: Pattern{Value: "m"},
		Rates: Rates{Input: &Rate{PerMillion: 2}, Output: &Rate{PerMillion: 3}},
	}}}
	tab, err := c.Compile()
	require.NoError(t, err)
	p, ok := tab.Lookup("m")
	require.True(t, ok)
	assert.Equal(t, Price{Match: "m", Input: 2, CachedInput: 2, Output: 3}, p)

	c.Models[0].Output = nil
	_, err = c.Compile()
	assert.EqualError(t, err, "pricing.models[0].output: missing: want a price in USD per million tokens")
}

func TestCompileRoutesAndAudio(t *testing.T) {
	tab := compile(t, `
pricing:
  models:
    - match: whisper-large
      input: 0.1
      output: 0.2
      per_second: 0.0001
  default: {input: 1, output: 2}
  free_paths: [/sleep, /admin/*]
  paths:
    /my/chat: chat
    /sm: invocations
  audio: {max_seconds: 600}
`)
	p, ok := tab.Lookup("whisper-large")
	require.True(t, ok)
	assert.Equal(t, money.Nano(100_000), p.PerSecond)
	assert.Equal(t, money.Nano(13*100_000), p.Cost(Usage{Seconds: 13}).Audio)
	assert.Equal(t, int64(600), tab.AudioMaxSeconds())
	assert.Equal(t, Route{Kind: RouteFree}, tab.Route("POST", "/admin/x"))
	assert.Equal(t, Route{Kind: RouteFree}, tab.Route("POST", "/sleep"))
	assert.Equal(t, Route{RouteCost, ChatCompletions}, tab.Route("POST", "/my/chat"))
	assert.Equal(t, Route{RouteCost, Invocations}, tab.Route("POST", "/sm"))
	assert.Equal(t, Route{Kind: RouteRefused}, tab.Route("POST", "/wake_up"))

	assert.Equal(t, int64(DefaultAudioMaxSeconds), compile(t, "pricing: {default: {input: 1, output: 2}}").AudioMaxSeconds())
}

func TestCompileRejectsRoutesAndAudio(t *testing.T) {
	src := `pricing:
  default:
    input: 1
    output: 2
    per_second: -1
  models:
    - match: m
      input: 1
      output: 1
      per_second: [1]
  free_paths: [/v1/embeddings, {a: 1}, /v1/*]
  paths:
    /x: chatty
    y: chat
  audio: {max_seconds: -5}
`
	_, err := decode(t, src).Compile()
	require.Error(t, err)
	want := []string{
		"pricing.audio.max_seconds: -5: must not be negative",
		`pricing.paths./x: line 13: "chatty" is not an endpoint kind: want one of chat, classify, completions, embeddings, generate, invocations, messages, pooling, rerank, responses, score, transcriptions, translations`,
		`pricing.paths.y: line 14: "y": a path must start with /`,
		`pricing.free_paths[0]: line 11: "/v1/embeddings" costs money (built in or in pricing.paths); it cannot also be free`,
		`pricing.free_paths[1]: line 11: want a string, got a mapping`,
		`pricing.free_paths[2]: line 11: "/v1/*" covers /v1/audio/transcriptions, which costs money: it would pass unmetered`,
		`pricing.models[0].per_second: line 10: want a number of USD per second of audio, got a sequence`,
		`pricing.default.per_second: line 5: -1: must not be negative`,
	}
	assert.Equal(t, want, strings.Split(err.Error(), "\n"))
}
