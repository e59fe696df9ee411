package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"math"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spendguard/spendguard/internal/money"
)

// Fetch reads GET {base}/v1/budgets with the filter (DIM=VALUE each)
// from a running spendguard, with the bearer token when not empty. An
// error answer is returned as an error with the server's message.
func Fetch(ctx context.Context, client *http.Client, base, token string, filter map[string]string) (Response, error) {
	u, err := url.Parse(strings.TrimRight(base, "/") + "/v1/budgets")
	if err != nil {
		return Response{}, fmt.Errorf("admin URL %q: %w", base, err)
	}
	q := url.Values{}
	for k, v := range filter {
		q.Set(k, v)
	}
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u.String(), nil)
	if err != nil {
		return Response{}, err
	}
	req.Header.Set("accept", "application/json")
	if token != "" {
		req.Header.Set("authorization", "Bearer "+token)
	}
	resp, err := client.Do(req)
	if err != nil {
		return Response{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 64<<20))
	if err != nil {
		return Response{}, fmt.Errorf("reading %s: %w", u, err)
	}
	if resp.StatusCode != http.StatusOK {
		var e ErrorBody
		if json.Unmarshal(body, &e) == nil && e.Error.Message != "" {
			return Response{}, fmt.Errorf("%s: %s (%s)", u.Redacted(), e.Error.Message, resp.Status)
		}
		return Response{}, fmt.Errorf("%s: %s", u.Redacted(), resp.Status)
	}
	var out Response
	if err := json.Unmarshal(body, &out); err != nil {
		return Response{}, fmt.Errorf("%s: not a budgets answer: %w", u.Redacted(), err)
	}
	return out, nil
}

// Closeness is how near a scope is to its cap: committed plus reserved
// over the hard cap (the soft cap for a budget without one). A scope
// with spend and no cap at all (a zero cap) counts as +Inf.
func Closeness(s State) float64 {
	used := amount(s.SpentUSD) + amount(s.ReservedUSD)
	c := 0.0
	switch {
	case s.HardUSD != nil:
		c = amount(*s.HardUSD)
	case s.SoftUSD != nil:
		c = amount(*s.SoftUSD)
	}
	if c > 0 {
		return used / c
	}
	if used > 0 {
		return math.Inf(1)
	}
	return 0
}

func amount(n json.Number) float64 {
	v, err := money.ParseUSD(string(n))
	if err != nil {
		return 0
	}
	return float64(v) / float64(money.PerUSD)
}

// SortByCloseness orders states from the closest to its cap to the
// farthest, then by budget and scope.
func SortByCloseness(states []State) {
	slices.SortStableFunc(states, func(a, b State) int {
		ca, cb := Closeness(a), Closeness(b)
		switch {
		case ca > cb:
			return -1
		case ca < cb:
			return 1
		}
		return strings.Compare(a.Budget+" "+ScopeText(a.Scope), b.Budget+" "+ScopeText(b.Scope))
	})
}

// ScopeText is "team=search,tenant=acme" (keys sorted), or "all".
func ScopeText(scope map[string]string) string {
	if len(scope) == 0 {
		return "all"
	}
	keys := slices.Sorted(maps.Keys(scope))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + scope[k]
	}
	return strings.Join(parts, ",")
}

// WriteTable prints resp as a table sorted by closeness to the cap, with
// times relative to now.
func WriteTable(w io.Writer, resp Response, now time.Time) error {
	states := slices.Clone(resp.Budgets)
	SortByCloseness(states)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "BUDGET\tSCOPE\tPERIOD\tSPENT\tRESERVED\tSOFT\tHARD\tUSED\tSTATE\tRESETS IN\tBURN/H\tEXHAUSTS IN")
	for _, s := range states {
		period := s.Period
		if s.WindowSeconds > 0 {
			period += " " + short(time.Duration(s.WindowSeconds)*time.Second)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			s.Budget, ScopeText(s.Scope), period, usdText(&s.SpentUSD), usdText(&s.ReservedUSD),
			usdText(s.SoftUSD), usdText(s.HardUSD), percent(Closeness(s)), s.State,
			until(s.ResetsAt, now, "never"), usdText(s.BurnUSDPerHour), exhausts(s, now))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(states) == 0 {
		fmt.Fprintln(w, "no budget scope matches")
	}
	if resp.Truncated {
		fmt.Fprintln(w, "(the list was truncated: narrow it with DIM=VALUE filters)")
	}
	return nil
}

// usdText prints an amount with 2 decimals from 1 USD up, else 6; "-"
// when absent.
func usdText(n *json.Number) string {
	if n == nil {
		return "-"
	}
	v, err := money.ParseUSD(string(*n))
	if err != nil {
		return string(*n)
	}
	if v >= money.PerUSD || v <= -money.PerUSD || v == 0 {
		return v.Fixed(2)
	}
	return v.Fixed(6)
}

func percent(c float64) string {
	if math.IsInf(c, 1) {
		return "-"
	}
	return fmt.Sprintf("%.1f%%", c*100)
}

func until(t *string, now time.Time, none string) string {
	if t == nil {
		return none
	}
	at, err := time.Parse(time.RFC3339, *t)
	if err != nil {
		return *t
	}
	return short(at.Sub(now))
}

func exhausts(s State, now time.Time) string {
	switch {
	case s.State == "hard":
		return "exhausted"
	case s.ExhaustsAt != nil:
		return until(s.ExhaustsAt, now, "")
	default:
		return "-"
	}
}

// short prints a duration as "3d4h", "2h5m", "4m10s", "12s" or "10m".
func short(d time.Duration) string {
	if d <= 0 {
		return "0s"
	}
	d = d.Round(time.Second)
	units := []struct {
		size time.Duration
		name string
	}{{24 * time.Hour, "d"}, {time.Hour, "h"}, {time.Minute, "m"}, {time.Second, "s"}}
	for i, u := range units[:3] {
		if d >= u.size {
			out := fmt.Sprintf("%d%s", d/u.size, u.name)
			if rest := d % u.size / units[i+1].size; rest > 0 {
				out += fmt.Sprintf("%d%s", rest, units[i+1].name)
			}
			return out
		}
	}
	return fmt.Sprintf("%ds", d/time.Second)
}

// ParseFilter reads DIM=VALUE command-line arguments.
func ParseFilter(args []string) (map[string]string, error) {
	filter := map[string]string{}
	var errs []error
	for _, a := range args {
		k, v, ok := strings.Cut(a, "=")
		switch {
		case !ok || k == "" || v == "":
			errs = append(errs, fmt.Errorf("%q is not DIM=VALUE", a))
		case filter[k] != "" && filter[k] != v:
			errs = append(errs, fmt.Errorf("%s is given twice", k))
		default:
			filter[k] = v
		}
	}
	return filter, errors.Join(errs...)
}
