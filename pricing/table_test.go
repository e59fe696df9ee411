package pricing

import (
	"testing"

	"github.com/stretchr/testify/assert"
)

const precedencePricing = `
pricing:
  models:
    - match: "meta-llama/*"
      input: 1
      output: 1
    - match: meta-llama/Llama-3.1-8B-Instruct
      input: 2
      output: 2
    - match: "meta-llama/Llama-3.1-*"
      input: 3
      output: 3
    - match: "qwen?-*"
      input: 4
      output: 4
    - match: "*"
      input: 5
      output: 5
`

func TestLookupPrecedence(t *testing.T) {
	withDefault := compile(t, precedencePricing+"  default: {input: 9, output: 9}\n")
	withoutDefault := compile(t, precedencePricing)
	tests := []struct {
		model string
		want  string // the winning match; "" is the default
		found bool   // without a default
	}{
		{"meta-llama/Llama-3.1-8B-Instruct", "meta-llama/Llama-3.1-8B-Instruct", true}, // exact beats an earlier glob
		{"meta-llama/Llama-3.1-70B-Instruct", "meta-llama/*", true},                    // first glob wins over a later, more specific one
		{"qwen2-7b", "qwen?-*", true},
		{"qwen2.5-7b", "*", true}, // ? is exactly one character
		{"mistral", "*", true},
		{"Qwen/Qwen2.5-7B-Instruct", "", false}, // "*" does not cross "/"
		{"META-LLAMA/x", "", false},             // case-sensitive
		{"", "*", true},
	}
	for _, tt := range tests {
		t.Run(tt.model, func(t *testing.T) {
			p, ok := withDefault.Lookup(tt.model)
			assert.True(t, ok)
			assert.Equal(t, tt.want, p.Match)

			p, ok = withoutDefault.Lookup(tt.model)
			assert.Equal(t, tt.found, ok)
			if !tt.found {
				assert.Equal(t, Price{}, p)
			}
		})
	}
}

func TestLookupDefault(t *testing.T) {
	tab := compile(t, `
pricing:
  models:
    - match: a
      input: 1
      output: 2
  default: {input: 0.5, cached_input: 0.25, output: 3}
`)
	p, ok := tab.Lookup("b")
	assert.True(t, ok)
	assert.Equal(t, Price{Input: 500_000_000, CachedInput: 250_000_000, Output: 3_000_000_000}, p)
}
