package app

import (
	"context"
	"encoding/csv"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spendguard/spendguard/exporters/postgres"
	"github.com/spendguard/spendguard/internal/money"
)

// reportTimeout bounds a whole report: connecting and both queries.
const reportTimeout = 5 * time.Minute

// reportOptions are the settings of `spendguard report`.
type reportOptions struct {
	dsn   string
	query postgres.SpendQuery
	csv   bool
	drift bool
}

// reportCommand prints the spend in the ledger, grouped and cut into
// periods, and the reconciliation with vLLM over the same range.
func reportCommand(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o, err := parseReportFlags(args, stderr, time.Now())
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, reportTimeout)
	defer cancel()
	l, err := postgres.Connect(ctx, o.dsn)
	if err != nil {
		return err
	}
	defer l.Close(ctx)
	drift, err := l.Drift(ctx, o.query.From, o.query.To)
	if err != nil {
		return err
	}
	if o.drift {
		return writeDrift(stdout, drift, o.csv)
	}
	rows, err := l.Spend(ctx, o.query)
	if err != nil {
		return err
	}
	if o.csv {
		return writeSpendCSV(stdout, o.query, rows)
	}
	writeSpendText(stdout, o.query, rows)
	fmt.Fprintln(stdout)
	return writeDrift(stdout, drift, false)
}

func parseReportFlags(args []string, stderr io.Writer, now time.Time) (reportOptions, error) {
	fs := flag.NewFlagSet("report", flag.ContinueOnError)
	fs.SetOutput(stderr)
	var o reportOptions
	var groupBy, period, from, to, tz string
	fs.StringVar(&o.dsn, "dsn", os.Getenv("SPENDGUARD_PG_DSN"), "the ledger's PostgreSQL connection string (default $SPENDGUARD_PG_DSN)")
	fs.StringVar(&groupBy, "group-by", "", "comma-separated dimensions (tenant,use_case,...) or model, requested_model, endpoint, decision, budget")
	fs.StringVar(&period, "period", "month", "hour, day, week, month or total")
	fs.StringVar(&from, "from", "", "first instant: YYYY-MM, YYYY-MM-DD (midnight in --tz) or RFC 3339 (default: start of the current period)")
	fs.StringVar(&to, "to", "", "end, excluded, in the same forms (default: now)")
	fs.StringVar(&tz, "tz", "UTC", "IANA time zone that periods and dates are cut in")
	fs.BoolVar(&o.csv, "csv", false, "CSV instead of a table (money exact to the nano-USD)")
	fs.BoolVar(&o.drift, "drift", false, "print only the reconciliation with vLLM")
	if err := fs.Parse(args); err != nil {
		return o, errUsage
	}
	var errs []error
	if fs.NArg() > 0 {
		errs = append(errs, fmt.Errorf("unexpected arguments: %s", strings.Join(fs.Args(), " ")))
	}
	if o.dsn == "" {
		errs = append(errs, errors.New("--dsn is required (or set SPENDGUARD_PG_DSN)"))
	}
	q, err := spendQuery(groupBy, period, from, to, tz, now)
	o.query = q
	if err := errors.Join(append(errs, err)...); err != nil {
		fmt.Fprintln(stderr, err)
		return o, errUsage
	}
	return o, nil
}

// spendQuery builds and validates a ledger query from the report's (or
// /v1/spend's) text arguments: from defaults to the start of the current
// period in tz (the beginning of time for total), to to now.
func spendQuery(groupBy, period, from, to, tz string, now time.Time) (postgres.SpendQuery, error) {
	var errs []error
	q := postgres.SpendQuery{Period: period, Location: time.UTC}
	if tz != "" {
		loc, err := time.LoadLocation(tz)
		if err != nil || tz == "Local" {
			errs = append(errs, fmt.Errorf("tz: %q is not an IANA time zone", tz))
		} else {
			q.Location = loc
		}
	}
	for g := range strings.SplitSeq(groupBy, ",") {
		if g = strings.TrimSpace(g); g != "" {
			q.GroupBy = append(q.GroupBy, g)
		}
	}
	var err error
	q.To = now
	if to != "" {
		if q.To, err = parseInstant(to, q.Location); err != nil {
			errs = append(errs, fmt.Errorf("to: %w", err))
		}
	}
	q.From = periodStart(period, now.In(q.Location))
	if from != "" {
		if q.From, err = parseInstant(from, q.Location); err != nil {
			errs = append(errs, fmt.Errorf("from: %w", err))
		}
	}
	if len(errs) == 0 {
		errs = append(errs, q.Validate())
	}
	return q, errors.Join(errs...)
}

// parseInstant reads YYYY-MM, YYYY-MM-DD (midnight in loc) or RFC 3339.
func parseInstant(s string, loc *time.Location) (time.Time, error) {
	for _, layout := range []string{"2006-01", time.DateOnly} {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither YYYY-MM, YYYY-MM-DD nor RFC 3339", s)
	}
	return t, nil
}

// periodStart is the start of the period of kind containing t (in t's
// location); the Unix epoch for total or an unknown kind.
func periodStart(kind string, t time.Time) time.Time {
	y, m, d := t.Date()
	loc := t.Location()
	switch kind {
	case "hour":
		return time.Date(y, m, d, t.Hour(), 0, 0, 0, loc)
	case "day":
		return time.Date(y, m, d, 0, 0, 0, 0, loc)
	case "week":
		return time.Date(y, m, d-(int(t.Weekday())+6)%7, 0, 0, 0, 0, loc)
	case "month":
		return time.Date(y, m, 1, 0, 0, 0, 0, loc)
	}
	return time.Unix(0, 0).UTC()
}

// periodLabel names a period for people: 2026-11, 2026-11-25,
// 2026-11-25T10:00, or "total".
func periodLabel(kind string, start time.Time) string {
	switch kind {
	case "hour":
		return start.Format("2006-01-02T15:04")
	case "day", "week":
		return start.Format(time.DateOnly)
	case "month":
		return start.Format("2006-01")
	}
	return "total"
}

func writeSpendText(w io.Writer, q postgres.SpendQuery, rows []postgres.SpendRow) {
	by := "nothing"
	if len(q.GroupBy) > 0 {
		by = strings.Join(q.GroupBy, ", ")
	}
	fmt.Fprintf(w, "spend from %s to %s, by %s in %s, grouped by %s\n\n",
		q.From.In(q.Location).Format(time.RFC3339), q.To.In(q.Location).Format(time.RFC3339), q.Period, q.Location, by)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	head := append([]string{"PERIOD"}, upperAll(q.GroupBy)...)
	fmt.Fprintln(tw, strings.Join(append(head, "REQUESTS", "REJECTED", "PROMPT_TOKENS", "COMPLETION_TOKENS", "COST_USD", "UNMETERED_USD", "ESTIMATED"), "\t"))
	var total postgres.SpendRow
	for _, r := range rows {
		cells := append([]string{periodLabel(q.Period, r.Period)}, r.Groups...)
		fmt.Fprintln(tw, strings.Join(append(cells, spendCells(r, money.Nano.USD)...), "\t"))
		total.Requests += r.Requests
		total.Rejected += r.Rejected
		total.PromptTokens += r.PromptTokens
		total.CompletionTokens += r.CompletionTokens
		total.Cost = money.Add(total.Cost, r.Cost)
		total.Unmetered = money.Add(total.Unmetered, r.Unmetered)
		total.Estimated += r.Estimated
	}
	cells := append([]string{"TOTAL"}, make([]string, len(q.GroupBy))...)
	fmt.Fprintln(tw, strings.Join(append(cells, spendCells(total, money.Nano.USD)...), "\t"))
	tw.Flush()
}

func spendCells(r postgres.SpendRow, usd func(money.Nano) string) []string {
	return []string{fmtInt(r.Requests), fmtInt(r.Rejected), fmtInt(r.PromptTokens), fmtInt(r.CompletionTokens),
		usd(r.Cost), usd(r.Unmetered), fmtInt(r.Estimated)}
}

func writeSpendCSV(w io.Writer, q postgres.SpendQuery, rows []postgres.SpendRow) error {
	cw := csv.NewWriter(w)
	head := append([]string{"period_start"}, q.GroupBy...)
	_ = cw.Write(append(head, "requests", "rejected", "prompt_tokens", "completion_tokens", "cost_usd", "unmetered_usd", "estimated",
		"cached_prompt_tokens", "cost_nano_usd", "unmetered_nano_usd"))
	exact := func(n money.Nano) string { return n.Fixed(9) }
	for _, r := range rows {
		start := "total"
		if !r.Period.IsZero() {
			start = r.Period.Format(time.RFC3339)
		}
		rec := append(append([]string{start}, r.Groups...), spendCells(r, exact)...)
		_ = cw.Write(append(rec, fmtInt(r.CachedPromptTokens), fmtInt(int64(r.Cost)), fmtInt(int64(r.Unmetered))))
	}
	cw.Flush()
	return cw.Error()
}

// writeDrift prints the reconciliation with vLLM: tokens vLLM counted,
// tokens the ledger recorded, and the difference, per upstream and model.
func writeDrift(w io.Writer, rows []postgres.DriftRow, asCSV bool) error {
	head := []string{"upstream", "model", "window_start", "window_end", "windows",
		"upstream_prompt_tokens", "recorded_prompt_tokens", "prompt_drift_tokens",
		"upstream_generation_tokens", "recorded_generation_tokens", "generation_drift_tokens"}
	cells := func(d postgres.DriftRow) []string {
		return []string{d.Upstream, d.Model, d.Start.UTC().Format(time.RFC3339), d.End.UTC().Format(time.RFC3339), fmtInt(d.Windows),
			fmtInt(d.UpstreamPrompt), fmtInt(d.RecordedPrompt), fmtInt(d.PromptDrift()),
			fmtInt(d.UpstreamGeneration), fmtInt(d.RecordedGeneration), fmtInt(d.GenerationDrift())}
	}
	if asCSV {
		cw := csv.NewWriter(w)
		_ = cw.Write(head)
		for _, d := range rows {
			_ = cw.Write(cells(d))
		}
		cw.Flush()
		return cw.Error()
	}
	if len(rows) == 0 {
		fmt.Fprintln(w, "reconciliation with vLLM: no windows in this range (is exporters.postgres.reconcile on?)")
		return nil
	}
	fmt.Fprintln(w, "reconciliation with vLLM (drift = tokens vLLM counted - tokens spendguard recorded)")
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(upperAll(head), "\t"))
	for _, d := range rows {
		fmt.Fprintln(tw, strings.Join(cells(d), "\t"))
	}
	return tw.Flush()
}

func upperAll(s []string) []string {
	out := make([]string, len(s))
	for i, v := range s {
		out[i] = strings.ToUpper(v)
	}
	return out
}

func fmtInt(n int64) string { return strconv.FormatInt(n, 10) }
