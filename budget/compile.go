package budget

import (
	"errors"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"sort"
	"time"

	"github.com/spendguard/spendguard/budget/estimate"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/internal/strictyaml"
)

// Budget is one validated budget. It is immutable and safe to share
// between goroutines.
type Budget struct {
	index     int // position in the configuration: the order of Applicable
	name      string
	match     map[string]string
	keys      []string // sorted match keys
	period    Period
	rolling   rolling
	loc       *time.Location
	soft      money.Nano
	hasSoft   bool
	hard      money.Nano
	hasHard   bool
	downgrade map[string]string
	allow     []string
	lower     bool      // on_hard.lower_output_limit
	alerts    []float64 // alerts.thresholds, ascending
	line      int
	keyPrefix string // name and period part of every counter key
}

// Name is the budget's unique name.
func (b *Budget) Name() string { return b.name }

// Match returns a copy of the budget's match (key → value or "*").
func (b *Budget) Match() map[string]string { return maps.Clone(b.match) }

// Keys returns the budget's match keys, sorted.
func (b *Budget) Keys() []string { return slices.Clone(b.keys) }

// Period is the budget's period kind.
func (b *Budget) Period() Period { return b.period }

// Rolling is the length of a rolling window (0 for calendar periods).
func (b *Budget) Rolling() time.Duration { return b.rolling.span }

// Location is the time zone of the budget's calendar periods.
func (b *Budget) Location() *time.Location { return b.loc }

// Soft returns the soft cap and whether there is one.
func (b *Budget) Soft() (money.Nano, bool) { return b.soft, b.hasSoft }

// Hard returns the hard cap and whether there is one.
func (b *Budget) Hard() (money.Nano, bool) { return b.hard, b.hasHard }

// Downgrade returns the model served instead of model past the soft cap.
func (b *Budget) Downgrade(model string) (string, bool) {
	to, ok := b.downgrade[model]
	return to, ok
}

// AllowModels returns a copy of on_hard.allow_models.
func (b *Budget) AllowModels() []string { return slices.Clone(b.allow) }

// Allows reports whether model is still served past the hard cap.
func (b *Budget) Allows(model string) bool { return model != "" && slices.Contains(b.allow, model) }

// LowersOutputLimit reports on_hard.lower_output_limit: a request whose
// output limit this budget cannot pay may be served with a lower limit
// instead of being refused (see Rejection.Lowerable).
func (b *Budget) LowersOutputLimit() bool { return b.lower }

// Thresholds returns alerts.thresholds: fractions of the hard cap, in
// ascending order, nil when none are configured. The slice is the
// budget's own, shared by every caller so that passing it along with each
// request's budget states costs nothing: it must not be modified.
func (b *Budget) Thresholds() []float64 { return b.alerts }

// Line is the budget's line in the configuration file (0 if unknown).
func (b *Budget) Line() int { return b.line }

// Policies is a compiled, immutable set of budgets and limits. A reload
// compiles a new Policies and swaps the pointer; nothing in it changes.
type Policies struct {
	budgets    []*Budget
	groups     []group
	maxRequest money.Nano
	hasMax     bool
	ttl        time.Duration
	bgTTL      time.Duration      // limits.background_ttl; 0: DefaultBackgroundTTL
	estimate   estimate.Config    // limits.streams.estimate; zero: estimate.DefaultConfig
	noGrow     bool               // limits.streams.grow: false
	byPrefix   map[string]*Budget // keyPrefix → budget, for ParseCounterKey
	keys       []string           // Dimensions: every match key, sorted
	scopes     *scopeCache        // Applicable's recent results
}

// Budgets returns the budgets in configuration order.
func (p *Policies) Budgets() []*Budget { return slices.Clone(p.budgets) }

// Budget returns the budget called name.
func (p *Policies) Budget(name string) (*Budget, bool) {
	for _, b := range p.budgets {
		if b.name == name {
			return b, true
		}
	}
	return nil, false
}

// MaxRequest returns limits.max_request_usd and whether it is set.
func (p *Policies) MaxRequest() (money.Nano, bool) { return p.maxRequest, p.hasMax }

// ReservationTTL is how long an unsettled reservation keeps counting
// (DefaultReservationTTL for a nil Policies).
func (p *Policies) ReservationTTL() time.Duration {
	if p == nil {
		return DefaultReservationTTL
	}
	return p.ttl
}

// BackgroundTTL is limits.background_ttl: how long a background
// response's reservation waits for its result before it is charged in
// full (DefaultBackgroundTTL for a nil Policies).
func (p *Policies) BackgroundTTL() time.Duration {
	if p == nil || p.bgTTL == 0 {
		return DefaultBackgroundTTL
	}
	return p.bgTTL
}

// StreamEstimate is limits.streams.estimate with its defaults: the
// quantile, window and minimum samples of the learned estimate of a
// streamed response's output (estimate.DefaultConfig for a nil Policies).
// It always passes estimate.Config.Validate.
func (p *Policies) StreamEstimate() estimate.Config {
	if p == nil || p.estimate == (estimate.Config{}) {
		return estimate.DefaultConfig()
	}
	return p.estimate
}

// StreamsGrow is limits.streams.grow (default true): a streamed response
// is reserved for its learned estimate, its reservation grows while it
// streams, and it is ended at the cap (true for a nil Policies).
func (p *Policies) StreamsGrow() bool { return p == nil || !p.noGrow }

// Dimensions returns every match key used by some budget, sorted, so a
// caller can check them against the dimensions it knows how to resolve.
func (p *Policies) Dimensions() []string {
	var out []string
	for _, b := range p.budgets {
		for _, k := range b.keys {
			if !slices.Contains(out, k) {
				out = append(out, k)
			}
		}
	}
	sort.Strings(out)
	return out
}

// ConfigError is one problem found by Compile or StoreConfig.Validate;
// they join all of them. Its Where is `budget "name"` for a budget's
// problem, the key path for the store's ("store.redis.address"), "" for
// the limits section or an unnamed budget.
type ConfigError = strictyaml.Error

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]*$`)

// Compile validates the budgets and limits sections and returns the
// runtime policies. It reports every problem at once (errors.Join of
// *ConfigError, each with its line when known) and returns no Policies
// if there is any.
func Compile(budgets []Config, limits Limits) (*Policies, error) {
	var errs []error
	fail := func(line int, name, format string, args ...any) {
		where := ""
		if name != "" {
			where = fmt.Sprintf("budget %q", name)
		}
		errs = append(errs, &ConfigError{Line: line, Where: where, Msg: fmt.Sprintf(format, args...)})
	}
	p := &Policies{ttl: DefaultReservationTTL}
	seen := map[string]int{}
	for i, c := range budgets {
		b := compileBudget(c, func(line int, format string, args ...any) {
			if line == 0 {
				line = c.Line
			}
			fail(line, c.Name, format, args...)
		})
		if c.Name != "" {
			if first, dup := seen[c.Name]; dup {
				fail(c.Line, c.Name, "duplicate name (first used at budgets[%d])", first)
			} else {
				seen[c.Name] = i
			}
		} else {
			fail(c.Line, "", "budgets[%d] has no name", i)
		}
		b.index = i
		p.budgets = append(p.budgets, b)
	}
	if u := limits.MaxRequestUSD; u.Set {
		if u.err != nil {
			fail(u.Line, "", "limits.max_request_usd: %v", u.err)
		} else if u.Value < 0 {
			fail(u.Line, "", "limits.max_request_usd must not be negative")
		}
		p.maxRequest, p.hasMax = u.Value, true
	}
	if d := limits.ReservationTTL; d.Set {
		if d.err != nil {
			fail(d.Line, "", "limits.reservation_ttl: %v", d.err)
		} else if d.Value < time.Second {
			fail(d.Line, "", "limits.reservation_ttl must be at least 1s, not %v", d.Value)
		}
		p.ttl = d.Value
	}
	if d := limits.BackgroundTTL; d.Set {
		if d.err != nil {
			fail(d.Line, "", "limits.background_ttl: %v", d.err)
		} else if d.Value < time.Second {
			fail(d.Line, "", "limits.background_ttl must be at least 1s, not %v", d.Value)
		}
		p.bgTTL = d.Value
	}
	p.noGrow = limits.Streams.Grow != nil && !*limits.Streams.Grow
	p.estimate = compileEstimate(limits.Streams.Estimate, func(line int, format string, args ...any) {
		fail(line, "", format, args...)
	})
	if len(errs) > 0 {
		return nil, errors.Join(errs...)
	}
	p.groups = groupBudgets(p.budgets)
	p.keys = p.Dimensions()
	p.scopes = newScopeCache()
	p.byPrefix = make(map[string]*Budget, len(p.budgets))
	for _, b := range p.budgets {
		p.byPrefix[b.keyPrefix] = b
	}
	return p, nil
}

// compileBudget converts c, reporting problems to fail with the line of
// the offending key (line 0, for a missing key or a Config built in code:
// the budget's own line).
func compileBudget(c Config, fail func(line int, format string, args ...any)) *Budget {
	b := &Budget{name: c.Name, line: c.Line, loc: time.UTC, match: map[string]string{}}
	for _, u := range c.keys.Unknown {
		fail(u.Line, "unknown field %q%s", u.Path, u.Hint())
	}
	if c.Name != "" && !nameRE.MatchString(c.Name) {
		fail(c.keyLine("name"), "name may only hold letters, digits, '.', '_' and '-' (and start with a letter or digit)")
	}
	for _, k := range slices.Sorted(maps.Keys(c.Match)) {
		switch v := c.Match[k]; {
		case k == "":
			fail(c.keyLine("match"), "match has an empty key")
		case v == "":
			fail(c.keyLine("match."+k), "match value of %q is empty (use \"*\" for a counter per value, or leave the key out for one shared pool)", k)
		default:
			b.match[k] = v
			b.keys = append(b.keys, k)
		}
	}

	compilePeriod(b, c, fail)
	b.soft, b.hasSoft = compileCap(c.SoftUSD, "soft_usd", fail)
	b.hard, b.hasHard = compileCap(c.HardUSD, "hard_usd", fail)
	if !c.SoftUSD.Set && !c.HardUSD.Set {
		fail(0, "needs hard_usd (or soft_usd for a budget that only downgrades)")
	}
	if b.hasSoft && b.hasHard && b.soft > b.hard {
		fail(c.SoftUSD.Line, "soft_usd %s is above hard_usd %s", b.soft.Fixed(2), b.hard.Fixed(2))
	}
	if len(c.OnSoft.Downgrade) > 0 {
		if !c.SoftUSD.Set {
			fail(c.keyLine("on_soft.downgrade"), "on_soft.downgrade needs soft_usd")
		}
		b.downgrade = map[string]string{}
		for _, from := range slices.Sorted(maps.Keys(c.OnSoft.Downgrade)) {
			switch to := c.OnSoft.Downgrade[from]; {
			case from == "" || to == "":
				fail(c.keyLine("on_soft.downgrade."+from), "on_soft.downgrade has an empty model name")
			case from == to:
				fail(c.keyLine("on_soft.downgrade."+from), "on_soft.downgrade maps %q to itself", from)
			default:
				b.downgrade[from] = to
			}
		}
	}
	if len(c.OnHard.AllowModels) > 0 {
		if !c.HardUSD.Set {
			fail(c.keyLine("on_hard.allow_models"), "on_hard.allow_models needs hard_usd")
		}
		for _, m := range c.OnHard.AllowModels {
			if m == "" {
				fail(c.keyLine("on_hard.allow_models"), "on_hard.allow_models has an empty model name")
			} else if !slices.Contains(b.allow, m) {
				b.allow = append(b.allow, m)
			}
		}
	}
	if c.OnHard.LowerOutputLimit {
		if !c.HardUSD.Set {
			fail(c.keyLine("on_hard.lower_output_limit"), "on_hard.lower_output_limit needs hard_usd")
		}
		b.lower = true
	}
	b.alerts = compileThresholds(c, b.hasHard, b.hard, fail)
	b.keyPrefix = escape(b.name) + "|" + periodKey(b) + "|"
	return b
}

func compilePeriod(b *Budget, c Config, fail func(line int, format string, args ...any)) {
	if c.Timezone != "" {
		loc, err := time.LoadLocation(c.Timezone)
		if err != nil || c.Timezone == "Local" {
			fail(c.keyLine("timezone"), "unknown timezone %q (use an IANA name such as Europe/Berlin)", c.Timezone)
		} else {
			b.loc = loc
		}
	}
	switch {
	case c.Period != "" && c.Rolling.Set:
		fail(c.keyLine("rolling"), "has both period and rolling; choose one")
	case c.Rolling.Set:
		b.period = PeriodRolling
		switch d := c.Rolling.Value; {
		case c.Rolling.err != nil:
			fail(c.Rolling.Line, "rolling: %v", c.Rolling.err)
		case d < time.Second || d%time.Second != 0:
			fail(c.Rolling.Line, "rolling must be a whole number of seconds, at least 1s, not %v", d)
		default:
			b.rolling = newRolling(d)
		}
	case c.Period == "":
		fail(0, "needs a period (hour, day, week, month or total) or a rolling window")
	default:
		p, ok := periodNames[c.Period]
		if !ok {
			fail(c.keyLine("period"), "unknown period %q (use hour, day, week, month or total)", c.Period)
		}
		b.period = p
	}
}

func compileCap(u USD, field string, fail func(line int, format string, args ...any)) (money.Nano, bool) {
	if !u.Set {
		return 0, false
	}
	if u.err != nil {
		fail(u.Line, "%s: %v", field, u.err)
		return 0, false
	}
	if u.Value < 0 {
		fail(u.Line, "%s must not be negative", field)
		return 0, false
	}
	return u.Value, true
}

// periodKey names the period kind in counter keys, so that changing a
// budget's period starts new counters instead of carrying spend over.
func periodKey(b *Budget) string {
	if b.period == PeriodRolling {
		return fmt.Sprintf("rolling%ds", int64(b.rolling.span/time.Second))
	}
	return b.period.String()
}

// compileEstimate validates limits.streams.estimate: a key left out (or a
// zero in a Limits built in code) takes its default; a key written must
// be in range: quantile in (0, 1], window 1..estimate.MaxWindow,
// min_samples 1..window.
func compileEstimate(se StreamEstimate, fail func(line int, format string, args ...any)) estimate.Config {
	const at = "limits.streams.estimate."
	for _, u := range se.keys.Unknown {
		fail(u.Line, "%s%s: unknown key%s", at, u.Path, u.Hint())
	}
	set := func(key string, zero bool) bool { return se.keys.Lines[key] != 0 || !zero }
	line := func(key string) int { return se.keys.Line(key) }
	c := estimate.DefaultConfig()
	if set("quantile", se.Quantile == 0) {
		if !(se.Quantile > 0 && se.Quantile <= 1) {
			fail(line("quantile"), "%squantile must be above 0 and at most 1 (0.95 is the 95th percentile), not %v", at, se.Quantile)
		}
		c.Quantile = se.Quantile
	}
	windowOK := true
	if set("window", se.Window == 0) {
		if se.Window < 1 || se.Window > estimate.MaxWindow {
			fail(line("window"), "%swindow must be 1..%d completions, not %d", at, estimate.MaxWindow, se.Window)
			windowOK = false
		}
		c.Window = se.Window
	}
	if set("min_samples", se.MinSamples == 0) {
		c.MinSamples = se.MinSamples
	}
	switch {
	case c.MinSamples < 1:
		fail(line("min_samples"), "%smin_samples must be at least 1, not %d", at, c.MinSamples)
	case windowOK && c.MinSamples > c.Window:
		l := line("min_samples")
		if l == 0 {
			l = line("window")
		}
		fail(l, "%smin_samples (%d) must be at most window (%d): the window never holds more", at, c.MinSamples, c.Window)
	}
	return c
}
