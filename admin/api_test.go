package admin_test

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/memstore"
	"github.com/spendguard/spendguard/internal/money"
)

const budgetsYAML = `
budgets:
  - name: tenant-monthly
    match: {tenant: "*"}
    period: month
    timezone: Europe/Berlin
    soft_usd: 800
    hard_usd: 1000
  - name: acme-monthly
    match: {tenant: acme}
    period: month
    hard_usd: 5000
  - name: fleet-daily
    period: day
    hard_usd: 2000
  - name: runaway-agent-guard
    match: {user: "*"}
    rolling: 10m
    hard_usd: 5
  - name: lifetime
    period: total
    soft_usd: 10
`

// rig is an API on a memory store with a settable clock.
type rig struct {
	p     *budget.Policies
	eng   *budget.Engine
	now   atomic.Pointer[time.Time]
	srv   *httptest.Server
	seeds int
}

func newRig(t *testing.T, token string) *rig {
	t.Helper()
	var file struct {
		Budgets []budget.Config `yaml:"budgets"`
	}
	require.NoError(t, yaml.Unmarshal([]byte(budgetsYAML), &file))
	p, err := budget.Compile(file.Budgets, budget.Limits{})
	require.NoError(t, err)
	g := &rig{p: p}
	g.set(time.Date(2026, 11, 15, 10, 20, 0, 0, time.UTC))
	store := memstore.New()
	g.eng = budget.NewEngine(store, g.clock)
	api := admin.New(admin.Options{
		Policies: func() (*budget.Policies, []string) { return p, []string{"model", "tenant", "user"} },
		Engine:   g.eng, Lister: store, Now: g.clock,
	})
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })
	api.Register(mux)
	g.srv = httptest.NewServer(admin.Guard(admin.Tokens{Admin: token}, mux))
	t.Cleanup(g.srv.Close)
	return g
}

func (g *rig) clock() time.Time    { return *g.now.Load() }
func (g *rig) set(t time.Time)     { g.now.Store(&t) }
func (g *rig) add(d time.Duration) { g.set(g.clock().Add(d)) }

// seed commits amount on every budget that applies to dims (past caps
// too: a reservation of 0 always fits until a cap is reached).
func (g *rig) seed(t *testing.T, dims map[string]string, amount string) {
	t.Helper()
	res := g.reserve(t, dims, "0")
	require.NoError(t, g.eng.Settle(context.Background(), res, usd(amount)))
}

func (g *rig) reserve(t *testing.T, dims map[string]string, amount string) *budget.Reservation {
	t.Helper()
	g.seeds++
	res, rej, err := g.eng.Reserve(context.Background(), g.p, g.p.Applicable(dims), "m", usd(amount), fmt.Sprint("seed-", g.seeds))
	require.NoError(t, err)
	require.Nil(t, rej)
	return res
}

func usd(s string) money.Nano {
	n, err := money.ParseUSD(s)
	if err != nil {
		panic(err)
	}
	return n
}

func (g *rig) get(t *testing.T, path string, header ...string) (int, http.Header, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, g.srv.URL+path, nil)
	require.NoError(t, err)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, resp.Header, string(b)
}

func TestBudgetsJSONAgainstSeededState(t *testing.T) {
	g := newRig(t, "")
	g.seed(t, map[string]string{"tenant": "globex", "user": "bob"}, "850.5")
	g.seed(t, map[string]string{"tenant": "acme", "user": "alice"}, "1.25")
	g.reserve(t, map[string]string{"tenant": "initech", "user": "carol"}, "0.5") // in flight

	status, hdr, body := g.get(t, "/v1/budgets")
	require.Equal(t, http.StatusOK, status, body)
	assert.Equal(t, "application/json", hdr.Get("content-type"))
	assert.JSONEq(t, `{"budgets":[
	 {"budget":"tenant-monthly","scope":{"tenant":"globex"},"period":"month",
	  "period_start":"2026-11-01T00:00:00+01:00","resets_at":"2026-12-01T00:00:00+01:00",
	  "spent_usd":850.500000,"reserved_usd":0.000000,"soft_usd":800.000000,"hard_usd":1000.000000,
	  "remaining_usd":149.500000,"state":"soft","burn_usd_per_hour":null,"burn_window_seconds":0,"exhausts_at":null},
	 {"budget":"tenant-monthly","scope":{"tenant":"initech"},"period":"month",
	  "period_start":"2026-11-01T00:00:00+01:00","resets_at":"2026-12-01T00:00:00+01:00",
	  "spent_usd":0.000000,"reserved_usd":0.500000,"soft_usd":800.000000,"hard_usd":1000.000000,
	  "remaining_usd":999.500000,"state":"ok","burn_usd_per_hour":null,"burn_window_seconds":0,"exhausts_at":null},
	 {"budget":"acme-monthly","scope":{"tenant":"acme"},"period":"month",
	  "period_start":"2026-11-01T00:00:00Z","resets_at":"2026-12-01T00:00:00Z",
	  "spent_usd":1.250000,"reserved_usd":0.000000,"soft_usd":null,"hard_usd":5000.000000,
	  "remaining_usd":4998.750000,"state":"ok","burn_usd_per_hour":null,"burn_window_seconds":0,"exhausts_at":null},
	 {"budget":"fleet-daily","scope":{},"period":"day",
	  "period_start":"2026-11-15T00:00:00Z","resets_at":"2026-11-16T00:00:00Z",
	  "spent_usd":851.750000,"reserved_usd":0.500000,"soft_usd":null,"hard_usd":2000.000000,
	  "remaining_usd":1147.750000,"state":"ok","burn_usd_per_hour":null,"burn_window_seconds":0,"exhausts_at":null},
	 {"budget":"runaway-agent-guard","scope":{"user":"alice"},"period":"rolling","window_seconds":600,
	  "period_start":"2026-11-15T10:10:00Z","resets_at":"2026-11-15T10:31:00Z",
	  "spent_usd":1.250000,"reserved_usd":0.000000,"soft_usd":null,"hard_usd":5.000000,
	  "remaining_usd":3.750000,"state":"ok","burn_usd_per_hour":7.500000,"burn_window_seconds":600,"exhausts_at":null},
	 {"budget":"runaway-agent-guard","scope":{"user":"bob"},"period":"rolling","window_seconds":600,
	  "period_start":"2026-11-15T10:10:00Z","resets_at":"2026-11-15T10:31:00Z",
	  "spent_usd":850.500000,"reserved_usd":0.000000,"soft_usd":null,"hard_usd":5.000000,
	  "remaining_usd":0.000000,"state":"hard","burn_usd_per_hour":5103.000000,"burn_window_seconds":600,"exhausts_at":null},
	 {"budget":"runaway-agent-guard","scope":{"user":"carol"},"period":"rolling","window_seconds":600,
	  "period_start":"2026-11-15T10:10:00Z","resets_at":"2026-11-15T10:31:00Z",
	  "spent_usd":0.000000,"reserved_usd":0.500000,"soft_usd":null,"hard_usd":5.000000,
	  "remaining_usd":4.500000,"state":"ok","burn_usd_per_hour":0.000000,"burn_window_seconds":600,"exhausts_at":null},
	 {"budget":"lifetime","scope":{},"period":"total","period_start":null,"resets_at":null,
	  "spent_usd":851.750000,"reserved_usd":0.500000,"soft_usd":10.000000,"hard_usd":null,
	  "remaining_usd":null,"state":"soft","burn_usd_per_hour":null,"burn_window_seconds":0,"exhausts_at":null}
	]}`, body)
	assert.Contains(t, body, `"spent_usd":850.500000,`, "USD amounts are JSON numbers with exactly 6 decimals")

	// Half an hour later, with $10 more: the burn rate comes from the
	// sample the first answer took, and projects the exhaustion.
	g.add(30 * time.Minute)
	g.seed(t, map[string]string{"tenant": "globex", "user": "bob"}, "10")
	status, _, body = g.get(t, "/v1/budgets/tenant-monthly?tenant=globex")
	require.Equal(t, http.StatusOK, status, body)
	var resp admin.Response
	require.NoError(t, json.Unmarshal([]byte(body), &resp))
	require.Len(t, resp.Budgets, 1)
	s := resp.Budgets[0]
	assert.Equal(t, json.Number("860.500000"), s.SpentUSD)
	require.NotNil(t, s.BurnUSDPerHour)
	assert.Equal(t, json.Number("20.000000"), *s.BurnUSDPerHour)
	assert.Equal(t, int64(1800), s.BurnWindowSeconds)
	require.NotNil(t, s.ExhaustsAt)
	assert.Equal(t, "2026-11-15T18:48:30+01:00", *s.ExhaustsAt, "139.5 USD left at 20 USD/h: 6h58m30s after 10:50Z")
}

func TestBudgetsFiltersAndErrors(t *testing.T) {
	g := newRig(t, "")
	g.seed(t, map[string]string{"tenant": "globex", "user": "bob"}, "2")
	g.seed(t, map[string]string{"tenant": "acme", "user": "alice"}, "1")
	scopes := func(body string) []string {
		var resp admin.Response
		require.NoError(t, json.Unmarshal([]byte(body), &resp), body)
		out := []string{}
		for _, s := range resp.Budgets {
			out = append(out, s.Budget+" "+admin.ScopeText(s.Scope)+" "+string(s.SpentUSD))
		}
		return out
	}
	ok := []struct{ path, want string }{
		{"/v1/budgets?tenant=globex", `["tenant-monthly tenant=globex 2.000000"]`},
		{"/v1/budgets?tenant=acme", `["acme-monthly tenant=acme 1.000000"]`},
		{"/v1/budgets?tenant=newco", `["tenant-monthly tenant=newco 0.000000"]`},
		{"/v1/budgets?user=bob&tenant=globex", `[]`},
		{"/v1/budgets?model=m", `[]`},
		{"/v1/budgets/runaway-agent-guard", `["runaway-agent-guard user=alice 1.000000","runaway-agent-guard user=bob 2.000000"]`},
		{"/v1/budgets/fleet-daily", `["fleet-daily all 3.000000"]`},
		{"/v1/budgets/fleet-daily?tenant=acme", `[]`},
	}
	for _, tc := range ok {
		status, _, body := g.get(t, tc.path)
		require.Equal(t, http.StatusOK, status, tc.path)
		got, _ := json.Marshal(scopes(body))
		assert.JSONEq(t, tc.want, string(got), tc.path)
	}

	bad := []struct {
		path   string
		status int
		code   string
		msg    string
	}{
		{"/v1/budgets/nope", 404, "budget_not_found", `no budget named "nope"`},
		{"/v1/budgets?team=search", 400, "invalid_filter", `filter "team": not a dimension (dimensions: model, tenant, user)`},
		{"/v1/budgets?tenant=", 400, "invalid_filter", `filter "tenant": empty value`},
		{"/v1/budgets?tenant=a&tenant=b", 400, "invalid_filter", `filter "tenant": given 2 times`},
	}
	for _, tc := range bad {
		status, hdr, body := g.get(t, tc.path)
		assert.Equal(t, tc.status, status, tc.path)
		assert.Equal(t, "application/json", hdr.Get("content-type"))
		var e admin.ErrorBody
		require.NoError(t, json.Unmarshal([]byte(body), &e), body)
		assert.Equal(t, tc.code, e.Error.Code, tc.path)
		assert.Contains(t, e.Error.Message, tc.msg, tc.path)
	}
}

func TestTokenGuardsV1Only(t *testing.T) {
	g := newRig(t, "s3cret")
	for _, tc := range []struct {
		name, path, auth string
		status           int
	}{
		{"no header", "/v1/budgets", "", 401},
		{"wrong token", "/v1/budgets", "Bearer s3cre", 401},
		{"longer token", "/v1/budgets", "Bearer s3cret!", 401},
		{"other scheme", "/v1/budgets", "Basic czNjcmV0", 401},
		{"bare token", "/v1/budgets", "s3cret", 401},
		{"empty bearer", "/v1/budgets", "Bearer ", 401},
		{"unknown /v1 path", "/v1/nope", "", 401},
		{"right token", "/v1/budgets", "Bearer s3cret", 200},
		{"scheme in any case", "/v1/budgets/fleet-daily", "bearer s3cret", 200},
		{"health stays open", "/healthz", "", 200},
		{"dashboard stays open", "/", "", 200},
		{"dashboard files stay open", "/dashboard/dashboard.js", "", 200},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, hdr, body := g.get(t, tc.path, "Authorization", tc.auth)
			assert.Equal(t, tc.status, status, body)
			if tc.status != 401 {
				assert.Empty(t, hdr.Get("WWW-Authenticate"))
				return
			}
			assert.Equal(t, `Bearer realm="spendguard"`, hdr.Get("WWW-Authenticate"))
			var e admin.ErrorBody
			require.NoError(t, json.Unmarshal([]byte(body), &e), body)
			assert.Equal(t, "unauthorized", e.Error.Code)
			assert.NotContains(t, body, "s3cret", "the token is never echoed")
		})
	}
}

func TestDashboardIsServedFromTheBinary(t *testing.T) {
	g := newRig(t, "")
	status, hdr, body := g.get(t, "/")
	require.Equal(t, http.StatusOK, status)
	assert.Contains(t, hdr.Get("content-type"), "text/html")
	assert.Contains(t, hdr.Get("content-security-policy"), "default-src 'none'")
	assert.Contains(t, body, `<script src="dashboard/dashboard.js" defer></script>`)
	assert.NotContains(t, body, "https://", "nothing is loaded from elsewhere")
	for _, f := range []string{"/dashboard/dashboard.js", "/dashboard/dashboard.css"} {
		status, _, body := g.get(t, f)
		assert.Equal(t, http.StatusOK, status, f)
		assert.NotContains(t, body, "https://", f)
		assert.NotContains(t, body, "innerHTML", "%s: server values are only ever set as text", f)
	}
	status, _, _ = g.get(t, "/nope")
	assert.Equal(t, http.StatusNotFound, status)
}

func TestBudgetsWithoutConfiguration(t *testing.T) {
	api := admin.New(admin.Options{Policies: func() (*budget.Policies, []string) { return nil, nil }})
	mux := http.NewServeMux()
	api.Register(mux)
	for _, path := range []string{"/v1/budgets", "/v1/budgets/x"} {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		assert.Equal(t, http.StatusServiceUnavailable, rec.Code, path)
		assert.Contains(t, rec.Body.String(), `"code":"no_configuration"`)
	}
}
