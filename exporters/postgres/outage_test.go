package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"
	"go.uber.org/zap/zaptest/observer"

	"github.com/spendguard/spendguard/exporters/sink"
	"github.com/spendguard/spendguard/test/pgtest"
)

// recordSteadily records a row every interval from its own goroutine
// until stop is closed, and returns the ids it recorded.
func recordSteadily(l *Ledger, every time.Duration, stop <-chan struct{}) func() []string {
	var mu sync.Mutex
	var recorded []string
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(every)
		defer t.Stop()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			id := fmt.Sprintf("steady-%06d", i)
			l.Record(&sink.Event{Report: report(id, time.Duration(i)*time.Millisecond, map[string]string{"tenant": "acme"})})
			mu.Lock()
			recorded = append(recorded, id)
			mu.Unlock()
		}
	}()
	return func() []string {
		<-done
		mu.Lock()
		defer mu.Unlock()
		return recorded
	}
}

// ledgerIDs returns every request id in the ledger and how many rows
// there are.
func ledgerIDs(t *testing.T, dsn string) (map[string]bool, int) {
	t.Helper()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	defer conn.Close(context.Background())
	rows, err := conn.Query(context.Background(), "SELECT request_id FROM spendguard_ledger")
	require.NoError(t, err)
	list, err := pgx.CollectRows(rows, pgx.RowTo[string])
	require.NoError(t, err)
	set := map[string]bool{}
	for _, id := range list {
		set[id] = true
	}
	return set, len(list)
}

func missing(recorded []string, have map[string]bool) []string {
	var out []string
	for _, id := range recorded {
		if !have[id] {
			out = append(out, id)
		}
	}
	return out
}

// An outage of the ledger's PostgreSQL, stopped and crashed under a
// steady stream of rows, loses none and duplicates none, and is logged
// once when it starts and once when it ends.
func TestAnOutageUnderLoadLosesNoRowAndIsLoggedOnce(t *testing.T) {
	for _, how := range []string{"stop", "kill"} {
		t.Run(how, func(t *testing.T) {
			t.Parallel()
			srv := pgtest.StartServer(t)
			core, logs := observer.New(zapcore.InfoLevel)
			l, err := OpenSpooled(Config{DSN: srv.DSN(), BatchSize: 16, Spool: SpoolConfig{Dir: t.TempDir()}}, nil, zap.New(core))
			require.NoError(t, err)
			defer l.Close(context.Background())

			stop := make(chan struct{})
			recorded := recordSteadily(l, 2*time.Millisecond, stop)
			require.Eventually(t, func() bool { return l.SpoolStats().Shipped > 50 }, 20*time.Second, 10*time.Millisecond)
			if how == "stop" {
				srv.Stop()
			} else {
				srv.Kill()
			}
			require.Eventually(t, func() bool { return !l.SpoolStats().Writable }, 20*time.Second, 10*time.Millisecond)
			waited := l.SpoolStats().Rows
			require.Eventually(t, func() bool { return l.SpoolStats().Rows > waited+100 }, 20*time.Second, 10*time.Millisecond,
				"rows keep being recorded, and wait in the spool, during the outage")
			srv.Start()
			time.Sleep(200 * time.Millisecond)
			close(stop)
			ids := recorded()
			waitShipped(t, l)

			have, n := ledgerIDs(t, srv.DSN())
			assert.Empty(t, missing(ids, have), "rows recorded and not in the ledger")
			assert.Equal(t, len(ids), n, "one row per recorded id, no duplicates")
			assert.Zero(t, l.SpoolStats().Rows)
			assert.True(t, l.SpoolStats().Writable)

			down := logs.FilterMessageSnippet("PostgreSQL cannot be written").Len()
			up := logs.FilterMessageSnippet("PostgreSQL written again").Len()
			assert.Equal(t, 1, down, "one line when the outage starts")
			assert.Equal(t, 1, up, "one line when it ends")
		})
	}
}

// Rows spooled while PostgreSQL never came, then Close: the next process
// ships them once it does.
func TestRowsOfAnOutageOutliveTheProcessAndShipAfterTheRestart(t *testing.T) {
	srv := pgtest.StartServer(t)
	dir := t.TempDir()
	first, err := OpenSpooled(Config{DSN: srv.DSN(), Spool: SpoolConfig{Dir: dir}}, nil, nil)
	require.NoError(t, err)
	waitShipped(t, first) // connected, migrated
	srv.Stop()
	var recorded atomic.Int64
	for _, id := range ids("during", 120) {
		first.Record(&sink.Event{Report: report(id, 0, nil)})
		recorded.Add(1)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	require.NoError(t, first.Close(ctx))
	cancel()

	srv.Start()
	second := openSpooled(t, Config{DSN: srv.DSN(), Spool: SpoolConfig{Dir: dir}})
	waitShipped(t, second)
	have, n := ledgerIDs(t, srv.DSN())
	assert.Equal(t, 120, n)
	assert.Empty(t, missing(ids("during", 120), have))
	assert.True(t, strings.HasSuffix(second.w.slotDir, "0"), "the same slot, the same rows")
}
