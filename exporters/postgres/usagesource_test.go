package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
)

// TestUsageSourceColumn: each report's usage source lands in its column;
// rows written before the column existed stay valid with NULL there, and
// the column takes no other word.
func TestUsageSourceColumn(t *testing.T) {
	l := openLedger(t)
	counted := report("req-counted", 0, map[string]string{"tenant": "acme"})
	counted.UsageSource = spendguardv1.UsageSource_USAGE_SOURCE_COUNTED
	estimated := report("req-estimated", 0, map[string]string{"tenant": "acme"})
	estimated.UsageSource, estimated.Estimated = spendguardv1.UsageSource_USAGE_SOURCE_ESTIMATED, true
	none := report("req-none", 0, map[string]string{"tenant": "acme"})
	none.UsageSource = spendguardv1.UsageSource_USAGE_SOURCE_UNSPECIFIED
	require.NoError(t, l.Export(context.Background(), events(counted, estimated, none)))

	ctx := context.Background()
	_, err := l.pool.Exec(ctx, `INSERT INTO spendguard_ledger (request_id, start_time, end_time, endpoint, scope,
		requested_model, served_model, response_model, prompt_tokens, cached_prompt_tokens, completion_tokens,
		reasoning_tokens, cost_nano_usd, input_cost_nano_usd, output_cost_nano_usd, estimated, decision,
		reject_reason, budget, upstream_status, stream, aborted, duration_seconds, processor_seconds)
		VALUES ('req-old', now(), now(), '/v1/completions', '{}', 'm', 'm', 'm', 1, 0, 1, 0, 1, 1, 0, false,
		'allowed', '', '', 200, false, false, 0, 0)`)
	require.NoError(t, err, "a row as written before the column existed")

	got := map[string]*string{}
	rows, err := l.pool.Query(ctx, "SELECT request_id, usage_source FROM spendguard_ledger")
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var src *string
		require.NoError(t, rows.Scan(&id, &src))
		got[id] = src
	}
	require.NoError(t, rows.Err())
	word := func(id string) string {
		if got[id] == nil {
			return "NULL"
		}
		return *got[id]
	}
	assert.Equal(t, "counted", word("req-counted"))
	assert.Equal(t, "estimated", word("req-estimated"))
	assert.Equal(t, "none", word("req-none"))
	assert.Equal(t, "NULL", word("req-old"))

	_, err = l.pool.Exec(ctx, "UPDATE spendguard_ledger SET usage_source = 'guessed' WHERE request_id = 'req-old'")
	assert.Error(t, err, "the check constraint allows only the four words")
}
