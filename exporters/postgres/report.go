package postgres

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/spendguard/spendguard/internal/money"
)

// Built-in group-by keys besides the scope's dimensions.
var builtinGroups = map[string]string{
	"model":           "served_model",
	"requested_model": "requested_model",
	"endpoint":        "endpoint",
	"decision":        "decision",
	"budget":          "budget",
}

// Periods a report can be cut into.
var reportPeriods = []string{"hour", "day", "week", "month", "total"}

// SpendQuery selects and groups ledger rows.
type SpendQuery struct {
	// GroupBy are scope dimensions (tenant, team, use_case, ...) or the
	// built-ins model (the served model), requested_model, endpoint,
	// decision, budget; at most 8, each once.
	GroupBy []string
	// Period is hour, day, week (from Monday), month or total; calendar
	// periods are cut in Location.
	Period   string
	Location *time.Location // nil is UTC
	// From and To select the requests that started in [From, To).
	From, To time.Time
}

// Validate returns every problem of q.
func (q SpendQuery) Validate() error {
	var errs []error
	if !slices.Contains(reportPeriods, q.Period) {
		errs = append(errs, fmt.Errorf("period %q is not one of %s", q.Period, strings.Join(reportPeriods, ", ")))
	}
	if len(q.GroupBy) > 8 {
		errs = append(errs, fmt.Errorf("group by at most 8 keys (got %d)", len(q.GroupBy)))
	}
	for i, g := range q.GroupBy {
		switch {
		case g == "":
			errs = append(errs, errors.New("group by: empty key"))
		case slices.Contains(q.GroupBy[:i], g):
			errs = append(errs, fmt.Errorf("group by: %q twice", g))
		}
	}
	if !q.From.Before(q.To) {
		errs = append(errs, fmt.Errorf("from %s is not before to %s", q.From.Format(time.RFC3339), q.To.Format(time.RFC3339)))
	}
	return errors.Join(errs...)
}

// SpendRow is one period and group of a spend report.
type SpendRow struct {
	// Period is the start of the period in the query's Location (zero
	// for total).
	Period time.Time
	// Groups holds the value of each GroupBy key ("" when a request had
	// none).
	Groups []string
	// Requests were forwarded upstream (allowed, downgraded, unmetered);
	// Rejected were answered by spendguard itself.
	Requests, Rejected int64
	PromptTokens       int64
	CachedPromptTokens int64
	CompletionTokens   int64
	// Cost is what was charged against budgets (allowed and downgraded);
	// Unmetered is what unmetered requests would have cost.
	Cost, Unmetered money.Nano
	// Estimated counts requests whose tokens spendguard estimated.
	Estimated int64
}

// Spend aggregates the ledger as q asks, ordered by period then groups.
func (l *Ledger) Spend(ctx context.Context, q SpendQuery) ([]SpendRow, error) {
	if err := q.Validate(); err != nil {
		return nil, err
	}
	loc := q.Location
	if loc == nil {
		loc = time.UTC
	}
	args := []any{q.From, q.To}
	cols := []string{"NULL::timestamptz"}
	if q.Period != "total" {
		args = append(args, loc.String())
		cols[0] = "date_trunc('" + q.Period + "', start_time, $3)" // Period is one of reportPeriods
	}
	for _, g := range q.GroupBy {
		if c, ok := builtinGroups[g]; ok {
			cols = append(cols, c)
			continue
		}
		args = append(args, g)
		cols = append(cols, "coalesce(scope->>$"+strconv.Itoa(len(args))+", '')")
	}
	groupBy := make([]string, len(cols))
	for i := range cols {
		groupBy[i] = strconv.Itoa(i + 1)
	}
	sql := "SELECT " + strings.Join(cols, ", ") + `,
		count(*) FILTER (WHERE decision <> 'rejected'),
		count(*) FILTER (WHERE decision = 'rejected'),
		least(coalesce(sum(prompt_tokens), 0), 9223372036854775807)::bigint,
		least(coalesce(sum(cached_prompt_tokens), 0), 9223372036854775807)::bigint,
		least(coalesce(sum(completion_tokens), 0), 9223372036854775807)::bigint,
		least(coalesce(sum(cost_nano_usd) FILTER (WHERE decision IN ('allowed', 'downgraded')), 0), 9223372036854775807)::bigint,
		least(coalesce(sum(cost_nano_usd) FILTER (WHERE decision = 'unmetered'), 0), 9223372036854775807)::bigint,
		count(*) FILTER (WHERE estimated)
		FROM spendguard_ledger
		WHERE start_time >= $1 AND start_time < $2
		GROUP BY ` + strings.Join(groupBy, ", ") + " ORDER BY " + strings.Join(groupBy, ", ")
	rows, err := l.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, queryError(err)
	}
	var out []SpendRow
	for rows.Next() {
		var (
			r      SpendRow
			period *time.Time
			cost   int64
			unmet  int64
		)
		r.Groups = make([]string, len(q.GroupBy))
		dest := []any{&period}
		for i := range r.Groups {
			dest = append(dest, &r.Groups[i])
		}
		dest = append(dest, &r.Requests, &r.Rejected, &r.PromptTokens, &r.CachedPromptTokens,
			&r.CompletionTokens, &cost, &unmet, &r.Estimated)
		if err := rows.Scan(dest...); err != nil {
			rows.Close()
			return nil, queryError(err)
		}
		if period != nil {
			r.Period = period.In(loc)
		}
		r.Cost, r.Unmetered = money.Nano(cost), money.Nano(unmet)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, queryError(err)
	}
	return out, nil
}

// DriftRow is the reconciliation of one upstream and model over a time
// range: vLLM's counted tokens against the ledger's recorded ones.
type DriftRow struct {
	Upstream, Model    string
	Start, End         time.Time // first window's start, last window's end
	Windows            int64
	UpstreamPrompt     int64
	UpstreamGeneration int64
	RecordedPrompt     int64
	RecordedGeneration int64
}

// PromptDrift is vLLM's prompt tokens minus the recorded ones: positive
// when vLLM served tokens spendguard did not see (traffic around
// Envoy, usage it failed to read).
func (d DriftRow) PromptDrift() int64 { return d.UpstreamPrompt - d.RecordedPrompt }

// GenerationDrift is the same for generated tokens.
func (d DriftRow) GenerationDrift() int64 { return d.UpstreamGeneration - d.RecordedGeneration }

// Drift sums the reconciliation windows that ended in (from, to].
func (l *Ledger) Drift(ctx context.Context, from, to time.Time) ([]DriftRow, error) {
	rows, err := l.pool.Query(ctx, `
		SELECT upstream, model, min(window_start), max(window_end), count(*),
		       least(sum(upstream_prompt_tokens), 9223372036854775807)::bigint, least(sum(upstream_generation_tokens), 9223372036854775807)::bigint,
		       least(sum(recorded_prompt_tokens), 9223372036854775807)::bigint, least(sum(recorded_generation_tokens), 9223372036854775807)::bigint
		FROM spendguard_reconciliation
		WHERE window_end > $1 AND window_end <= $2
		GROUP BY 1, 2 ORDER BY 1, 2`, from, to)
	if err != nil {
		return nil, queryError(err)
	}
	var d DriftRow
	out := []DriftRow{}
	_, err = pgx.ForEachRow(rows, []any{&d.Upstream, &d.Model, &d.Start, &d.End, &d.Windows,
		&d.UpstreamPrompt, &d.UpstreamGeneration, &d.RecordedPrompt, &d.RecordedGeneration}, func() error {
		out = append(out, d)
		return nil
	})
	if err != nil {
		return nil, queryError(err)
	}
	return out, nil
}

// ErrNoLedger: the database has no ledger tables (spendguard never
// started with exporters.postgres against it).
var ErrNoLedger = errors.New("the database has no spendguard ledger yet: start spendguard with exporters.postgres pointing at it")

func queryError(err error) error {
	var pg *pgconn.PgError
	if errors.As(err, &pg) && pg.Code == "42P01" {
		return ErrNoLedger
	}
	var tz *pgconn.PgError
	if errors.As(err, &tz) && tz.Code == "22023" {
		return fmt.Errorf("ledger query: %s", tz.Message)
	}
	return fmt.Errorf("ledger query: %w", err)
}
