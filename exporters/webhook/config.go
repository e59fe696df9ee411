package webhook

import (
	"fmt"
	"slices"
	"strings"

	"github.com/spendguard/spendguard/exporters/sink"
)

// Event names, as configured in `events:` and sent in alerts.
const (
	SoftCapCrossed = "soft_cap_crossed"
	HardCapReached = "hard_cap_reached"
	// ThresholdCrossed is sent when a scope's spend reaches one of its
	// budget's alerts.thresholds (fractions of the hard cap).
	ThresholdCrossed = "threshold_crossed"
)

// eventNames returns every event, in the order messages list them.
func eventNames() []string { return []string{SoftCapCrossed, HardCapReached, ThresholdCrossed} }

// Config is the `exporters.webhook` section.
type Config struct {
	// URL receives a POST per alert. Required; a secret (Slack webhook
	// URLs are credentials), never logged.
	URL string `yaml:"url"`
	// Format is json (default) or slack.
	Format string `yaml:"format"`
	// Events to send; default all: soft_cap_crossed, hard_cap_reached and
	// threshold_crossed (sent only for budgets with alerts.thresholds).
	Events []string `yaml:"events"`
	// Headers are added to every POST (e.g. an Authorization header).
	Headers map[string]string `yaml:"headers"`
}

// WithDefaults returns c with the defaults filled in.
func (c Config) WithDefaults() Config {
	if c.Format == "" {
		c.Format = "json"
	}
	if c.Events == nil {
		c.Events = eventNames()
	}
	return c
}

// Validate returns every problem of c.
func (c Config) Validate() []sink.FieldError {
	var out []sink.FieldError
	if msg := sink.CheckURL(c.URL); msg != "" {
		out = append(out, sink.FieldError{Field: "url", Msg: msg + " (is its environment variable set?)"})
	}
	switch c.Format {
	case "", "json", "slack":
	default:
		out = append(out, sink.FieldError{Field: "format", Msg: fmt.Sprintf("%q is neither slack nor json", c.Format)})
	}
	if c.Events != nil && len(c.Events) == 0 {
		out = append(out, sink.FieldError{Field: "events", Msg: "is empty: list some of " + strings.Join(eventNames(), ", ") + ", or remove the webhook"})
	}
	for i, e := range c.Events {
		switch {
		case !slices.Contains(eventNames(), e):
			out = append(out, sink.FieldError{Field: "events", Msg: fmt.Sprintf("%q is not one of %s", e, strings.Join(eventNames(), ", "))})
		case slices.Contains(c.Events[:i], e):
			out = append(out, sink.FieldError{Field: "events", Msg: fmt.Sprintf("%q is listed twice", e)})
		}
	}
	return out
}
