package budget

import (
	"fmt"
	"reflect"
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/internal/strictyaml"
)

// Config is one entry of the configuration's `budgets:` list, as written in
// the file. It is only a schema: Compile validates it into a Budget.
type Config struct {
	Name     string            `yaml:"name"`
	Match    map[string]string `yaml:"match"`
	Period   string            `yaml:"period"`   // hour | day | week | month | total
	Timezone string            `yaml:"timezone"` // IANA name; "" is UTC
	Rolling  Duration          `yaml:"rolling"`  // a sliding window instead of a calendar period
	SoftUSD  USD               `yaml:"soft_usd"`
	HardUSD  USD               `yaml:"hard_usd"`
	OnSoft   OnSoft            `yaml:"on_soft"`
	OnHard   OnHard            `yaml:"on_hard"`
	Alerts   Alerts            `yaml:"alerts"`

	// Line is the line of the entry in the file (0 when not decoded from
	// YAML); Compile uses it in its errors.
	Line int `yaml:"-"`

	keys strictyaml.Keys // unknown keys (reported by Compile) and every key's line
}

// OnSoft is what happens once a budget passes its soft cap.
type OnSoft struct {
	// Downgrade maps a requested model to the model served instead.
	Downgrade map[string]string `yaml:"downgrade"`
}

// OnHard is what happens once a budget reaches its hard cap.
type OnHard struct {
	// AllowModels are still served (and counted) past the hard cap.
	AllowModels []string `yaml:"allow_models"`
	// LowerOutputLimit serves a request whose output limit this budget
	// cannot pay with the limit lowered to what it can pay (announced in
	// a response header) instead of answering 402. Off by default: a
	// stated limit is never lowered unless the operator asks for it.
	LowerOutputLimit bool `yaml:"lower_output_limit"`
}

// Limits is the configuration's `limits:` section.
type Limits struct {
	// MaxRequestUSD rejects a single request whose worst-case cost is above
	// it; unset means no per-request ceiling.
	MaxRequestUSD USD `yaml:"max_request_usd"`
	// ReservationTTL is how long an unsettled reservation keeps counting
	// (DefaultReservationTTL when unset).
	ReservationTTL Duration `yaml:"reservation_ttl"`
	// BackgroundTTL is how long a background response (/v1/responses with
	// background: true) may take before its reservation is charged in
	// full, marked estimated (DefaultBackgroundTTL when unset).
	BackgroundTTL Duration `yaml:"background_ttl"`
	// Streams is how streamed (SSE) responses are reserved: the learned
	// estimate of their initial reservation, and whether the reservation
	// grows while they stream and they are cut at the cap.
	Streams Streams `yaml:"streams"`
}

// Streams is the `limits.streams:` section.
type Streams struct {
	// Grow (default true) reserves a streamed response's learned
	// estimate first, grows the reservation while it streams and ends the
	// stream at the cap; it needs Envoy's response_body_mode
	// FULL_DUPLEX_STREAMED. false reserves and writes the whole output
	// limit, as for a response that is not streamed.
	Grow *bool `yaml:"grow"`
	// Estimate configures the learned estimate of a stream's output.
	Estimate StreamEstimate `yaml:"estimate"`
}

// StreamEstimate is `limits.streams.estimate:`: a high quantile of the
// completion tokens a model has really produced on an endpoint recently.
type StreamEstimate struct {
	// Quantile of the recent completions (default 0.95).
	Quantile float64 `yaml:"quantile"`
	// Window is how many recent completions per model and endpoint are
	// kept (default 1000).
	Window int `yaml:"window"`
	// MinSamples is how many completions are needed before the estimate
	// replaces pricing.default_max_output_tokens (default 20).
	MinSamples int `yaml:"min_samples"`

	keys strictyaml.Keys // unknown keys (reported by Compile) and every key's line
}

// UnmarshalYAML decodes limits.streams.estimate and remembers its keys:
// their lines for Compile's errors, whether a key was written at all (an
// explicit 0 is an error, an absent key the default), and the unknown
// ones, which Compile reports (the file's own check does not look inside
// a type with its own unmarshaler).
func (s *StreamEstimate) UnmarshalYAML(n *yaml.Node) error {
	type plain StreamEstimate
	if err := n.Decode((*plain)(s)); err != nil {
		return err
	}
	s.keys = strictyaml.Check(n, reflect.TypeFor[plain](), "")
	return nil
}

// DefaultReservationTTL is the reservation TTL when limits.reservation_ttl is unset.
const DefaultReservationTTL = 10 * time.Minute

// DefaultBackgroundTTL is limits.background_ttl when unset: long enough
// for a long generation queued behind others.
const DefaultBackgroundTTL = time.Hour

// UnmarshalYAML decodes a budget entry and remembers its line and the
// line of each of its keys. Because yaml.v3 decodes the inside of a custom
// unmarshaler without the caller's KnownFields setting, it checks the keys
// itself (a misspelt "timezon" must not silently mean UTC); Compile
// reports the unknown ones.
func (c *Config) UnmarshalYAML(n *yaml.Node) error {
	type plain Config
	if err := n.Decode((*plain)(c)); err != nil {
		return err
	}
	c.Line = n.Line
	c.keys = strictyaml.Check(n, reflect.TypeFor[plain](), "")
	return nil
}

// keyLine is the line of the budget's key (a dotted path such as
// "period"), 0 when it is absent or the budget was not decoded from YAML.
func (c *Config) keyLine(key string) int { return c.keys.Lines[key] }

// USD is a dollar amount decoded exactly from the text of its YAML scalar
// ("0.60" is 600_000_000 nano-USD, never a float64 on the way). A value
// that does not parse is kept as an error that Compile reports with its
// line, so that every problem of a file is reported at once.
type USD struct {
	Value money.Nano
	Set   bool // false when the key is absent or null
	Line  int
	err   error
}

// USDOf returns a set USD of n, for configurations built in code.
func USDOf(n money.Nano) USD { return USD{Value: n, Set: true} }

// UnmarshalYAML parses the scalar's text with money.ParseUSD.
func (u *USD) UnmarshalYAML(n *yaml.Node) error {
	*u = USD{Line: n.Line}
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf("line %d: a USD amount must be a number, not a %s", n.Line, strictyaml.KindName(n.Kind))}}
	}
	if n.Tag == "!!null" {
		return nil
	}
	u.Set = true
	u.Value, u.err = money.ParseUSD(n.Value)
	return nil
}

// Duration is a duration such as "10m" decoded from a YAML scalar. Like
// USD, a value that does not parse is reported by Compile with its line.
type Duration struct {
	Value time.Duration
	Set   bool // false when the key is absent or null
	Line  int
	err   error
}

// DurationOf returns a set Duration of d, for configurations built in code.
func DurationOf(d time.Duration) Duration { return Duration{Value: d, Set: true} }

// UnmarshalYAML parses the scalar's text with time.ParseDuration.
func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	*d = Duration{Line: n.Line}
	if n.Kind != yaml.ScalarNode {
		return &yaml.TypeError{Errors: []string{
			fmt.Sprintf("line %d: a duration must be a string such as \"10m\", not a %s", n.Line, strictyaml.KindName(n.Kind))}}
	}
	if n.Tag == "!!null" {
		return nil
	}
	d.Set = true
	d.Value, d.err = time.ParseDuration(n.Value)
	if d.err != nil {
		d.err = fmt.Errorf("%q is not a duration such as \"10m\" or \"1h30m\"", n.Value)
	}
	return nil
}
