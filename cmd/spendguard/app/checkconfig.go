package app

import (
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/config"
)

// checkConfig parses and validates a file; it prints the resolved budgets,
// or every error.
func checkConfig(args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		fmt.Fprintln(stderr, "usage: spendguard check-config FILE")
		return errUsage
	}
	cfg, err := config.Load(args[0])
	if err != nil {
		return fmt.Errorf("%s is invalid:\n%w", args[0], err)
	}
	fmt.Fprintf(stdout, "%s is valid.\n\nBudgets:\n", args[0])
	for _, b := range cfg.Snapshot.Budgets.Budgets() {
		keys := make([]string, 0, len(b.Match()))
		for k, v := range b.Match() {
			keys = append(keys, k+"="+v)
		}
		sort.Strings(keys)
		scope := "all traffic (one shared pool)"
		if len(keys) > 0 {
			scope = strings.Join(keys, ", ")
		}
		fmt.Fprintf(stdout, "  %s\n    applies to: %s\n    period:     %s\n", b.Name(), scope, describePeriod(b))
		if soft, ok := b.Soft(); ok {
			fmt.Fprintf(stdout, "    soft cap:   %s USD\n", soft.Fixed(2))
		}
		if hard, ok := b.Hard(); ok {
			fmt.Fprintf(stdout, "    hard cap:   %s USD\n", hard.Fixed(2))
		}
		if models := b.AllowModels(); len(models) > 0 {
			fmt.Fprintf(stdout, "    past hard:  still serves %s\n", strings.Join(models, ", "))
		}
	}
	return nil
}

func describePeriod(b *budget.Budget) string {
	if r := b.Rolling(); r > 0 {
		return "rolling " + r.String()
	}
	if b.Period() == budget.PeriodTotal {
		return "total (never resets)"
	}
	return b.Period().String() + " (calendar, " + b.Location().String() + ")"
}
