package loadgen

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"time"

	"github.com/spendguard/spendguard/test/loadgen/workload"
)

// Print writes the tables of r: one row per processor and scenario, then
// spendguard over the no-op (with the ledger, its rows against the
// requests served); then the memory of an in-flight stream.
//
// "CPU-bound" is (load generator + no-op CPU) / (load generator +
// spendguard CPU) per lifecycle: the throughput ratio this run would show
// if it had the cores to itself. On a shared machine the measured ratio
// also carries the neighbours' noise: "by round" shows it, and the median
// of the rounds is the figure least moved by one spoilt round.
func (r *Report) Print(w io.Writer) error {
	var errs []error
	p := func(format string, args ...any) {
		if _, err := fmt.Fprintf(w, format, args...); err != nil {
			errs = append(errs, err)
		}
	}
	o := r.Opts
	p("%d rounds of %s per processor and scenario, %d lifecycles in flight\n\n", o.Rounds, o.Duration, Load{Concurrency: o.Concurrency}.withDefaults().Concurrency)
	p("%-28s %-10s %12s %9s %9s %9s %9s %9s %11s %6s %7s\n",
		"scenario", "processor", "lifecycles/s", "p50", "p99", "CPU/lc", "lg CPU/lc", "allocs/lc", "redis RT/lc", "errors", "charged")
	for _, row := range r.Rows {
		name := fmt.Sprintf("%s, %s", row.Kind, row.Store)
		for _, x := range []struct {
			label string
			m     Measurement
		}{{"no-op", row.Noop}, {"spendguard", row.Spendguard}} {
			calls, charged := "-", "-"
			if x.m.StoreCalls >= 0 {
				calls = fmt.Sprintf("%.2f", x.m.Per(float64(x.m.StoreCalls)))
			}
			if x.label == "spendguard" {
				charged = map[bool]string{true: "exact", false: "WRONG"}[x.m.Charged]
			}
			p("%-28s %-10s %12.0f %9s %9s %9s %9s %9.0f %11s %6d %7s\n", name, x.label, x.m.PerSecond(),
				round(x.m.Percentile(0.5)), round(x.m.Percentile(0.99)), perLC(x.m, x.m.CPU), perLC(x.m, x.m.ClientCPU),
				x.m.Per(float64(x.m.Mallocs)), calls, x.m.Errors, charged)
			name = ""
		}
		n, s := row.Noop, row.Spendguard
		p("%-28s %-10s %11.2f× %8.2f× %8.2f× %8.2f× %9s %8.2f×\n", "", "ratio",
			ratio(s.PerSecond(), n.PerSecond()), ratio(float64(s.Percentile(0.5)), float64(n.Percentile(0.5))),
			ratio(float64(s.Percentile(0.99)), float64(n.Percentile(0.99))),
			ratio(s.Per(float64(s.CPU)), n.Per(float64(n.CPU))), "", ratio(s.Per(float64(s.Mallocs)), n.Per(float64(n.Mallocs))))
		p("%-28s %-10s %11.2f×\n", "", "CPU-bound", ratio(n.Per(float64(n.CPU+n.ClientCPU)), s.Per(float64(s.CPU+s.ClientCPU))))
		p("%-28s %-10s", "", "by round")
		for _, r := range row.RoundRatios {
			p(" %.2f×", r)
		}
		p("   (median %.2f×)\n", median(row.RoundRatios))
		if l := row.Ledger; l != nil {
			p("%-28s %-10s %d rows in PostgreSQL for %d requests served (agreed %s after the last)\n", "", "ledger", l.Rows, l.Served, round(l.Drain))
		}
	}
	p("\nmemory per in-flight stream: live heap + goroutine stacks, %d streams held open\n", o.IdleStreams)
	p("%-28s %22s %22s %22s\n", "scenario", "no-op", "spendguard", "spendguard mid-stream")
	for _, row := range r.Rows {
		mid := "-"
		if row.Kind == workload.SSE {
			mid = row.MidStreamMem.String()
		}
		p("%-28s %22s %22s %22s\n", fmt.Sprintf("%s, %s", row.Kind, row.Store), row.NoopMem, row.SpendMem, mid)
	}
	for _, row := range r.Rows {
		for _, m := range []Measurement{row.Noop, row.Spendguard} {
			if m.FirstError != nil {
				p("\n%s, %s: first error: %v\n", row.Kind, row.Store, m.FirstError)
			}
		}
	}
	return errors.Join(errs...)
}

// median of xs (0 for none), robust to a round that a neighbour spoilt.
func median(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(xs))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func perLC(m Measurement, d time.Duration) time.Duration {
	return round(time.Duration(m.Per(float64(d))))
}

func ratio(a, b float64) float64 {
	if b == 0 {
		return 0
	}
	return a / b
}

func round(d time.Duration) time.Duration {
	switch {
	case d >= 10*time.Millisecond:
		return d.Round(100 * time.Microsecond)
	case d >= 10*time.Microsecond:
		return d.Round(100 * time.Nanosecond)
	}
	return d
}
