package pricing

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/internal/strictyaml"
	"github.com/spendguard/spendguard/pricing/tokencount"
)

// DefaultMaxOutputTokens is the output allowance assumed for a request that
// sets no max_tokens, when the file does not set default_max_output_tokens
// (or sets it to 0).
const DefaultMaxOutputTokens = 1024

// Config is the `pricing:` section of the configuration file, as written.
// It is turned into a validated, immutable Table by Compile; nothing reads a
// Config directly at request time.
type Config struct {
	// Models are priced entries, tried as described on Table.Lookup.
	Models []ModelConfig `yaml:"models"`
	// Default prices every model that no entry matches. Without it such a
	// model has no price and its requests are refused.
	Default *Rates `yaml:"default"`
	// DefaultMaxOutputTokens is the output allowance reserved for a request
	// that sets no max_tokens, and the limit the processor then writes into
	// its forwarded body (chat, completions, responses). 0 or absent means
	// DefaultMaxOutputTokens (1024).
	DefaultMaxOutputTokens int `yaml:"default_max_output_tokens"`
	// Tokenizer is the model server's /tokenize, which counts the tokens
	// of requests the upstream reported no usage for (off without a url).
	Tokenizer tokencount.Config `yaml:"tokenizer"`
	// FreePaths are the paths, besides the built-in ones, that a POST may
	// reach without being metered: exact paths, or prefixes written as a
	// path ending in "/*". Any other POST to a path that is not priced is
	// refused.
	FreePaths []Setting `yaml:"free_paths"`
	// Paths maps a path to the endpoint kind that meters it ("chat",
	// "embeddings", ...; see KindName), for a server that serves a kind
	// at a path of its own.
	Paths map[string]Setting `yaml:"paths"`
	// Audio configures the worst case of audio requests.
	Audio AudioConfig `yaml:"audio"`
}

// DefaultAudioMaxSeconds is the audio length assumed for the reservation of
// a transcription or translation whose file's length cannot be read, when
// the file does not set pricing.audio.max_seconds.
const DefaultAudioMaxSeconds = 1800

// AudioConfig is pricing.audio.
type AudioConfig struct {
	// MaxSeconds is the audio length reserved for when the uploaded file's
	// length cannot be read from its header; 0 or absent means
	// DefaultAudioMaxSeconds.
	MaxSeconds int64 `yaml:"max_seconds"`
}

// Setting is a string setting as written, with its line: a path or an
// endpoint kind.
type Setting struct {
	// Value is the text of the setting.
	Value string
	// Line is the 1-based line of the value in the file, 0 when unknown.
	Line int

	err error // a non-scalar value, reported by Compile
}

// UnmarshalYAML reads a setting from a YAML scalar. Like Rate.UnmarshalYAML
// it never fails and leaves the report of a malformed value to Compile.
func (s *Setting) UnmarshalYAML(n *yaml.Node) error {
	*s = Setting{Value: n.Value, Line: n.Line}
	if n.Kind != yaml.ScalarNode {
		s.Value = ""
		s.err = fmt.Errorf("want a string, got a %s", strictyaml.KindName(n.Kind))
	}
	return nil
}

// ModelConfig is one entry of pricing.models.
type ModelConfig struct {
	// Match is an exact served model name, or a glob in path.Match syntax
	// when it contains any of * ? [ or \.
	Match Pattern `yaml:"match"`
	Rates `yaml:",inline"`
}

// Rates are the prices of an entry. Input and Output are required;
// CachedInput, the price of prompt tokens served from the prefix cache, is
// optional and defaults to Input; PerSecond, the price of a second of
// audio (transcriptions and translations), is optional and defaults to 0.
type Rates struct {
	Input       *Rate `yaml:"input"`
	CachedInput *Rate `yaml:"cached_input"`
	Output      *Rate `yaml:"output"`
	// PerSecond is read like the others, but in USD per second of audio.
	PerSecond *Rate `yaml:"per_second"`
}

// Rate is a price in USD per million tokens, held exactly as nano-USD per
// million tokens. In YAML it is a plain decimal number such as 0.60; the
// scalar's text is parsed with money.ParseUSD, so no binary floating point
// is ever involved and 0.1 means exactly 100_000_000 nano-USD per million.
type Rate struct {
	// PerMillion is the price of one million tokens.
	PerMillion money.Nano
	// Line is the 1-based line of the value in the file, 0 when unknown.
	Line int

	err error // a malformed value, reported by Compile
}

// UnmarshalYAML reads a price from a YAML scalar. It never fails: a malformed
// value is remembered and reported by Config.Compile together with every
// other problem of the section, with its path and line, so that one run
// shows all mistakes instead of the first.
func (r *Rate) UnmarshalYAML(n *yaml.Node) error {
	*r = Rate{Line: n.Line}
	if n.Kind != yaml.ScalarNode {
		r.err = fmt.Errorf("want a number of USD per million tokens, got a %s", strictyaml.KindName(n.Kind))
		return nil
	}
	switch n.ShortTag() {
	case "!!int", "!!float", "!!str":
	default:
		r.err = fmt.Errorf("want a number of USD per million tokens, got %q", n.Value)
		return nil
	}
	v, err := money.ParseUSD(n.Value)
	if err != nil {
		r.err = fmt.Errorf("want a decimal number of USD per million tokens with at most 9 decimals: %w", err)
		return nil
	}
	r.PerMillion = v
	return nil
}

// Pattern is the text of a `match:` field with the line it was read from.
type Pattern struct {
	// Value is the model name or glob.
	Value string
	// Line is the 1-based line of the value in the file, 0 when unknown.
	Line int

	err error // a non-scalar value, reported by Compile
}

// UnmarshalYAML reads a pattern from a YAML scalar. Like Rate.UnmarshalYAML
// it never fails and leaves the report of a malformed value to Compile.
func (p *Pattern) UnmarshalYAML(n *yaml.Node) error {
	*p = Pattern{Value: n.Value, Line: n.Line}
	if n.Kind != yaml.ScalarNode {
		p.Value = ""
		p.err = fmt.Errorf("want a model name or glob, got a %s", strictyaml.KindName(n.Kind))
	}
	return nil
}
