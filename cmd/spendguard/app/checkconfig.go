package app

import (
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
)

// checkConfig parses and validates a file, with ${VAR}s from the
// environment. It prints what the file resolves to (dimensions, budgets
// with the scopes they apply to, periods, caps and downgrades, limits), or
// returns every problem, one per line with its line number.
func checkConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: spendguard check-config FILE")
		return errUsage
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		var ps config.Problems
		if errors.As(err, &ps) {
			lines := make([]string, len(ps))
			for i, p := range ps {
				lines[i] = "  " + p.String()
			}
			return fmt.Errorf("%s: %d problem(s):\n%s", args[0], len(ps), strings.Join(lines, "\n"))
		}
		return err
	}
	fmt.Fprintf(stdout, "%s is valid.\n", args[0])
	printDimensions(stdout, cfg.File.Identity)
	printRoutes(stdout, cfg.Snapshot.Pricing)
	printBudgets(stdout, cfg)
	p := cfg.Snapshot.Budgets
	fmt.Fprintln(stdout, "\nLimits:")
	if maxReq, ok := p.MaxRequest(); ok {
		fmt.Fprintf(stdout, "  max_request_usd: %s USD (a request whose worst case costs more gets 402)\n", usd(maxReq))
	} else {
		fmt.Fprintln(stdout, "  max_request_usd: none")
	}
	fmt.Fprintf(stdout, "  reservation_ttl: %v\n", p.ReservationTTL())
	fmt.Fprintf(stdout, "  background_ttl: %v (a background response with no result by then is charged its reservation)\n", p.BackgroundTTL())
	if p.StreamsGrow() {
		fmt.Fprintln(stdout, "  streams.grow: true (a stream reserves its learned estimate, grows while it streams, and is ended at the cap when Envoy sends its body FULL_DUPLEX_STREAMED)")
	} else {
		fmt.Fprintln(stdout, "  streams.grow: false (a stream reserves its whole output limit, written into its body when it states none)")
	}
	est := p.StreamEstimate()
	fmt.Fprintf(stdout, "  streams.estimate: p%s of the last %d completions per model and endpoint, once %d are known\n",
		strconv.FormatFloat(est.Quantile*100, 'g', 6, 64), est.Window, est.MinSamples)
	return nil
}

// printDimensions lists each dimension's sources and says who can choose
// its value: "clients can choose tenant when they send no key" for a
// dimension whose client-controlled source after an authenticated one opts
// in, and a warning for such a source that does not (it is read only when
// a valid credential lacks the dimension).
func printDimensions(w io.Writer, c identity.Config) {
	fmt.Fprintln(w, "\nDimensions (the first source with a value wins; model is built in):")
	for _, name := range slices.Sorted(maps.Keys(c.Dimensions)) {
		var srcs []string
		for _, s := range c.Dimensions[name] {
			switch {
			case s.Kind == identity.KindDefault:
				srcs = append(srcs, fmt.Sprintf("default %q", s.Arg))
			case s.WithoutCredential:
				srcs = append(srcs, s.Kind+" "+s.Arg+" (without_credential)")
			default:
				srcs = append(srcs, s.Kind+" "+s.Arg)
			}
		}
		fmt.Fprintf(w, "  %-10s %s\n", name, strings.Join(srcs, ", "))
		optedIn, skipped := c.Dimensions[name].ClientChoice()
		if len(optedIn) > 0 {
			fmt.Fprintf(w, "  %-10s clients can choose %s when they send no key\n", "", name)
		}
		for _, s := range skipped {
			fmt.Fprintf(w, "  %-10s warning: %s %s (line %d) is not read for requests without a key or token: it follows an api_key or jwt_claim source and does not set without_credential: true\n", "", s.Kind, s.Arg, s.Line)
		}
	}
	if len(c.APIKeys) > 0 {
		fmt.Fprintf(w, "  (%d API key(s) in identity.api_keys)\n", len(c.APIKeys))
	}
}

// printRoutes lists the paths a POST is metered on, with their kind, and
// the free ones; "(configured)" marks what the file added or changed.
func printRoutes(w io.Writer, t *pricing.Table) {
	fmt.Fprintln(w, "\nRoutes (POST; every other method passes free, and a POST to any other path is refused with 403):")
	var free []string
	for _, e := range t.Router().Entries() {
		mark := ""
		if e.Configured {
			mark = " (configured)"
		}
		if e.Free {
			free = append(free, e.Path+mark)
			continue
		}
		fmt.Fprintf(w, "  %-26s metered as %s%s\n", e.Path, pricing.KindName(e.Endpoint), mark)
	}
	fmt.Fprintf(w, "  free: %s\n", strings.Join(free, ", "))
	fmt.Fprintf(w, "  audio without a readable length is reserved as %d s (pricing.audio.max_seconds)\n", t.AudioMaxSeconds())
}

func printBudgets(w io.Writer, cfg *config.Compiled) {
	p := cfg.Snapshot.Budgets
	all := p.Budgets()
	fmt.Fprintf(w, "\nBudgets (%d; every budget whose scope a request falls in applies):\n", len(all))
	for i, b := range all {
		fmt.Fprintf(w, "  %s (line %d)\n", b.Name(), b.Line())
		fmt.Fprintf(w, "    applies to: %s\n", describeScope(b.Match()))
		for _, r := range replacements(p, b) {
			fmt.Fprintf(w, "                except %s\n", r)
		}
		fmt.Fprintf(w, "    period:     %s\n", describePeriod(b))
		if soft, ok := b.Soft(); ok {
			fmt.Fprintf(w, "    soft cap:   %s USD\n", usd(soft))
			downgrade := cfg.File.Budgets[i].OnSoft.Downgrade
			for _, from := range slices.Sorted(maps.Keys(downgrade)) {
				fmt.Fprintf(w, "      past it:  %s is served as %s\n", from, downgrade[from])
			}
		}
		if hard, ok := b.Hard(); ok {
			fmt.Fprintf(w, "    hard cap:   %s USD\n", usd(hard))
		}
		if models := b.AllowModels(); len(models) > 0 {
			fmt.Fprintf(w, "      past it:  still serves %s\n", strings.Join(models, ", "))
		}
		if b.LowersOutputLimit() {
			fmt.Fprintf(w, "      at it:    lowers a request's output limit to what it can pay instead of 402\n")
		}
		if ts := b.Thresholds(); len(ts) > 0 {
			pcts := make([]string, len(ts))
			for i, f := range ts {
				pcts[i] = strconv.FormatFloat(math.Round(f*1e6)/1e4, 'f', -1, 64) + "%"
			}
			fmt.Fprintf(w, "    alerts at:  %s of the hard cap (threshold_crossed)\n", strings.Join(pcts, ", "))
		}
	}
}

// describeScope says in words which requests share a counter.
func describeScope(match map[string]string) string {
	if len(match) == 0 {
		return "all traffic (one shared pool)"
	}
	var exact, each []string
	for _, k := range slices.Sorted(maps.Keys(match)) {
		if v := match[k]; v == "*" {
			each = append(each, k)
		} else {
			exact = append(exact, k+"="+v)
		}
	}
	parts := exact
	if len(each) > 0 {
		parts = append(parts, "one counter per "+strings.Join(each, " and "))
	}
	return strings.Join(parts, ", ")
}

// replacements lists where a more exact budget replaces b (the precedence
// rule of budget.Policies.Applicable), found by asking Applicable itself.
func replacements(p *budget.Policies, b *budget.Budget) []string {
	const anyValue = "\x00any"
	var out []string
	for _, o := range p.Budgets() {
		if o == b || !slices.Equal(o.Keys(), b.Keys()) {
			continue
		}
		dims := o.Match()
		var where []string
		for _, k := range o.Keys() {
			if dims[k] == "*" {
				dims[k] = anyValue
			} else {
				where = append(where, k+"="+dims[k])
			}
		}
		if !matchesAll(b, dims) {
			continue
		}
		in := map[*budget.Budget]bool{}
		for _, s := range p.Applicable(dims) {
			in[s.Budget] = true
		}
		if in[o] && !in[b] {
			out = append(out, fmt.Sprintf("%s: %s applies instead", strings.Join(where, ", "), o.Name()))
		}
	}
	return out
}

func matchesAll(b *budget.Budget, dims map[string]string) bool {
	for k, v := range b.Match() {
		if v != "*" && v != dims[k] {
			return false
		}
	}
	return true
}

func describePeriod(b *budget.Budget) string {
	if r := b.Rolling(); r > 0 {
		return "rolling window of " + r.String()
	}
	if b.Period() == budget.PeriodTotal {
		return "total (never resets)"
	}
	return b.Period().String() + " (calendar, in " + b.Location().String() + ")"
}

// usd prints an amount exactly, with at least two decimals.
func usd(n money.Nano) string {
	s := strings.TrimRight(n.Fixed(9), "0")
	if i := strings.IndexByte(s, '.'); i >= 0 && len(s)-i-1 < 2 {
		s += strings.Repeat("0", 2-(len(s)-i-1))
	}
	return s
}
