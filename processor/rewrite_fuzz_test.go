package processor

import (
	"encoding/json"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/pricing"
)

// FuzzBodyRewrites: for any JSON object, the model rewrite, the usage
// injection and the output limit, placed by the parse's layout, yield
// valid JSON that differs from the input only in the member they change,
// alone or together, and never panic on anything else.
func FuzzBodyRewrites(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","stream":true}`,
		`{"model":"m","stream_options":null,"messages":[{"model":"inner"}]}`,
		`{"model":"a","model":"b","stream_options":{"include_usage":false}}`,
		` { "stream_options" : { } , "model" : "\u0061" } `,
		`{"model":"m","stream_options":{"include_usage":null,"continuous_usage_stats":true,"continuous_usage_stats":1}}`,
		`{"model":"m","stream_options":{"continuous_usage_stats":false,"x":{"continuous_usage_stats":null}}}`,
		`{"model":"m","stream_options":{"include_usage":true,"include_usage":false,"continuous\u005fusage_stats":null}}`,
		`{"model":"m","max_tokens":null,"max_tokens":3,"max_completion_tokens":null}`,
		`{"model":"m","max_completion_tokens":5,"max_completion_tokens":null,"n":3}`,
		"{\"model\":\"m\",\"max\\u005ftokens\":4,\"messages\":[]}\n",
		`{"model":"m","token_ids":[1],"sampling_params":{"max_tokens":null, "n":2 }}`,
		`{"model":"m","token_ids":[1],"sampling_params":null}`,
		`{}`, `[]`, `{"model":`, `null`,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, body []byte) {
		var before map[string]any
		valid := json.Unmarshal(body, &before) == nil && before != nil
		out, err := replaceModel(body, "new/model")
		if valid && err == nil {
			var after map[string]any
			require.NoError(t, json.Unmarshal(out, &after), "%s", out)
			assert.Equal(t, "new/model", after["model"])
			delete(before, "model")
			delete(after, "model")
			assert.Equal(t, before, after)
		}
		if !valid {
			return
		}
		checkLimit(t, body)
		checkSamplingLimit(t, body)
		checkContinuousUsage(t, body)
		plan, err := planUsage(body, false)
		if err != nil {
			return
		}
		assert.False(t, plan.stripChunkUsage, "no continuous usage asked: nothing to strip")
		out, err = injectIncludeUsage(body, false)
		if err != nil {
			return
		}
		if !plan.rewrites() {
			require.Equal(t, string(body), string(out), "usage asked: the body is kept")
			return
		}
		var after map[string]any
		require.NoError(t, json.Unmarshal(out, &after), "%s", out)
		opts, ok := after["stream_options"].(map[string]any)
		require.True(t, ok, "%s", out)
		assert.Equal(t, true, opts["include_usage"])
		if c, ok := opts["continuous_usage_stats"]; ok {
			assert.Contains(t, []any{false, nil}, c, "continuous usage off")
		}
		var again map[string]any
		require.NoError(t, json.Unmarshal(body, &again))
		if o, ok := again["stream_options"].(map[string]any); ok {
			// The object's other members are kept.
			delete(o, "include_usage")
			delete(opts, "include_usage")
			if c, ok := o["continuous_usage_stats"]; ok && c != nil && c != false {
				o["continuous_usage_stats"] = false
			}
			assert.Equal(t, o, opts)
		}
		delete(again, "stream_options")
		delete(after, "stream_options")
		assert.Equal(t, again, after)

		// Both edits in one copy, as for a downgraded streaming request.
		b, err := parsed(body)
		require.NoError(t, err)
		_, usage, err := includeUsage(body, &b.Layout, false)
		require.NoError(t, err)
		out = applyEdits(body, []edit{usage, modelEdit(&b.Layout, "new/model")})
		after = nil
		require.NoError(t, json.Unmarshal(out, &after), "%s", out)
		assert.Equal(t, "new/model", after["model"])
		opts, ok = after["stream_options"].(map[string]any)
		require.True(t, ok, "%s", out)
		assert.Equal(t, true, opts["include_usage"])
	})
}

// checkLimit: a chat body that parses and states no output limit,
// forwarded with the limit written (with a model rewrite and the usage
// injection in the same copy), is valid JSON whose output limit is the
// one reserved for it: parsed again, its worst case is the reservation's
// whatever the default, and its other members are the client's.
func checkLimit(t *testing.T, body []byte) {
	const limit = 1000
	b, err := parsed(body)
	if err != nil || b.Request.OutputLimitStated {
		return
	}
	reserved := b.Request.WorstCase(limit)
	edits := []edit{modelEdit(&b.Layout, "new/model")}
	if _, usage, err := includeUsage(body, &b.Layout, false); err == nil && usage.text != "" {
		edits = append(edits, usage)
	}
	edits = append(edits, limitEdit(&b.Layout, limitMember(pricing.ChatCompletions), limit))
	out := applyEdits(body, edits)
	var before, after map[string]any
	require.NoError(t, json.Unmarshal(body, &before))
	require.NoError(t, json.Unmarshal(out, &after), "%s", out)
	assert.Equal(t, float64(limit), after["max_completion_tokens"], "%s", out)
	again, err := parsed(out)
	require.NoError(t, err, "%s", out)
	assert.True(t, again.Request.OutputLimitStated)
	assert.Equal(t, int64(limit), again.Request.MaxOutputTokens)
	assert.Equal(t, reserved, again.Request.WorstCase(1), "the written limit is the reserved one")
	for _, k := range []string{"model", "stream_options", "max_completion_tokens"} {
		delete(before, k)
		delete(after, k)
	}
	assert.Equal(t, before, after, "every other member kept")
}

// checkSamplingLimit: a generate body that parses and states no limit,
// forwarded with sampling_params.max_tokens written, is valid JSON whose
// limit is the one reserved for it.
func checkSamplingLimit(t *testing.T, body []byte) {
	const limit = 1000
	b := new(pricing.Body)
	if pricing.ParseBody(b, pricing.Generate, body) != nil || b.Request.OutputLimitStated {
		return
	}
	reserved := b.Request.WorstCase(limit)
	out := applyEdits(body, []edit{samplingLimitEdit(body, &b.Layout, limit)})
	var after map[string]any // keys compared exactly, as vLLM does
	require.NoError(t, json.Unmarshal(out, &after), "%s", out)
	sp, ok := after["sampling_params"].(map[string]any)
	require.True(t, ok, "%s", out)
	assert.Equal(t, float64(limit), sp["max_tokens"], "%s", out)
	again := new(pricing.Body)
	require.NoError(t, pricing.ParseBody(again, pricing.Generate, out), "%s", out)
	assert.Equal(t, reserved, again.Request.WorstCase(1), "the written limit is the reserved one")
}

// vllmReadsUsage is how vLLM reads the stream_options of a JSON object
// body: usage on when stream_options is an object whose include_usage is
// absent or neither false nor null, continuous usage on when usage is and
// continuous_usage_stats is present and neither false nor null (the last
// of duplicate keys counting, as in a decoded map).
func vllmReadsUsage(t *testing.T, body []byte) (usage, continuous bool) {
	var m map[string]any
	require.NoError(t, json.Unmarshal(body, &m), "%s", body)
	opts, ok := m["stream_options"].(map[string]any)
	if !ok {
		return false, false
	}
	on := func(v any) bool { return v != nil && v != false }
	in, found := opts["include_usage"]
	usage = !found || on(in)
	c, found := opts["continuous_usage_stats"]
	return usage, usage && found && on(c)
}

// checkContinuousUsage: with continuous, a body whose stream_options is
// absent, null or an object is forwarded as valid JSON that vLLM reads as
// asking for usage and continuous usage, with every other member (of the
// body and of stream_options) the client's; the plan says exactly what
// the client did not ask for, and a client that asked for both keeps its
// body byte for byte.
func checkContinuousUsage(t *testing.T, body []byte) {
	plan, err := planUsage(body, true)
	_, errOff := planUsage(body, false)
	assert.Equal(t, errOff == nil, err == nil, "the same bodies are refused either way")
	if err != nil {
		return
	}
	out, err := injectIncludeUsage(body, true)
	require.NoError(t, err)
	usage, continuous := vllmReadsUsage(t, body)
	assert.Equal(t, !usage, plan.dropUsageEvent, "%s", body)
	assert.Equal(t, !continuous, plan.stripChunkUsage, "%s", body)
	if !plan.rewrites() {
		require.Equal(t, string(body), string(out), "both asked: the body is kept")
		return
	}
	usage, continuous = vllmReadsUsage(t, out)
	assert.True(t, usage && continuous, "%s", out)
	var before, after map[string]any
	require.NoError(t, json.Unmarshal(body, &before))
	require.NoError(t, json.Unmarshal(out, &after), "%s", out)
	if o, ok := before["stream_options"].(map[string]any); ok {
		opts := after["stream_options"].(map[string]any)
		for _, k := range []string{"include_usage", "continuous_usage_stats"} {
			delete(o, k)
			delete(opts, k)
		}
		assert.Equal(t, o, opts, "the other members of stream_options kept")
	}
	delete(before, "stream_options")
	delete(after, "stream_options")
	assert.Equal(t, before, after, "every other member kept")
}
