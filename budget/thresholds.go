package budget

import (
	"fmt"
	"slices"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/internal/strictyaml"
)

// MaxThresholds is how many alerts.thresholds a budget may list.
const MaxThresholds = 10

// Alerts is a budget's `alerts:` section: what its alerts (the webhook
// exporter's) look for besides the caps.
type Alerts struct {
	// Thresholds are fractions of the hard cap (0.8, or "80%") at which
	// a scope's spend sends a threshold_crossed alert, once each per
	// period. Compile sorts them.
	Thresholds []Threshold `yaml:"thresholds"`
}

// Threshold is one entry of alerts.thresholds, decoded exactly from the
// text of its YAML scalar: a fraction of the hard cap such as 0.8, or a
// percentage such as "80%" (the same threshold). As with USD, a value that
// does not parse is kept as an error that Compile reports with its line.
type Threshold struct {
	// PPM is the threshold in millionths of the hard cap (800000 for 0.8).
	PPM  int64
	Line int
	text string // as written, for errors
	err  error
}

// ThresholdOf returns the Threshold of a fraction such as 0.8, for
// configurations built in code (rounded to a millionth).
func ThresholdOf(fraction float64) Threshold {
	return Threshold{PPM: int64(fraction*1e6 + 0.5), text: strconv.FormatFloat(fraction, 'g', -1, 64)}
}

// UnmarshalYAML parses the scalar's text with ParseThreshold.
func (t *Threshold) UnmarshalYAML(n *yaml.Node) error {
	*t = Threshold{Line: n.Line, text: n.Value}
	if n.Kind != yaml.ScalarNode || n.Tag == "!!null" {
		return &yaml.TypeError{Errors: []string{fmt.Sprintf(
			"line %d: a threshold must be a fraction such as 0.8 or a percentage such as \"80%%\", not a %s",
			n.Line, strictyaml.KindName(n.Kind))}}
	}
	t.PPM, t.err = ParseThreshold(n.Value)
	return nil
}

// ParseThreshold parses a fraction ("0.8", "1") or a percentage ("80%",
// "99.5%") into millionths, exactly: at most 6 decimals for a fraction,
// 4 for a percentage. It does not check the range.
func ParseThreshold(s string) (int64, error) {
	text, scale := strings.TrimSpace(s), 6
	if p, ok := strings.CutSuffix(text, "%"); ok {
		text, scale = strings.TrimSpace(p), 4
	}
	whole, frac, _ := strings.Cut(text, ".")
	bad := fmt.Errorf("%q is neither a fraction of the hard cap such as 0.8 nor a percentage such as \"80%%\" (at most %d decimals)", s, scale)
	if whole == "" && frac == "" || len(frac) > scale || len(whole) > 6 || !digits(whole) || !digits(frac) {
		return 0, bad
	}
	n, _ := strconv.ParseInt(whole+frac+strings.Repeat("0", scale-len(frac)), 10, 64)
	return n, nil
}

func digits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// compileThresholds validates alerts.thresholds: each above 0 and at most
// 1 (100%), no two equal, at most MaxThresholds, and a hard cap above 0 to
// be fractions of. It returns the fractions sorted ascending.
func compileThresholds(c Config, hasHard bool, hard money.Nano, fail func(line int, format string, args ...any)) []float64 {
	ts := c.Alerts.Thresholds
	line := c.keys.Line("alerts.thresholds")
	if ts == nil {
		return nil
	}
	ok := true
	switch {
	case len(ts) == 0:
		fail(line, "alerts.thresholds is empty: list fractions of the hard cap such as [0.5, 0.8, 0.95], or remove it")
		return nil
	case len(ts) > MaxThresholds:
		fail(line, "alerts.thresholds lists %d thresholds; at most %d", len(ts), MaxThresholds)
		ok = false
	case !c.HardUSD.Set:
		fail(line, "alerts.thresholds are fractions of the hard cap: they need hard_usd")
		ok = false
	case !hasHard: // hard_usd did not compile: reported already
		ok = false
	case hard == 0:
		fail(line, "alerts.thresholds are fractions of the hard cap, and hard_usd is 0")
		ok = false
	}
	var ppms []int64
	for _, t := range ts {
		l := t.Line
		if l == 0 {
			l = line
		}
		switch {
		case t.err != nil:
			fail(l, "alerts.thresholds: %v", t.err)
			ok = false
		case t.PPM <= 0 || t.PPM > 1_000_000:
			fail(l, "alerts.thresholds: %s is not above 0 and at most 1 (100%%)", t.text)
			ok = false
		case slices.Contains(ppms, t.PPM):
			fail(l, "alerts.thresholds: %s is listed twice", t.text)
			ok = false
		default:
			ppms = append(ppms, t.PPM)
		}
	}
	if !ok {
		return nil
	}
	slices.Sort(ppms)
	out := make([]float64, len(ppms))
	for i, p := range ppms {
		out[i] = float64(p) / 1e6
	}
	return out
}
