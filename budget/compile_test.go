package budget

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/internal/money"
)

// exampleYAML is the budgets and limits sections of the example
// configuration (shared/spec/spendguard.example.yaml).
const exampleYAML = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    timezone: Europe/Berlin
    soft_usd: 800
    hard_usd: 1000
    on_soft:
      downgrade:
        meta-llama/Llama-3.1-70B-Instruct: meta-llama/Llama-3.1-8B-Instruct
    on_hard:
      allow_models: [free-tier-model]
  - name: acme-monthly
    match: {tenant: acme}
    period: month
    hard_usd: 5000
  - name: search-team-daily
    match: {tenant: acme, team: search}
    period: day
    soft_usd: 40
    hard_usd: 50
  - name: fleet-daily
    period: day
    hard_usd: 2000
  - name: runaway-agent-guard
    match: {user: "*"}
    rolling: 10m
    hard_usd: 5

limits:
  max_request_usd: 2.00
  reservation_ttl: 10m
  background_ttl: 2h
`

type section struct {
	Budgets []Config `yaml:"budgets"`
	Limits  Limits   `yaml:"limits"`
}

func compileYAML(t *testing.T, src string) (*Policies, error) {
	t.Helper()
	var s section
	require.NoError(t, yaml.Unmarshal([]byte(src), &s))
	return Compile(s.Budgets, s.Limits)
}

func TestCompileExample(t *testing.T) {
	p, err := compileYAML(t, exampleYAML)
	require.NoError(t, err)

	maxReq, ok := p.MaxRequest()
	assert.True(t, ok)
	assert.Equal(t, money.Nano(2_000_000_000), maxReq)
	assert.Equal(t, 10*time.Minute, p.ReservationTTL())
	assert.Equal(t, 2*time.Hour, p.BackgroundTTL())
	assert.Equal(t, []string{"team", "tenant", "user"}, p.Dimensions())

	bs := p.Budgets()
	require.Len(t, bs, 5)
	tm := bs[0]
	assert.Equal(t, "tenant-monthly", tm.Name())
	assert.Equal(t, 3, tm.Line())
	assert.Equal(t, PeriodMonth, tm.Period())
	assert.Equal(t, "Europe/Berlin", tm.Location().String())
	soft, ok := tm.Soft()
	assert.True(t, ok)
	assert.Equal(t, money.Nano(800)*money.PerUSD, soft)
	hard, ok := tm.Hard()
	assert.True(t, ok)
	assert.Equal(t, money.Nano(1000)*money.PerUSD, hard)
	to, ok := tm.Downgrade("meta-llama/Llama-3.1-70B-Instruct")
	assert.True(t, ok)
	assert.Equal(t, "meta-llama/Llama-3.1-8B-Instruct", to)
	assert.True(t, tm.Allows("free-tier-model"))
	assert.False(t, tm.Allows(""))
	assert.Equal(t, map[string]string{"tenant": "*"}, tm.Match())

	_, ok = bs[2].Soft()
	assert.True(t, ok)
	_, ok = bs[3].Soft()
	assert.False(t, ok, "fleet-daily has no soft cap")
	assert.Empty(t, bs[3].Keys())
	assert.Equal(t, PeriodRolling, bs[4].Period())
	assert.Equal(t, 10*time.Minute, bs[4].Rolling())
	assert.Equal(t, "UTC", bs[3].Location().String(), "default time zone")

	b, ok := p.Budget("acme-monthly")
	assert.True(t, ok)
	assert.Same(t, bs[1], b)
}

func TestCompileExactMoney(t *testing.T) {
	p, err := compileYAML(t, `
budgets:
  - {name: a, period: day, hard_usd: 0.1, soft_usd: 0.000000001}
  - {name: b, period: day, hard_usd: "1000.02"}
limits: {max_request_usd: 0.3}
`)
	require.NoError(t, err)
	hard, _ := p.Budgets()[0].Hard()
	assert.Equal(t, money.Nano(100_000_000), hard)
	soft, _ := p.Budgets()[0].Soft()
	assert.Equal(t, money.Nano(1), soft)
	hard, _ = p.Budgets()[1].Hard()
	assert.Equal(t, money.Nano(1000_020_000_000), hard)
	maxReq, _ := p.MaxRequest()
	assert.Equal(t, money.Nano(300_000_000), maxReq, "0.3 is exact, not 0.29999999999999998890")
}

func TestCompileDefaults(t *testing.T) {
	p, err := Compile(nil, Limits{})
	require.NoError(t, err)
	assert.Equal(t, DefaultReservationTTL, p.ReservationTTL())
	assert.Equal(t, DefaultBackgroundTTL, p.BackgroundTTL())
	_, ok := p.MaxRequest()
	assert.False(t, ok)
	assert.Empty(t, p.Applicable(map[string]string{"tenant": "acme"}))
}

func TestCompileErrors(t *testing.T) {
	tests := []struct {
		name string
		src  string
		want []string
	}{
		{"empty name", `
budgets:
  - period: day
    hard_usd: 1`, []string{"line 3: budgets[0] has no name"}},
		{"duplicate name", `
budgets:
  - {name: a, period: day, hard_usd: 1}
  - {name: a, period: month, hard_usd: 1}`, []string{`line 4: budget "a": duplicate name (first used at budgets[0])`}},
		{"bad name", `
budgets:
  - {name: "a b", period: day, hard_usd: 1}`, []string{`line 3: budget "a b": name may only hold`}},
		{"unknown period", `
budgets:
  - {name: a, period: fortnight, hard_usd: 1}`, []string{`line 3: budget "a": unknown period "fortnight"`}},
		{"no period", `
budgets:
  - {name: a, hard_usd: 1}`, []string{`line 3: budget "a": needs a period`}},
		{"bad timezone", `
budgets:
  - {name: a, period: day, timezone: Mars/Olympus, hard_usd: 1}`, []string{`line 3: budget "a": unknown timezone "Mars/Olympus"`}},
		{"local timezone", `
budgets:
  - {name: a, period: day, timezone: Local, hard_usd: 1}`, []string{`unknown timezone "Local"`}},
		{"period and rolling", `
budgets:
  - {name: a, period: day, rolling: 10m, hard_usd: 1}`, []string{`line 3: budget "a": has both period and rolling`}},
		{"bad rolling", `
budgets:
  - name: a
    rolling: soon
    hard_usd: 1`, []string{`line 4: budget "a": rolling: "soon" is not a duration`}},
		{"sub-second rolling", `
budgets:
  - {name: a, rolling: 1500ms, hard_usd: 1}`, []string{`rolling must be a whole number of seconds`}},
		{"soft above hard", `
budgets:
  - name: a
    period: day
    soft_usd: 10.5
    hard_usd: 10`, []string{`line 5: budget "a": soft_usd 10.50 is above hard_usd 10.00`}},
		{"negative cap", `
budgets:
  - name: a
    period: day
    hard_usd: -1`, []string{`line 5: budget "a": hard_usd must not be negative`}},
		{"float syntax", `
budgets:
  - name: a
    period: day
    hard_usd: 1e3`, []string{`line 5: budget "a": hard_usd: "1e3": not a decimal USD amount`}},
		{"cap 1e30", `
budgets:
  - name: a
    period: day
    hard_usd: 1e30`, []string{`line 5: budget "a": hard_usd: "1e30": not a decimal USD amount`}},
		{"cap beyond int64 nano-USD", `
budgets:
  - name: a
    period: day
    hard_usd: 1000000000000000000000000000000`, []string{`line 5: budget "a": hard_usd: "1000000000000000000000000000000": out of range: not a decimal USD amount`}},
		{"too precise", `
budgets:
  - name: a
    period: day
    soft_usd: 0.0000000001`, []string{`line 5: budget "a": soft_usd: "0.0000000001": more than 9 decimal places`}},
		{"no caps", `
budgets:
  - {name: a, period: day}`, []string{`line 3: budget "a": needs hard_usd`}},
		{"empty match value", `
budgets:
  - name: a
    match: {tenant: }
    period: day
    hard_usd: 1`, []string{`line 4: budget "a": match value of "tenant" is empty`}},
		{"downgrade without soft", `
budgets:
  - name: a
    period: day
    hard_usd: 1
    on_soft: {downgrade: {x: y}}`, []string{`line 6: budget "a": on_soft.downgrade needs soft_usd`}},
		{"downgrade to itself", `
budgets:
  - name: a
    period: day
    soft_usd: 1
    on_soft: {downgrade: {x: x}}`, []string{`line 6: budget "a": on_soft.downgrade maps "x" to itself`}},
		{"allow without hard", `
budgets:
  - name: a
    period: day
    soft_usd: 1
    on_hard: {allow_models: [x]}`, []string{`line 6: budget "a": on_hard.allow_models needs hard_usd`}},
		{"lower_output_limit without hard", `
budgets:
  - name: a
    period: day
    soft_usd: 1
    on_hard:
      lower_output_limit: true`, []string{`line 7: budget "a": on_hard.lower_output_limit needs hard_usd`}},
		{"unknown fields", `
budgets:
  - name: a
    period: day
    timezon: Europe/Berlin
    hard_usd: 1
    on_hard: {allow_model: [x]}`, []string{`line 5: budget "a": unknown field "timezon"`,
			`line 7: budget "a": unknown field "on_hard.allow_model"`}},
		{"misspelt field", `
budgets:
  - name: a
    period: day
    hard_ud: 1`, []string{`line 5: budget "a": unknown field "hard_ud"; did you mean "hard_usd"? (allowed: name, match, period, timezone, rolling, soft_usd, hard_usd, on_soft, on_hard, alerts)`,
			`line 3: budget "a": needs hard_usd`}},
		{"period and timezone at their keys", `
budgets:
  - name: a
    match: {tenant: "*"}
    period: fortnight
    timezone: Mars/Olympus
    hard_usd: 1`, []string{`line 5: budget "a": unknown period "fortnight"`,
			`line 6: budget "a": unknown timezone "Mars/Olympus"`}},
		{"block style: each problem at its key", `
budgets:
  - name: a
    period: day
    rolling: 1h
    soft_usd: 1
    hard_usd: 2
    on_soft:
      downgrade:
        big: small
        x: x`, []string{`line 5: budget "a": has both period and rolling`,
			`line 11: budget "a": on_soft.downgrade maps "x" to itself`}},
		{"limits", `
limits:
  max_request_usd: -2
  reservation_ttl: 0s
  background_ttl: 500ms`, []string{"line 3: limits.max_request_usd must not be negative",
			"line 4: limits.reservation_ttl must be at least 1s",
			"line 5: limits.background_ttl must be at least 1s"}},
		{"all at once", `
budgets:
  - {name: a, period: fortnight, hard_usd: 1}
  - {name: b, period: day, soft_usd: 2, hard_usd: 1}
  - {name: a, period: day, timezone: Nowhere, hard_usd: 1}
limits:
  reservation_ttl: soon`, []string{
			`line 3: budget "a": unknown period "fortnight"`,
			`line 4: budget "b": soft_usd 2.00 is above hard_usd 1.00`,
			`line 5: budget "a": unknown timezone "Nowhere"`,
			`line 5: budget "a": duplicate name`,
			`line 7: limits.reservation_ttl: "soon" is not a duration`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := compileYAML(t, tt.src)
			require.Error(t, err)
			assert.Nil(t, p)
			lines := strings.Split(err.Error(), "\n")
			require.Len(t, lines, len(tt.want), err.Error())
			for _, w := range tt.want {
				assert.Contains(t, err.Error(), w)
			}
			var ce *ConfigError
			assert.True(t, errors.As(err, &ce))
		})
	}
}

func TestCompileModelKeyAndSoftOnly(t *testing.T) {
	_, err := compileYAML(t, `
budgets:
  - name: big-model-daily
    match: {model: meta-llama/Llama-3.1-70B-Instruct}
    period: day
    soft_usd: 10
    on_soft: {downgrade: {meta-llama/Llama-3.1-70B-Instruct: meta-llama/Llama-3.1-8B-Instruct}}
`)
	assert.NoError(t, err, "model is a match key like any other; soft-only budgets are allowed")
}

// TestCompileLowerOutputLimit: on_hard.lower_output_limit is off unless
// the budget turns it on, and is kept on the compiled budget.
func TestCompileLowerOutputLimit(t *testing.T) {
	p, err := compileYAML(t, `
budgets:
  - name: lowers
    period: day
    hard_usd: 1
    on_hard: {lower_output_limit: true}
  - name: refuses
    period: day
    hard_usd: 1
  - name: says-no
    period: day
    hard_usd: 1
    on_hard: {lower_output_limit: false}
`)
	require.NoError(t, err)
	bs := p.Budgets()
	require.Len(t, bs, 3)
	assert.True(t, bs[0].LowersOutputLimit())
	assert.False(t, bs[1].LowersOutputLimit())
	assert.False(t, bs[2].LowersOutputLimit())
}

func TestDecodeRejectsNonScalars(t *testing.T) {
	var s section
	err := yaml.Unmarshal([]byte("budgets:\n  - {name: a, period: day, hard_usd: [1]}\n"), &s)
	require.Error(t, err)
	assert.Contains(t, err.Error(), "line 2: a USD amount must be a number, not a sequence")
}

func TestStreamsGrow(t *testing.T) {
	no, yes := false, true
	for _, tc := range []struct {
		grow *bool
		want bool
	}{{nil, true}, {&yes, true}, {&no, false}} {
		p, err := Compile(nil, Limits{Streams: Streams{Grow: tc.grow}})
		if err != nil {
			t.Fatal(err)
		}
		if got := p.StreamsGrow(); got != tc.want {
			t.Errorf("grow %v: StreamsGrow() = %v, want %v", tc.grow, got, tc.want)
		}
	}
	if !(*Policies)(nil).StreamsGrow() {
		t.Error("a nil Policies grows streams (the default)")
	}
}
