package exporters_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/exporters"
	"github.com/spendguard/spendguard/exporters/postgres"
	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/exporters/sink/sinktest"
	"github.com/spendguard/spendguard/test/pgtest"
)

// TestTheLedgerGetsEveryReport: with the ledger passed in like any sink,
// every report the fan-out takes becomes one ledger row, batched behind
// its own queue, and Shutdown flushes them and closes the ledger.
func TestTheLedgerGetsEveryReport(t *testing.T) {
	dsn := pgtest.NewDatabase(t)
	ledger, err := postgres.Open(postgres.Config{DSN: dsn}, nil, nil)
	require.NoError(t, err)
	f, err := exporters.New(exporters.Config{BatchSize: 16}, nil, exporters.Named{Name: "postgres", Exporter: ledger})
	require.NoError(t, err)
	for i := range 300 {
		f.Report(&sink.Event{Report: sinktest.Report(i)})
	}
	require.NoError(t, f.Shutdown(context.Background()))
	st := f.Stats()
	require.Len(t, st, 1)
	assert.Equal(t, "postgres", st[0].Exporter)
	assert.Equal(t, uint64(300), st[0].Sent)

	l, err := postgres.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer l.Close(context.Background())
	var n int
	require.NoError(t, l.Pool().QueryRow(context.Background(), "SELECT count(DISTINCT request_id) FROM spendguard_ledger").Scan(&n))
	assert.Equal(t, 300, n)
}
