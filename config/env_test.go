package config

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestVariableSubstitution(t *testing.T) {
	vars := map[string]string{
		"TOKEN":   "s3cret",
		"NULLISH": "null",
		"NUMBER":  "2048",
		"EMPTY":   "",
		"COLON":   "a: b # not a comment",
		"MAX":     "1.50",
	}
	tests := []struct {
		name  string
		line  string // appended to minimal
		check func(t *testing.T, c *Compiled)
	}{
		{"whole value", "admin:\n  token: ${TOKEN}", func(t *testing.T, c *Compiled) {
			assert.Equal(t, "s3cret", c.File.Admin.Token)
		}},
		{"inside a value", "admin:\n  token: \"Bearer ${TOKEN}!\"", func(t *testing.T, c *Compiled) {
			assert.Equal(t, "Bearer s3cret!", c.File.Admin.Token)
		}},
		{"a non-empty value is never null", "admin:\n  token: ${NULLISH}", func(t *testing.T, c *Compiled) {
			assert.Equal(t, "null", c.File.Admin.Token)
		}},
		{"set but empty", "admin:\n  token: ${EMPTY}", func(t *testing.T, c *Compiled) {
			assert.Equal(t, "", c.File.Admin.Token)
		}},
		{"YAML syntax in a value stays text", "admin:\n  token: ${COLON}", func(t *testing.T, c *Compiled) {
			assert.Equal(t, "a: b # not a comment", c.File.Admin.Token)
		}},
		{"a plain value is typed by its text", "pricing_placeholder", func(t *testing.T, c *Compiled) {
			assert.Equal(t, int64(2048), c.Snapshot.Pricing.DefaultMaxOutputTokens())
		}},
		{"money", "limits:\n  max_request_usd: ${MAX}", func(t *testing.T, c *Compiled) {
			max, ok := c.Snapshot.Budgets.MaxRequest()
			assert.True(t, ok)
			assert.Equal(t, "1.500000", max.USD())
		}},
		{"escape", "admin:\n  token: \"$${TOKEN} costs $5\"", func(t *testing.T, c *Compiled) {
			assert.Equal(t, "${TOKEN} costs $5", c.File.Admin.Token)
		}},
		{"comments are not substituted", "admin:\n  token: x # ${UNSET}", func(t *testing.T, c *Compiled) {
			assert.Equal(t, "x", c.File.Admin.Token)
		}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			data := minimal + tc.line + "\n"
			if tc.line == "pricing_placeholder" {
				data = strings.Replace(minimal, "  default: {input: 1, output: 2}\n",
					"  default: {input: 1, output: 2}\n  default_max_output_tokens: ${NUMBER}\n", 1)
			}
			c, err := Loader{LookupEnv: env(vars)}.Parse([]byte(data))
			require.NoError(t, err)
			tc.check(t, c)
		})
	}
}

func TestVariablesAreNotSubstitutedInKeys(t *testing.T) {
	ps := problemsOf(t, minimal+"${TOKEN}: x\n", map[string]string{"TOKEN": "admin"})
	require.Len(t, ps, 1)
	assert.Equal(t, 12, ps[0].Line)
	assert.Contains(t, ps[0].Msg, "${TOKEN}: unknown key")
}

func TestIsVarName(t *testing.T) {
	for name, want := range map[string]bool{
		"A": true, "_x": true, "SPENDGUARD_PG_DSN": true, "a1": true,
		"": false, "1A": false, "A-B": false, "A B": false, "Ä": false,
	} {
		assert.Equal(t, want, isVarName(name), name)
	}
}

func TestInsideAny(t *testing.T) {
	unused := []string{"store.redis", "exporters.otlp.headers"}
	for path, want := range map[string]bool{
		"store.redis":                    true,
		"store.redis.password":           true,
		"store.redis_other":              false,
		"store":                          false,
		"exporters.otlp.headers.x-token": true,
		"exporters.otlp.endpoint":        false,
	} {
		assert.Equal(t, want, insideAny(path, unused), path)
	}
}
