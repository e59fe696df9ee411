package postgres

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// TestCutColumn: a report of a stream spendguard ended at a cap is marked
// cut in its row; other rows, and rows written before the column existed,
// read false.
func TestCutColumn(t *testing.T) {
	l := openLedger(t)
	cut := report("req-cut", 0, map[string]string{"tenant": "acme"})
	cut.Cut, cut.Stream, cut.Budget = true, true, "acme-daily"
	whole := report("req-whole", 0, map[string]string{"tenant": "acme"})
	require.NoError(t, l.Export(context.Background(), events(cut, whole)))

	ctx := context.Background()
	_, err := l.pool.Exec(ctx, `INSERT INTO spendguard_ledger (request_id, start_time, end_time, endpoint, scope,
		requested_model, served_model, response_model, prompt_tokens, cached_prompt_tokens, completion_tokens,
		reasoning_tokens, cost_nano_usd, input_cost_nano_usd, output_cost_nano_usd, estimated, decision,
		reject_reason, budget, upstream_status, stream, aborted, duration_seconds, processor_seconds)
		VALUES ('req-old', now(), now(), '/v1/completions', '{}', 'm', 'm', 'm', 1, 0, 1, 0, 1, 1, 0, false,
		'allowed', '', '', 200, false, false, 0, 0)`)
	require.NoError(t, err, "a row as written before the column existed")

	got := map[string]bool{}
	rows, err := l.pool.Query(ctx, "SELECT request_id, cut FROM spendguard_ledger")
	require.NoError(t, err)
	for rows.Next() {
		var id string
		var c bool
		require.NoError(t, rows.Scan(&id, &c))
		got[id] = c
	}
	require.NoError(t, rows.Err())
	assert.Equal(t, map[string]bool{"req-cut": true, "req-whole": false, "req-old": false}, got)
}
