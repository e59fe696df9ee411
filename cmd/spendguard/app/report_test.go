package app

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/spendguard/spendguard/exporters/postgres"
	"github.com/spendguard/spendguard/exporters/sink"
	spendguardv1 "github.com/spendguard/spendguard/proto/spendguard/v1"
	"github.com/spendguard/spendguard/test/pgtest"
)

func TestSpendQueryFromText(t *testing.T) {
	now := time.Date(2026, 11, 25, 10, 30, 0, 0, time.UTC) // a Wednesday
	q, err := spendQuery("tenant, use_case", "month", "", "", "Europe/Berlin", now)
	require.NoError(t, err)
	assert.Equal(t, []string{"tenant", "use_case"}, q.GroupBy)
	assert.Equal(t, "2026-11-01T00:00:00+01:00", q.From.Format(time.RFC3339), "the current month in Berlin")
	assert.Equal(t, now, q.To)

	q, err = spendQuery("", "week", "", "", "", now)
	require.NoError(t, err)
	assert.Equal(t, "2026-11-23T00:00:00Z", q.From.Format(time.RFC3339), "Monday")
	q, err = spendQuery("", "total", "", "2026-11-01", "America/New_York", now)
	require.NoError(t, err)
	assert.Equal(t, time.Unix(0, 0).UTC(), q.From)
	assert.Equal(t, "2026-11-01T00:00:00-04:00", q.To.Format(time.RFC3339))
	q, err = spendQuery("", "day", "2026-10", "2026-11-25T08:00:00Z", "", now)
	require.NoError(t, err)
	assert.Equal(t, time.Date(2026, 10, 1, 0, 0, 0, 0, time.UTC), q.From)

	_, err = spendQuery("a,a", "year", "yesterday", "", "Mars/Olympus", now)
	require.Error(t, err)
	for _, want := range []string{`tz: "Mars/Olympus"`, `from: "yesterday"`} {
		assert.Contains(t, err.Error(), want)
	}
	_, err = spendQuery("a,a", "year", "", "", "", now)
	assert.ErrorContains(t, err, `period "year"`)
	assert.ErrorContains(t, err, `"a" twice`)
}

// seedLedger writes reports for acme and initech around the end of
// October into a fresh ledger and returns its DSN.
func seedLedger(t *testing.T) string {
	t.Helper()
	dsn := pgtest.NewDatabase(t)
	l, err := postgres.Open(postgres.Config{DSN: dsn}, nil, nil)
	require.NoError(t, err)
	defer l.Close(context.Background())
	var evs []*sink.Event
	for i, s := range []struct {
		when, tenant string
		cost         int64
	}{
		{"2026-10-31T22:30:00Z", "acme", 1_000_000},    // October in Berlin
		{"2026-10-31T23:30:00Z", "acme", 20_000_000},   // November in Berlin
		{"2026-11-02T12:00:00Z", "initech", 300_000},   // November
		{"2026-11-03T12:00:00Z", "initech", 4_000_001}, // November
	} {
		start, _ := time.Parse(time.RFC3339, s.when)
		evs = append(evs, &sink.Event{Report: &spendguardv1.CostReport{
			RequestId: fmt.Sprint("r", i), StartTime: timestamppb.New(start), EndTime: timestamppb.New(start.Add(time.Second)),
			Endpoint: "/v1/chat/completions", Scope: map[string]string{"tenant": s.tenant}, RequestedModel: "m", ServedModel: "m",
			PromptTokens: 10, CompletionTokens: 5, CostNanoUsd: s.cost, Decision: spendguardv1.Decision_DECISION_ALLOWED, UpstreamStatus: 200,
		}})
	}
	require.NoError(t, l.Export(context.Background(), evs))
	_, err = l.Pool().Exec(context.Background(), `INSERT INTO spendguard_reconciliation VALUES
		('http://vllm:8000/metrics', 'm', '2026-11-02T00:00:00Z', '2026-11-02T00:01:00Z', 100, 50, 90, 50)`)
	require.NoError(t, err)
	return dsn
}

func runReport(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code := Main(context.Background(), append([]string{"report"}, args...), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestReportCommand(t *testing.T) {
	dsn := seedLedger(t)
	code, out, errOut := runReport(t, "--dsn", dsn, "--group-by", "tenant", "--period", "month",
		"--from", "2026-10", "--to", "2026-12", "--tz", "Europe/Berlin")
	require.Equal(t, 0, code, errOut)
	lines := strings.Split(out, "\n")
	assert.Equal(t, "spend from 2026-10-01T00:00:00+02:00 to 2026-12-01T00:00:00+01:00, by month in Europe/Berlin, grouped by tenant", lines[0])
	assert.Regexp(t, `^PERIOD\s+TENANT\s+REQUESTS\s+REJECTED\s+PROMPT_TOKENS\s+COMPLETION_TOKENS\s+COST_USD\s+UNMETERED_USD\s+ESTIMATED$`, lines[2])
	assert.Regexp(t, `^2026-10\s+acme\s+1\s+0\s+10\s+5\s+0\.001000\s+0\.000000\s+0$`, lines[3])
	assert.Regexp(t, `^2026-11\s+acme\s+1\s+0\s+10\s+5\s+0\.020000\s+`, lines[4])
	assert.Regexp(t, `^2026-11\s+initech\s+2\s+0\s+20\s+10\s+0\.004300\s+`, lines[5])
	assert.Regexp(t, `^TOTAL\s+4\s+0\s+40\s+20\s+0\.025300\s+`, lines[6])
	assert.Contains(t, out, "reconciliation with vLLM")
	assert.Regexp(t, `http://vllm:8000/metrics\s+m\s+2026-11-02T00:00:00Z\s+2026-11-02T00:01:00Z\s+1\s+100\s+90\s+10\s+50\s+50\s+0`, out)

	code, out, errOut = runReport(t, "--dsn", dsn, "--group-by", "tenant", "--period", "month", "--from", "2026-10", "--to", "2026-12", "--csv")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, `period_start,tenant,requests,rejected,prompt_tokens,completion_tokens,cost_usd,unmetered_usd,estimated,cached_prompt_tokens,cost_nano_usd,unmetered_nano_usd
2026-10-01T00:00:00Z,acme,2,0,20,10,0.021000000,0.000000000,0,0,21000000,0
2026-11-01T00:00:00Z,initech,2,0,20,10,0.004300001,0.000000000,0,0,4300001,0
`, out, "in UTC both acme requests are October's; money exact")

	code, out, errOut = runReport(t, "--dsn", dsn, "--drift", "--csv", "--period", "total")
	require.Equal(t, 0, code, errOut)
	assert.Equal(t, `upstream,model,window_start,window_end,windows,upstream_prompt_tokens,recorded_prompt_tokens,prompt_drift_tokens,upstream_generation_tokens,recorded_generation_tokens,generation_drift_tokens
http://vllm:8000/metrics,m,2026-11-02T00:00:00Z,2026-11-02T00:01:00Z,1,100,90,10,50,50,0
`, out)

	code, _, errOut = runReport(t, "--dsn", "postgres://u:hunter2@127.0.0.1:1/db?connect_timeout=2")
	assert.Equal(t, 1, code)
	assert.Contains(t, errOut, "cannot reach PostgreSQL at 127.0.0.1:1/db")
	assert.NotContains(t, errOut, "hunter2")

	code, _, errOut = runReport(t, "--period", "year")
	assert.Equal(t, 2, code)
	assert.Contains(t, errOut, "--dsn is required")
	assert.Contains(t, errOut, `period "year"`)
}

// TestSpendEndpoint: GET /v1/spend answers from the ledger behind the
// admin tokens (admin.token or admin.read_token); without a ledger it is
// 404.
func TestSpendEndpoint(t *testing.T) {
	dsn := seedLedger(t)
	cfg := string(DefaultConfig) + fmt.Sprintf("\nexporters:\n  postgres:\n    dsn: %q\nadmin:\n  token: s3cret\n  read_token: r3ad\n", dsn)
	if strings.Contains(string(DefaultConfig), "\nadmin:") || strings.Contains(string(DefaultConfig), "\nexporters:") {
		t.Fatal("the default configuration grew an admin or exporters section: adapt this test")
	}
	path := filepath.Join(t.TempDir(), "spendguard.yaml")
	require.NoError(t, os.WriteFile(path, []byte(cfg), 0o600))
	in, err := Start(ServeOptions{ConfigPath: path, GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", LogOutput: io.Discard})
	require.NoError(t, err)
	defer in.Shutdown()

	get := func(query, token string) (int, spendResponse) {
		req, err := http.NewRequest(http.MethodGet, "http://"+in.AdminAddr()+"/v1/spend?"+query, nil)
		require.NoError(t, err)
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		resp, err := http.DefaultClient.Do(req)
		require.NoError(t, err)
		defer resp.Body.Close()
		var body spendResponse
		_ = json.NewDecoder(resp.Body).Decode(&body)
		return resp.StatusCode, body
	}
	code, _ := get("period=total&from=2026-10-01", "")
	assert.Equal(t, http.StatusUnauthorized, code)
	code, body := get("group_by=tenant&period=month&from=2026-10&to=2026-12&tz=Europe/Berlin", "s3cret")
	require.Equal(t, http.StatusOK, code)
	require.Len(t, body.Rows, 3)
	assert.Equal(t, map[string]string{"tenant": "initech"}, body.Rows[2].Groups)
	assert.Equal(t, "0.004300", string(body.Rows[2].CostUSD))
	assert.Equal(t, int64(4_300_001), body.Rows[2].CostNanoUSD)
	assert.Equal(t, "2026-11-01T00:00:00+01:00", body.Rows[2].PeriodStart.Format(time.RFC3339))
	assert.Equal(t, "0.025300", string(body.Total.CostUSD))
	require.Len(t, body.Drift, 1)
	assert.Equal(t, int64(10), body.Drift[0].PromptDriftTokens)
	code, _ = get("period=fortnight", "s3cret")
	assert.Equal(t, http.StatusBadRequest, code)
	code, byReader := get("group_by=tenant&period=month&from=2026-10&to=2026-12&tz=Europe/Berlin", "r3ad")
	require.Equal(t, http.StatusOK, code, "the read token reads the ledger too")
	assert.Equal(t, body, byReader)

	plain := startDefault(t)
	resp, err := http.Get("http://" + plain.AdminAddr() + "/v1/spend")
	require.NoError(t, err)
	resp.Body.Close()
	assert.Equal(t, http.StatusNotFound, resp.StatusCode)
}

func startDefault(t *testing.T) *Instance {
	t.Helper()
	in, err := Start(ServeOptions{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", LogOutput: io.Discard, ShutdownTimeout: 10 * time.Second})
	require.NoError(t, err)
	t.Cleanup(func() { in.Shutdown() })
	return in
}
