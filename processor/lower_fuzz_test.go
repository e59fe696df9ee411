package processor

import (
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
)

// lowerKinds are the kinds whose output limit can be lowered.
var lowerKinds = []pricing.Endpoint{pricing.ChatCompletions, pricing.Completions, pricing.Responses, pricing.Messages, pricing.Generate}

// FuzzLowerLimit: for any request, prices and room, the lowered limit is
// the largest whose worst case fits the room (none when not even 1
// fits), and the body with it written over the stated limit parses as the
// same request with exactly that limit, so its worst case fits too.
func FuzzLowerLimit(f *testing.F) {
	for _, seed := range []string{
		`{"model":"m","max_tokens":5000,"messages":[{"role":"user","content":"Hi"}]}`,
		`{"model":"m","max_tokens":10,"max_completion_tokens":5000,"n":3,"messages":[]}`,
		`{"model":"m","max_completion_tokens":4000,"max_tokens":null,"max_tokens":6000,"messages":[]}`,
		`{"model":"m","prompt":["a","b","c"],"max_tokens":300,"best_of":2}`,
		`{"model":"m","input":"Hi","max_output_tokens":5000}`,
		`{"model":"m","token_ids":[1,2],"sampling_params":{"n":2,"max_tokens": 77 }}`,
		`{"model":"m","messages":[]}`,
	} {
		for k := range lowerKinds {
			f.Add(uint8(k), []byte(seed), int64(1_000_000), int64(1_000_000_000), int64(1_000_000_000), int64(5000))
		}
	}
	f.Fuzz(func(t *testing.T, kind uint8, body []byte, in, out, room, def int64) {
		e := lowerKinds[int(kind)%len(lowerKinds)]
		var b pricing.Body
		if pricing.ParseBody(&b, e, body) != nil {
			return
		}
		price := pricing.Price{Input: money.Nano(max(in, 0)), CachedInput: money.Nano(max(in, 0)), Output: money.Nano(max(out, 0))}
		def = max(def, 0)
		req := b.Request
		asked := def
		if req.OutputLimitStated {
			asked = req.MaxOutputTokens
		}
		if asked <= 1 {
			return
		}
		r := money.Nano(max(room, 0))
		limit := fittingLimit(&req, price, def, r, asked-1)
		cost := func(l int64) money.Nano { return price.Cost(lowered(&req, l, def)).Total }
		require.GreaterOrEqual(t, limit, int64(0))
		require.Less(t, limit, asked)
		if limit == 0 {
			assert.Greater(t, cost(1), r, "not even 1 fits")
			return
		}
		require.LessOrEqual(t, cost(limit), r, "the lowered worst case fits the room")
		if limit < asked-1 {
			assert.Greater(t, cost(limit+1), r, "the largest that fits")
		}
		if !req.OutputLimitStated {
			return
		}
		edits := lowerEdits(body, &b.Layout, e, limit)
		require.NotEmpty(t, edits, "a stated limit above the lowered one is written over")
		fwd := applyEdits(body, edits)
		var again pricing.Body
		require.NoError(t, pricing.ParseBody(&again, e, fwd), "%s", fwd)
		want := req
		want.MaxOutputTokens = limit
		assert.Equal(t, want, again.Request, "the same request with the lowered limit: %s", fwd)
		assert.LessOrEqual(t, price.Cost(again.Request.WorstCase(def)).Total, r)
	})
}
