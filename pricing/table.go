package pricing

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing/tokencount"
)

// Table is a compiled, immutable price table. It is safe for concurrent use;
// a configuration reload builds a new Table rather than changing one.
type Table struct {
	exact     map[string]Price
	globs     []Price // in file order
	def       Price
	hasDef    bool
	maxOutput int64
	tokenizer tokencount.Settings
	router    *Router
	audioMax  int64
}

// Price is what one model costs, in nano-USD per million tokens.
type Price struct {
	// Match is the `match` of the entry that priced the model, or "" when
	// the model was priced by `default` (an entry's match is never empty).
	Match string
	// Input is the price of a million prompt tokens not served from cache.
	Input money.Nano
	// CachedInput is the price of a million prompt tokens served from the
	// prefix cache. Compile sets it to Input when the file leaves it out.
	CachedInput money.Nano
	// Output is the price of a million completion tokens.
	Output money.Nano
	// PerSecond is the price of one second of audio, for upstreams that
	// report a duration instead of tokens (transcriptions); 0 when unset.
	PerSecond money.Nano
}

// Compile validates c and builds its Table. It reports every problem it
// finds at once (errors.Join), one error per problem, each prefixed by its
// path in the file and, where known, its line:
//
//	pricing.models[2].match: line 41: invalid glob "qwen[": syntax error in pattern
//
// Indexes are 0-based. It rejects: a missing or empty match; a glob that
// path.Match cannot parse; two entries with the same match (the second could
// never be used); a missing input or output price; a price that is not a
// non-negative decimal with at most 9 decimals; a cached_input above input
// (worst-case estimates assume cache hits never cost more than misses, see
// Request.WorstCase); a negative default_max_output_tokens; a section
// with neither models nor a default, which could price nothing; and every
// problem of pricing.tokenizer (tokencount.Config.Compile).
// Request.WorstCase); a negative default_max_output_tokens; and a section
// with neither models nor a default, which could price nothing; a negative
// audio.max_seconds; and the routing mistakes listed on compileRouter.
func (c Config) Compile() (*Table, error) {
	t := &Table{exact: make(map[string]Price), maxOutput: int64(c.DefaultMaxOutputTokens), audioMax: c.Audio.MaxSeconds}
	var errs []error
	if t.maxOutput <= 0 {
		t.maxOutput = DefaultMaxOutputTokens
	}
	if t.audioMax <= 0 {
		t.audioMax = DefaultAudioMaxSeconds
	}
	if c.Audio.MaxSeconds < 0 {
		errs = append(errs, fmt.Errorf("pricing.audio.max_seconds: %d: must not be negative", c.Audio.MaxSeconds))
	}
	var rerrs []error
	t.router, rerrs = compileRouter(c)
	errs = append(errs, rerrs...)
	if len(c.Models) == 0 && c.Default == nil {
		errs = append(errs, errors.New("pricing: no models and no default: no request could be priced"))
	}

	seen := make(map[string]int) // match -> index of its first entry
	for i, m := range c.Models {
		where := fmt.Sprintf("pricing.models[%d]", i)
		line := firstLine(m.Match.Line, m.Rates)
		if err := checkMatch(m.Match, fieldLine(m.Match.Line, line)); err != nil {
			errs = append(errs, fmt.Errorf("%s.match:%w", where, err))
		} else if j, dup := seen[m.Match.Value]; dup {
			errs = append(errs, fieldErr(where+".match", m.Match.Line,
				"%q duplicates pricing.models[%d]%s; the second entry could never be used",
				m.Match.Value, j, atLine(c.Models[j].Match.Line)))
		} else {
			seen[m.Match.Value] = i
		}
		p, rerrs := compileRates(where, m.Rates, line)
		errs = append(errs, rerrs...)
		p.Match = m.Match.Value
		if isGlob(p.Match) {
			t.globs = append(t.globs, p)
		} else if _, dup := t.exact[p.Match]; !dup {
			t.exact[p.Match] = p
		}
	}

	if c.Default != nil {
		p, rerrs := compileRates("pricing.default", *c.Default, firstLine(0, *c.Default))
		errs = append(errs, rerrs...)
		t.def, t.hasDef = p, true
	}
	tok, err := c.Tokenizer.Compile()
	if err != nil {
		errs = append(errs, err)
	}
	t.tokenizer = tok
	if c.DefaultMaxOutputTokens < 0 {
		errs = append(errs, fmt.Errorf("pricing.default_max_output_tokens: %d: must not be negative", c.DefaultMaxOutputTokens))
	}
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	return t, nil
}

// Lookup returns the price of model: an entry whose match equals model
// exactly if there is one; otherwise the first glob entry, in file order,
// that matches model with path.Match (so "*" does not cross "/":
// "meta-llama/*" matches "meta-llama/Llama-3.1-8B-Instruct", "*" does not);
// otherwise the default. Matching is case-sensitive. found is false when
// nothing matches and there is no default: such a model cannot be priced.
func (t *Table) Lookup(model string) (p Price, found bool) {
	if p, ok := t.exact[model]; ok {
		return p, true
	}
	for _, g := range t.globs {
		if ok, _ := path.Match(g.Match, model); ok { // patterns were validated by Compile
			return g, true
		}
	}
	if t.hasDef {
		return t.def, true
	}
	return Price{}, false
}

// DefaultMaxOutputTokens is the output allowance to reserve for a request
// that sets no max_tokens: the file's default_max_output_tokens, or 1024.
func (t *Table) DefaultMaxOutputTokens() int64 { return t.maxOutput }

// AudioMaxSeconds is the audio length to reserve for when an uploaded
// file's length cannot be read: pricing.audio.max_seconds, or
// DefaultAudioMaxSeconds.
func (t *Table) AudioMaxSeconds() int64 { return t.audioMax }

// Route is the route of a request with this method and path (see
// Router.Route), from the built-in table and the section's free_paths and
// paths.
func (t *Table) Route(method, path string) Route { return t.router.Route(method, path) }

// Router is the compiled routing table, for check-config's summary.
func (t *Table) Router() *Router { return t.router }

// checkMatch returns an error, starting with " line N:" where known, when a
// match is missing, empty or an invalid glob.
func checkMatch(m Pattern, line int) error {
	switch {
	case m.err != nil:
		return fmt.Errorf("%s %w", lineSuffix(line), m.err)
	case m.Value == "":
		return fmt.Errorf("%s missing or empty: want a model name or glob", lineSuffix(line))
	case isGlob(m.Value):
		if _, err := path.Match(m.Value, ""); err != nil {
			return fmt.Errorf("%s invalid glob %q: %w", lineSuffix(line), m.Value, err)
		}
	}
	return nil
}

func compileRates(where string, r Rates, line int) (Price, []error) {
	var errs []error
	get := func(name string, rate *Rate, required bool) (money.Nano, bool) {
		field := where + "." + name
		switch {
		case rate == nil:
			if required {
				errs = append(errs, fieldErr(field, line, "missing: want a price in USD per million tokens"))
			}
			return 0, false
		case rate.err != nil:
			errs = append(errs, fieldErr(field, rate.Line, "%v", rate.err))
			return 0, false
		case rate.PerMillion < 0:
			errs = append(errs, fieldErr(field, rate.Line, "%s: must not be negative", trimUSD(rate.PerMillion)))
			return 0, false
		}
		return rate.PerMillion, true
	}
	var p Price
	in, inOK := get("input", r.Input, true)
	p.Input = in
	p.Output, _ = get("output", r.Output, true)
	p.CachedInput = in
	if cached, ok := get("cached_input", r.CachedInput, false); ok {
		p.CachedInput = cached
		if inOK && cached > in {
			errs = append(errs, fieldErr(where+".cached_input", r.CachedInput.Line,
				"%s is above input %s: cached prompt tokens must not cost more than uncached ones",
				trimUSD(cached), trimUSD(in)))
		}
	}
	if ps, ok := get("per_second", r.PerSecond, false); ok {
		p.PerSecond = ps
	}
	for i, err := range errs {
		if strings.HasPrefix(err.Error(), where+".per_second:") {
			errs[i] = errors.New(strings.ReplaceAll(err.Error(), "per million tokens", "per second of audio"))
		}
	}
	return p, errs
}

// isGlob reports whether a match uses path.Match syntax rather than naming
// one model exactly.
func isGlob(match string) bool { return strings.ContainsAny(match, `*?[\`) }

// firstLine is the best line to blame for a problem with an entry as a
// whole: its match, else the first of its prices.
func firstLine(match int, r Rates) int {
	if match > 0 {
		return match
	}
	for _, rate := range []*Rate{r.Input, r.CachedInput, r.Output, r.PerSecond} {
		if rate != nil && rate.Line > 0 {
			return rate.Line
		}
	}
	return 0
}

func fieldLine(own, fallback int) int {
	if own > 0 {
		return own
	}
	return fallback
}

func fieldErr(field string, line int, format string, args ...any) error {
	return fmt.Errorf("%s:%s %s", field, lineSuffix(line), fmt.Sprintf(format, args...))
}

// lineSuffix is " line N:" for a known line and "" otherwise.
func lineSuffix(line int) string {
	if line <= 0 {
		return ""
	}
	return fmt.Sprintf(" line %d:", line)
}

// atLine is " (line N)" for a known line and "" otherwise.
func atLine(line int) string {
	if line <= 0 {
		return ""
	}
	return fmt.Sprintf(" (line %d)", line)
}

// trimUSD prints a per-million price without trailing zeros ("0.6").
func trimUSD(n money.Nano) string {
	s := strings.TrimRight(n.Fixed(9), "0")
	return strings.TrimSuffix(s, ".")
}

// Tokenizer is the validated pricing.tokenizer section: where and how to
// count tokens with the model server's /tokenize. Its zero value (no url)
// means counting is off.
func (t *Table) Tokenizer() tokencount.Settings { return t.tokenizer }
