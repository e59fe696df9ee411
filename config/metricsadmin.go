package config

import (
	"time"

	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/metrics"
)

// Bounds of metrics.budget_gauges.
const (
	minGaugeInterval = time.Second
	maxGaugeInterval = time.Hour
	maxGaugeScopes   = budget.DefaultListKeys
)

// checkMetrics validates the metrics: section, the whole of what serve
// does with it: each label dimension is a configured dimension (dims, nil
// when identity.dimensions is not a mapping) and a valid, unreserved
// Prometheus label (metrics.CheckLabelDimension, the check metrics.New
// runs); the gauge refresh bounds are in range; require_token has a
// token to require (checked when the admin section decoded, adminOK).
func checkMetrics(f *File, root *yaml.Node, dims map[string]bool, adminOK bool, ps *problems) {
	section := valueOf(root, "metrics")
	seq := valueOf(section, "label_dimensions")
	for i, d := range f.Metrics.LabelDimensions {
		if err := metrics.CheckLabelDimension(f.Metrics.LabelDimensions, i); err != nil {
			ps.add(itemLine(seq, i), "metrics.label_dimensions[%d]: %v", i, err)
		} else if dims != nil && !dims[d] {
			ps.add(itemLine(seq, i), "metrics.label_dimensions[%d]: %q is not a configured dimension", i, d)
		}
	}
	g := f.Metrics.BudgetGauges
	gaugeLine := func(key string) int { return lineOf(root, "metrics", "budget_gauges", key) }
	if d := g.RefreshInterval; d != 0 && (d < minGaugeInterval || d > maxGaugeInterval) {
		ps.add(gaugeLine("refresh_interval"), "metrics.budget_gauges.refresh_interval: must be between %s and %s (got %s)", minGaugeInterval, maxGaugeInterval, d)
	}
	interval := g.Options().Interval
	switch d := g.RefreshTimeout; {
	case d < 0:
		ps.add(gaugeLine("refresh_timeout"), "metrics.budget_gauges.refresh_timeout: must not be negative (got %s)", d)
	case d > interval:
		ps.add(gaugeLine("refresh_timeout"), "metrics.budget_gauges.refresh_timeout: %s is longer than refresh_interval %s (one refresh runs at a time)", d, interval)
	}
	if n := g.MaxScopes; n < 0 || n > maxGaugeScopes {
		ps.add(gaugeLine("max_scopes"), "metrics.budget_gauges.max_scopes: must be between 1 and %d (got %d)", maxGaugeScopes, n)
	}
	if adminOK && f.Metrics.RequireToken && f.Admin.Token == "" && f.Admin.ReadToken == "" {
		ps.add(lineOf(root, "metrics", "require_token"), "metrics.require_token: neither admin.token nor admin.read_token is set, so there is no token to require")
	}
}

// checkAdmin validates the admin: section: the read-only token is not
// the admin token (its holders could then change everything). A read
// token without an admin token is fine: the API can then only be read.
// The values are never part of a message.
func checkAdmin(f *File, root *yaml.Node, ps *problems) {
	if a := f.Admin; a.ReadToken != "" && a.ReadToken == a.Token {
		ps.add(lineOf(root, "admin", "read_token"), "admin.read_token: equal to admin.token, so its holders could change everything; give it a value of its own (or remove it)")
	}
}
