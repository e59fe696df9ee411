package usage

import (
	"testing"

	"github.com/spendguard/spendguard/pricing"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestParseUsageObject(t *testing.T) {
	tests := []struct {
		name      string
		obj       string
		want      pricing.Usage
		reasoning int64
		wantErr   bool
	}{
		// Chat, completions and embeddings vocabulary.
		{name: "vLLM chat", obj: `{"prompt_tokens":12,"total_tokens":112,"completion_tokens":100,"prompt_tokens_details":null}`,
			want: pricing.Usage{Prompt: 12, Completion: 100}},
		{name: "vLLM cached", obj: `{"prompt_tokens":40,"total_tokens":50,"completion_tokens":10,"prompt_tokens_details":{"cached_tokens":32}}`,
			want: pricing.Usage{Prompt: 40, CachedPrompt: 32, Completion: 10}},
		{name: "OpenAI details", obj: `{"completion_tokens":377,"completion_tokens_details":{"accepted_prediction_tokens":0,"audio_tokens":0,"reasoning_tokens":320,"rejected_prediction_tokens":0},"prompt_tokens":8,"prompt_tokens_details":{"audio_tokens":0,"cached_tokens":0},"total_tokens":385}`,
			want: pricing.Usage{Prompt: 8, Completion: 377}, reasoning: 320},
		{name: "OpenAI embeddings, no completion", obj: `{"prompt_tokens":7,"total_tokens":7}`, want: pricing.Usage{Prompt: 7}},
		{name: "vLLM embeddings, completion 0", obj: `{"prompt_tokens":39,"total_tokens":39,"completion_tokens":0,"prompt_tokens_details":null}`,
			want: pricing.Usage{Prompt: 39}},
		{name: "null completion and details", obj: `{"prompt_tokens":5,"completion_tokens":null,"completion_tokens_details":null,"prompt_tokens_details":{"cached_tokens":null}}`,
			want: pricing.Usage{Prompt: 5}},
		{name: "zero everything", obj: `{"prompt_tokens":0}`},
		{name: "whitespace", obj: " \n{ \"prompt_tokens\" : 2 ,\t\"completion_tokens\" : 1 }\n", want: pricing.Usage{Prompt: 2, Completion: 1}},
		{name: "duplicate key, last wins", obj: `{"prompt_tokens":1,"prompt_tokens":2}`, want: pricing.Usage{Prompt: 2}},
		{name: "unknown members of any shape", obj: `{"prompt_tokens":2,"extra":{"prompt_tokens":-1},"list":[1.5,"x"],"Prompt_Tokens":9}`,
			want: pricing.Usage{Prompt: 2}},
		{name: "largest count", obj: `{"prompt_tokens":9223372036854775807}`, want: pricing.Usage{Prompt: 1<<63 - 1}},
		{name: "beyond int64 saturates", obj: `{"prompt_tokens":9223372036854775808,"completion_tokens":1000000000000000000000000000000}`,
			want: pricing.Usage{Prompt: 1<<63 - 1, Completion: 1<<63 - 1}},
		{name: "saturated counts agree", obj: `{"prompt_tokens":99999999999999999999,"input_tokens":9223372036854775807,"prompt_tokens_details":{"cached_tokens":123456789012345678901234567890}}`,
			want: pricing.Usage{Prompt: 1<<63 - 1, CachedPrompt: 1<<63 - 1}},
		{name: "1e18 tokens", obj: `{"prompt_tokens":1000000000000000000,"completion_tokens":1000000000000000000}`,
			want: pricing.Usage{Prompt: 1e18, Completion: 1e18}},

		// Responses API vocabulary.
		{name: "responses", obj: `{"input_tokens":36,"input_tokens_details":{"cached_tokens":4},"output_tokens":87,"output_tokens_details":{"reasoning_tokens":10},"total_tokens":123}`,
			want: pricing.Usage{Prompt: 36, CachedPrompt: 4, Completion: 87}, reasoning: 10},
		{name: "responses, minimal", obj: `{"input_tokens":3}`, want: pricing.Usage{Prompt: 3}},

		// Both vocabularies.
		{name: "both, agreeing", obj: `{"prompt_tokens":3,"input_tokens":3,"completion_tokens":2,"output_tokens":2,"prompt_tokens_details":{"cached_tokens":1},"input_tokens_details":{"cached_tokens":1}}`,
			want: pricing.Usage{Prompt: 3, CachedPrompt: 1, Completion: 2}},
		{name: "mixed halves", obj: `{"prompt_tokens":3,"output_tokens":2}`, want: pricing.Usage{Prompt: 3, Completion: 2}},
		{name: "both, prompt disagrees", obj: `{"prompt_tokens":3,"input_tokens":4}`, wantErr: true},
		{name: "both, completion disagrees", obj: `{"prompt_tokens":3,"completion_tokens":1,"output_tokens":2}`, wantErr: true},
		{name: "both, cached disagrees", obj: `{"prompt_tokens":3,"prompt_tokens_details":{"cached_tokens":1},"input_tokens_details":{"cached_tokens":2}}`, wantErr: true},

		// Rejected.
		{name: "null", obj: `null`, wantErr: true},
		{name: "empty", obj: ``, wantErr: true},
		{name: "array", obj: `[{"prompt_tokens":1}]`, wantErr: true},
		{name: "invalid JSON", obj: `{"prompt_tokens":1,}`, wantErr: true},
		{name: "trailing data", obj: `{"prompt_tokens":1} {}`, wantErr: true},
		{name: "no prompt count", obj: `{"completion_tokens":1,"total_tokens":1}`, wantErr: true},
		{name: "null prompt count", obj: `{"prompt_tokens":null}`, wantErr: true},
		{name: "empty object", obj: `{}`, wantErr: true},
		{name: "negative", obj: `{"prompt_tokens":-1}`, wantErr: true},
		{name: "negative zero", obj: `{"prompt_tokens":-0}`, wantErr: true},
		{name: "fraction", obj: `{"prompt_tokens":1.5}`, wantErr: true},
		{name: "integral fraction", obj: `{"prompt_tokens":1.0}`, wantErr: true},
		{name: "exponent", obj: `{"prompt_tokens":1e2}`, wantErr: true},
		{name: "string count", obj: `{"prompt_tokens":"1"}`, wantErr: true},
		{name: "bool count", obj: `{"prompt_tokens":true}`, wantErr: true},
		{name: "exponent, huge", obj: `{"prompt_tokens":1e300}`, wantErr: true},
		{name: "exponent, integral", obj: `{"prompt_tokens":1e3}`, wantErr: true},
		{name: "huge fraction", obj: `{"prompt_tokens":99999999999999999999.5}`, wantErr: true},
		{name: "huge negative", obj: `{"prompt_tokens":-99999999999999999999}`, wantErr: true},
		{name: "negative completion", obj: `{"prompt_tokens":1,"completion_tokens":-1}`, wantErr: true},
		{name: "bad total", obj: `{"prompt_tokens":1,"total_tokens":-2}`, wantErr: true},
		{name: "fractional total", obj: `{"prompt_tokens":1,"total_tokens":2.5}`, wantErr: true},
		{name: "bad reasoning", obj: `{"prompt_tokens":1,"output_tokens_details":{"reasoning_tokens":-1}}`, wantErr: true},
		{name: "details not an object", obj: `{"prompt_tokens":1,"prompt_tokens_details":5}`, wantErr: true},
		{name: "details an array", obj: `{"prompt_tokens":1,"input_tokens_details":[]}`, wantErr: true},
		{name: "cached exceeds prompt", obj: `{"input_tokens":1,"input_tokens_details":{"cached_tokens":2}}`, wantErr: true},

		// Anthropic Messages API: vLLM sends input and output only (its
		// input_tokens are the whole prompt); Anthropic's own input_tokens
		// leave out the cache reads and writes, which are added back.
		{name: "vLLM messages", obj: `{"input_tokens":21,"output_tokens":9}`, want: pricing.Usage{Prompt: 21, Completion: 9}},
		{name: "anthropic cache", obj: `{"input_tokens":50,"cache_creation_input_tokens":200,"cache_read_input_tokens":1000,"output_tokens":30}`,
			want: pricing.Usage{Prompt: 1250, CachedPrompt: 1000, Completion: 30}},
		{name: "anthropic cache null", obj: `{"input_tokens":5,"cache_creation_input_tokens":null,"cache_read_input_tokens":null,"output_tokens":1}`,
			want: pricing.Usage{Prompt: 5, Completion: 1}},
		{name: "anthropic cache saturates", obj: `{"input_tokens":9223372036854775807,"cache_read_input_tokens":5}`,
			want: pricing.Usage{Prompt: 1<<63 - 1, CachedPrompt: 5}},
		{name: "anthropic bad cache read", obj: `{"input_tokens":5,"cache_read_input_tokens":-1}`, wantErr: true},
		{name: "anthropic bad cache creation", obj: `{"input_tokens":5,"cache_creation_input_tokens":"3"}`, wantErr: true},
		{name: "anthropic cache without input", obj: `{"cache_read_input_tokens":5,"output_tokens":1}`, wantErr: true},

		// Audio billed by duration (vLLM transcriptions and translations).
		{name: "duration", obj: `{"type":"duration","seconds":17}`, want: pricing.Usage{Seconds: 17}},
		{name: "duration, spaced, escaped type", obj: `{ "seconds" : 3 , "type" : "dur\u0061tion" }`, want: pricing.Usage{Seconds: 3}},
		{name: "duration with tokens", obj: `{"type":"duration","seconds":4,"prompt_tokens":10,"completion_tokens":2}`,
			want: pricing.Usage{Prompt: 10, Completion: 2, Seconds: 4}},
		{name: "duration zero", obj: `{"type":"duration","seconds":0}`},
		{name: "duration without seconds", obj: `{"type":"duration"}`, wantErr: true},
		{name: "duration, null seconds", obj: `{"type":"duration","seconds":null}`, wantErr: true},
		{name: "duration, fractional seconds", obj: `{"type":"duration","seconds":1.5}`, wantErr: true},
		{name: "duration, negative seconds", obj: `{"type":"duration","seconds":-1}`, wantErr: true},
		{name: "other type needs tokens", obj: `{"type":"tokens","seconds":3}`, wantErr: true},
		{name: "other type with tokens", obj: `{"type":"tokens","input_tokens":3,"seconds":"x"}`, want: pricing.Usage{Prompt: 3}},
		{name: "type not a string", obj: `{"type":1,"seconds":3,"prompt_tokens":1}`, want: pricing.Usage{Prompt: 1}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u, d, err := ParseUsageDetails([]byte(tt.obj))
			u2, err2 := ParseUsageObject([]byte(tt.obj))
			assert.Equal(t, u, u2)
			assert.Equal(t, err, err2)
			if tt.wantErr {
				require.Error(t, err)
				assert.ErrorIs(t, err, ErrUsage)
				assert.Zero(t, u)
				assert.Zero(t, d)
				return
			}
			require.NoError(t, err)
			assert.Equal(t, tt.want, u)
			assert.Equal(t, Details{Reasoning: tt.reasoning}, d)
		})
	}
}
