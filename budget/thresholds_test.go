package budget

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/money"
)

// TestCompileThresholds: fractions and percentages mean the same, come
// out sorted, and the compiled slice is the budget's own (no copy).
func TestCompileThresholds(t *testing.T) {
	p, err := compileYAML(t, `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    hard_usd: 10
    alerts:
      thresholds: [0.95, 50%, 0.8, "99.5%", 1]
  - name: quiet
    period: day
    hard_usd: 1
`)
	require.NoError(t, err)
	b, _ := p.Budget("tenant-monthly")
	assert.Equal(t, []float64{0.5, 0.8, 0.95, 0.995, 1}, b.Thresholds())
	assert.Same(t, &b.Thresholds()[0], &b.Thresholds()[0], "shared, not copied")
	q, _ := p.Budget("quiet")
	assert.Nil(t, q.Thresholds())

	p, err = Compile([]Config{{Name: "a", Period: "day", HardUSD: USDOf(money.PerUSD),
		Alerts: Alerts{Thresholds: []Threshold{ThresholdOf(0.8), ThresholdOf(0.5)}}}}, Limits{})
	require.NoError(t, err)
	assert.Equal(t, []float64{0.5, 0.8}, p.Budgets()[0].Thresholds(), "built in code")
}

func TestCompileThresholdErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"above one", `
budgets:
  - name: a
    period: day
    hard_usd: 1
    alerts: {thresholds: [0.5, 1.2]}`, []string{`line 6: budget "a": alerts.thresholds: 1.2 is not above 0 and at most 1 (100%)`}},
		{"zero and a percentage above 100", `
budgets:
  - name: a
    period: day
    hard_usd: 1
    alerts:
      thresholds:
        - 0
        - 120%`, []string{
			`line 8: budget "a": alerts.thresholds: 0 is not above 0 and at most 1 (100%)`,
			`line 9: budget "a": alerts.thresholds: 120% is not above 0 and at most 1 (100%)`}},
		{"duplicate, as a percentage", `
budgets:
  - name: a
    period: day
    hard_usd: 1
    alerts: {thresholds: [0.5, 50%]}`, []string{`line 6: budget "a": alerts.thresholds: 50% is listed twice`}},
		{"not a number", `
budgets:
  - name: a
    period: day
    hard_usd: 1
    alerts: {thresholds: [half, -0.5, 0.1234567, 12.34567%]}`, []string{
			`line 6: budget "a": alerts.thresholds: "half" is neither a fraction of the hard cap such as 0.8 nor a percentage such as "80%" (at most 6 decimals)`,
			`line 6: budget "a": alerts.thresholds: "-0.5" is neither`,
			`line 6: budget "a": alerts.thresholds: "0.1234567" is neither`,
			`line 6: budget "a": alerts.thresholds: "12.34567%" is neither a fraction of the hard cap such as 0.8 nor a percentage such as "80%" (at most 4 decimals)`}},
		{"too many", `
budgets:
  - name: a
    period: day
    hard_usd: 1
    alerts:
      thresholds: [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1]`, []string{
			`line 7: budget "a": alerts.thresholds lists 11 thresholds; at most 10`}},
		{"no hard cap", `
budgets:
  - name: a
    period: day
    soft_usd: 1
    alerts:
      thresholds: [0.5]`, []string{`line 7: budget "a": alerts.thresholds are fractions of the hard cap: they need hard_usd`}},
		{"hard cap of zero", `
budgets:
  - name: a
    period: day
    hard_usd: 0
    alerts: {thresholds: [0.5]}`, []string{`line 6: budget "a": alerts.thresholds are fractions of the hard cap, and hard_usd is 0`}},
		{"empty", `
budgets:
  - name: a
    period: day
    hard_usd: 1
    alerts: {thresholds: []}`, []string{`line 6: budget "a": alerts.thresholds is empty`}},
		{"unknown key under alerts", `
budgets:
  - name: a
    period: day
    hard_usd: 1
    alerts:
      treshold: [0.5]`, []string{`line 7: budget "a": unknown field "alerts.treshold"; did you mean "thresholds"? (allowed: thresholds)`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compileYAML(t, tt.src)
			require.Error(t, err)
			assert.Nil(t, p)
			lines := strings.Split(err.Error(), "\n")
			require.Len(t, lines, len(tt.want), err.Error())
			for i, w := range tt.want {
				assert.Contains(t, lines[i], w)
			}
			var ce *ConfigError
			assert.True(t, errors.As(err, &ce))
		})
	}
}

func TestThresholdRejectsNonScalars(t *testing.T) {
	var s section
	err := yaml.Unmarshal([]byte("budgets:\n  - {name: a, period: day, hard_usd: 1, alerts: {thresholds: [[0.5]]}}\n"), &s)
	require.Error(t, err)
	assert.Contains(t, err.Error(), `line 2: a threshold must be a fraction such as 0.8 or a percentage such as "80%", not a sequence`)
}

func TestParseThreshold(t *testing.T) {
	for in, want := range map[string]int64{
		"0.8": 800_000, "1": 1_000_000, ".5": 500_000, "0.000001": 1, "80%": 800_000, "99.5%": 995_000,
		"0.0001%": 1, "100%": 1_000_000, "150%": 1_500_000,
	} {
		got, err := ParseThreshold(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	for _, in := range []string{"", "%", ".", "1e-1", "0,5", "+0.5", "0.5.1", "1234567", "80 %%"} {
		_, err := ParseThreshold(in)
		assert.Error(t, err, in)
	}
}

func TestThresholdsOfABadHardCapSayNothingMore(t *testing.T) {
	_, err := compileYAML(t, `
budgets:
  - name: a
    period: day
    hard_usd: ten
    alerts: {thresholds: [0.5]}`)
	require.Error(t, err)
	assert.Equal(t, 1, strings.Count(err.Error(), "\n")+1, err.Error())
	assert.Contains(t, err.Error(), `line 5: budget "a": hard_usd:`)
}
