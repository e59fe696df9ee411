package app_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
	"github.com/getkin/kin-openapi/routers/gorillamux"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/test/pgtest"
	"github.com/spendguard/spendguard/test/redistest"
)

// apiDoc is the admin server's OpenAPI description, loaded and validated,
// with a router over its paths.
type apiDoc struct {
	doc    *openapi3.T
	router routers.Router
}

// plainBodies lets openapi3filter read the non-JSON answers (metrics,
// the dashboard's files) as strings; the registry is kin-openapi's own.
var plainBodies sync.Once

func loadAPIDoc(t *testing.T) *apiDoc {
	t.Helper()
	plainBodies.Do(func() {
		for _, ct := range []string{"text/html", "text/css", "text/javascript", "application/openmetrics-text"} {
			openapi3filter.RegisterBodyDecoder(ct, openapi3filter.PlainBodyDecoder)
		}
	})
	loader := openapi3.NewLoader()
	doc, err := loader.LoadFromData(admin.OpenAPI())
	require.NoError(t, err)
	require.NoError(t, doc.Validate(loader.Context), "admin/openapi.json is not valid OpenAPI 3.0")
	require.Equal(t, "3.0.3", doc.OpenAPI)
	router, err := gorillamux.NewRouter(doc)
	require.NoError(t, err)
	return &apiDoc{doc: doc, router: router}
}

// bearerForm is the AuthenticationFunc of request validation: the
// document can only say a bearer token is sent, not whether it is the
// right one (the server's 401 for a wrong one is a documented answer).
func bearerForm(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return fmt.Errorf("security scheme %s/%s: the test knows only http bearer", s.Type, s.Scheme)
	}
	scheme, cred, _ := strings.Cut(in.RequestValidationInput.Request.Header.Get("Authorization"), " ")
	if !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(cred) == "" {
		return fmt.Errorf("no bearer token")
	}
	return nil
}

// exchange is one request sent to a running admin server and what the
// description should make of it.
type exchange struct {
	name   string
	base   string // http://host:port
	method string
	path   string // with the query
	token  string
	accept string
	status int
	// invalid: the description itself rejects the request (no token
	// where one is required, a parameter outside its schema).
	invalid bool
}

// check sends e, asserts the status, validates the request against the
// description (it must be accepted unless e.invalid, and rejected when
// e.invalid) and the answer (every answer must be described: status,
// headers, content type, body).
func (d *apiDoc) check(t *testing.T, e exchange) {
	t.Helper()
	method := e.method
	if method == "" {
		method = http.MethodGet
	}
	req, err := http.NewRequest(method, e.base+e.path, nil)
	require.NoError(t, err)
	if e.token != "" {
		req.Header.Set("Authorization", "Bearer "+e.token)
	}
	if e.accept != "" {
		req.Header.Set("Accept", e.accept)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	body, err := io.ReadAll(resp.Body)
	resp.Body.Close()
	require.NoError(t, err)
	require.Equal(t, e.status, resp.StatusCode, "%s %s: %s", method, e.path, body)
	checkMoney(t, resp.Header.Get("content-type"), body)

	route, params, err := d.router.FindRoute(req)
	if err != nil { // not an operation of the description: only its 404 and 405 (and 401 under /v1/) may answer
		name := map[int]string{http.StatusNotFound: "NotFound", http.StatusMethodNotAllowed: "MethodNotAllowed", http.StatusUnauthorized: "Unauthorized"}[resp.StatusCode]
		require.NotEmpty(t, name, "%s %s is not in the description (%v) but was answered %d", method, e.path, err, resp.StatusCode)
		d.checkComponentResponse(t, name, resp.Header, body)
		return
	}
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerForm, MultiError: true}}
	reqErr := openapi3filter.ValidateRequest(context.Background(), in)
	if e.invalid {
		assert.Error(t, reqErr, "the description accepts %s %s, which the test calls invalid", method, e.path)
	} else {
		assert.NoError(t, reqErr, "the description rejects %s %s", method, e.path)
	}
	out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
		Options: &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true}}
	out.SetBodyBytes(body)
	assert.NoError(t, openapi3filter.ValidateResponse(context.Background(), out), "%s %s answered %d: %s", method, e.path, resp.StatusCode, body)
}

// checkComponentResponse validates an answer against a response of
// components.responses (its required headers and JSON body).
func (d *apiDoc) checkComponentResponse(t *testing.T, name string, h http.Header, body []byte) {
	t.Helper()
	ref := d.doc.Components.Responses[name]
	require.NotNil(t, ref, "components.responses.%s", name)
	for k, hr := range ref.Value.Headers {
		if hr.Value.Required {
			assert.NotEmpty(t, h.Get(k), "header %s of %s", k, name)
			assert.NoError(t, hr.Value.Schema.Value.VisitJSON(h.Get(k)), "header %s of %s", k, name)
		}
	}
	mt := ref.Value.Content.Get(h.Get("content-type"))
	require.NotNil(t, mt, "%s has no content %q", name, h.Get("content-type"))
	var v any
	require.NoError(t, json.Unmarshal(body, &v), string(body))
	assert.NoError(t, mt.Schema.Value.VisitJSON(v), "%s: %s", name, body)
}

// moneyKey names the JSON fields that are US dollars (but for the exact
// nano-USD integers, *_nano_usd).
var moneyKey = regexp.MustCompile(`_usd(_per_hour)?$`)

// checkMoney: every USD field of a JSON answer is written with exactly
// six decimals (the schema sees only a number).
func checkMoney(t *testing.T, contentType string, body []byte) {
	t.Helper()
	if !strings.HasPrefix(contentType, "application/json") {
		return
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	var walk func(any)
	walk = func(v any) {
		switch v := v.(type) {
		case map[string]any:
			for k, x := range v {
				if n, ok := x.(json.Number); ok && moneyKey.MatchString(k) && !strings.HasSuffix(k, "_nano_usd") {
					assert.Regexp(t, `^-?[0-9]+\.[0-9]{6}$`, string(n), "%s", k)
				}
				walk(x)
			}
		case []any:
			for _, x := range v {
				walk(x)
			}
		}
	}
	walk(v)
}

// Must show: the description is valid OpenAPI 3.0.3, is what
// /v1/openapi.json serves, and describes exactly the routes the admin
// server registers: none missing, none extra.
func TestOpenAPIDescribesEveryAdminRoute(t *testing.T) {
	d := loadAPIDoc(t)
	in := startWith(t, agreeBase, app.ServeOptions{ReloadInterval: 0})

	status, served := get(t, in, "/v1/openapi.json", "good-token")
	require.Equal(t, http.StatusOK, status)
	assert.Equal(t, string(admin.OpenAPI()), served)

	var registered []string
	for _, p := range in.AdminRoutes() {
		method, path, ok := strings.Cut(p, " ")
		require.True(t, ok, "pattern %q has no method: the description needs one", p)
		path = strings.TrimSuffix(path, "{$}")
		if strings.HasSuffix(path, "/") && path != "/" { // a subtree: one documented file parameter below it
			var under []string
			for docPath := range d.doc.Paths.Map() {
				if rest, ok := strings.CutPrefix(docPath, path); ok && regexp.MustCompile(`^\{\w+\}$`).MatchString(rest) {
					under = append(under, docPath)
				}
			}
			require.Len(t, under, 1, "subtree %s needs one path %s{param} in the description", p, path)
			path = under[0]
		}
		registered = append(registered, method+" "+path)
	}
	var described []string
	for path, item := range d.doc.Paths.Map() {
		for method := range item.Operations() {
			described = append(described, method+" "+path)
		}
	}
	slices.Sort(registered)
	slices.Sort(described)
	assert.Equal(t, registered, described, "routes registered on the admin mux (left) and described in admin/openapi.json (right)")
	assert.Contains(t, registered, "GET /v1/spend")
	assert.Contains(t, registered, "GET /dashboard/{file}")

	for path, item := range d.doc.Paths.Map() {
		for method, op := range item.Operations() {
			open := op.Security != nil && len(*op.Security) == 0
			assert.Equal(t, !strings.HasPrefix(path, "/v1/"), open || slices.ContainsFunc(*orDefault(op.Security, &d.doc.Security), func(r openapi3.SecurityRequirement) bool { return len(r) == 0 }),
				"%s %s: every /v1/ path needs the bearer token, the others are open or take it optionally", method, path)
			if strings.HasPrefix(path, "/v1/") {
				assert.Contains(t, op.Responses.Map(), "401", "%s %s", method, path)
			}
		}
	}
}

func orDefault(s, def *openapi3.SecurityRequirements) *openapi3.SecurityRequirements {
	if s == nil {
		return def
	}
	return s
}

// Must show: every answer of every handler — successes and each
// documented error, driven by real requests to running instances —
// is described by /v1/openapi.json, and the requests sent are accepted
// by it (or rejected by it too, where the description can tell).
func TestAdminAnswersMatchTheOpenAPIDescription(t *testing.T) {
	d := loadAPIDoc(t)

	// A seeded stack with a ledger: budgets with and without caps, a
	// rolling window, spend in the ledger and one reconciliation window.
	dsn := pgtest.NewDatabase(t)
	s := newSpendStack(t, memoryStore+fmt.Sprintf("\nexporters:\n  postgres:\n    dsn: %q", dsn))
	s.seed()
	conn, err := pgx.Connect(context.Background(), dsn)
	require.NoError(t, err)
	_, err = conn.Exec(context.Background(), `INSERT INTO spendguard_reconciliation VALUES
		('http://vllm:8000/metrics', 'qwen-small', now() - interval '2 minutes', now() - interval '1 minute', 100, 50, 90, 50)`)
	require.NoError(t, err)
	require.NoError(t, conn.Close(context.Background()))
	full := "http://" + s.sg.AdminAddr()
	require.Eventually(t, func() bool {
		_, body := get(t, s.sg, "/v1/spend?period=total", "s3cret")
		return strings.Contains(body, `"total":{"requests":5,`)
	}, 20*time.Second, 50*time.Millisecond, "the ledger has the seeded requests")

	// /metrics behind the token; a Redis store nobody answers at, with and
	// without admin.token; a ledger nobody answers at.
	redisAway := strings.NewReplacer("backend: memory", "backend: redis\n  redis: {address: \""+freeAddr(t)+"\", timeout: 1s}").Replace(agreeBase)
	guarded := "http://" + startWith(t, strings.Replace(agreeBase, "label_dimensions: [tenant]", "label_dimensions: [tenant]\n  require_token: true", 1),
		app.ServeOptions{ReloadInterval: 0}).AdminAddr()
	broken := "http://" + startWith(t, redisAway, app.ServeOptions{ReloadInterval: 0}).AdminAddr()
	tokenless := "http://" + startWith(t, strings.Replace(redisAway, "admin:\n  token: good-token\n", "", 1), app.ServeOptions{ReloadInterval: 0}).AdminAddr()
	_, prefix := redistest.Shared(t)
	ledgerAway, err := startWithSpool(t, fmt.Sprintf("  backend: redis\n  redis:\n    address: %s\n    key_prefix: %q\n    timeout: 2s", redistest.SharedAddr, prefix), true)
	require.NoError(t, err)
	t.Cleanup(func() { ledgerAway.Shutdown() })
	require.Eventually(t, func() bool { code, _ := readyz(t, ledgerAway); return code == http.StatusServiceUnavailable }, 10*time.Second, 20*time.Millisecond)
	noLedger := "http://" + ledgerAway.AdminAddr()

	// The budgets API before any configuration is loaded (a state the
	// serving command never shows over HTTP, but the handler answers).
	mux := admin.NewMux()
	admin.New(admin.Options{Policies: func() (*budget.Policies, []string) { return nil, nil }}).Register(mux)
	unconfigured := httptest.NewServer(mux)
	t.Cleanup(unconfigured.Close)

	for _, e := range []exchange{
		{name: "healthz", base: full, path: "/healthz", status: 200},
		{name: "readyz", base: full, path: "/readyz", status: 200},
		{name: "readyz store away", base: broken, path: "/readyz", status: 503},
		{name: "readyz store away with the token", base: broken, path: "/readyz", token: "good-token", status: 503},
		{name: "readyz ledger away", base: noLedger, path: "/readyz", status: 503},
		{name: "metrics open", base: full, path: "/metrics", status: 200},
		{name: "metrics openmetrics", base: full, path: "/metrics", accept: "application/openmetrics-text; version=1.0.0", status: 200},
		{name: "metrics without the token", base: guarded, path: "/metrics", status: 401},
		{name: "metrics with the token", base: guarded, path: "/metrics", token: "good-token", status: 200},

		{name: "budgets", base: full, path: "/v1/budgets", token: "s3cret", status: 200},
		{name: "budgets filtered", base: full, path: "/v1/budgets?tenant=acme&team=search", token: "s3cret", status: 200},
		{name: "budgets unknown dimension", base: full, path: "/v1/budgets?colour=blue", token: "s3cret", status: 400},
		{name: "budgets empty filter", base: full, path: "/v1/budgets?tenant=", token: "s3cret", status: 400, invalid: true},
		{name: "budgets filter twice", base: full, path: "/v1/budgets?tenant=a&tenant=b", token: "s3cret", status: 400},
		{name: "budgets without the token", base: full, path: "/v1/budgets", status: 401, invalid: true},
		{name: "budgets wrong token", base: full, path: "/v1/budgets", token: "wrong", status: 401},
		{name: "budgets store away", base: broken, path: "/v1/budgets", token: "good-token", status: 503},
		{name: "budgets store away, no admin.token", base: tokenless, path: "/v1/budgets", status: 503, invalid: true},
		{name: "budgets no configuration", base: unconfigured.URL, path: "/v1/budgets", status: 503, invalid: true},
		{name: "one budget", base: full, path: "/v1/budgets/tenant-daily?tenant=initech", token: "s3cret", status: 200},
		{name: "one budget rolling", base: full, path: "/v1/budgets/team-rolling", token: "s3cret", status: 200},
		{name: "unknown budget", base: full, path: "/v1/budgets/nope", token: "s3cret", status: 404},
		{name: "one budget bad filter", base: full, path: "/v1/budgets/tenant-daily?colour=blue", token: "s3cret", status: 400},
		{name: "one budget without the token", base: full, path: "/v1/budgets/tenant-daily", status: 401, invalid: true},

		{name: "estimates", base: full, path: "/v1/estimates", token: "s3cret", status: 200},
		{name: "estimates without the token", base: full, path: "/v1/estimates", status: 401, invalid: true},

		{name: "spend", base: full, path: "/v1/spend?group_by=tenant,model&period=day&tz=Europe/Berlin&from=2020-01", token: "s3cret", status: 200},
		{name: "spend total", base: full, path: "/v1/spend?period=total", token: "s3cret", status: 200},
		{name: "spend bad period", base: full, path: "/v1/spend?period=fortnight", token: "s3cret", status: 400, invalid: true},
		{name: "spend bad time zone", base: full, path: "/v1/spend?tz=Mars/Olympus", token: "s3cret", status: 400},
		{name: "spend bad instant", base: full, path: "/v1/spend?from=yesterday", token: "s3cret", status: 400, invalid: true},
		{name: "spend group twice", base: full, path: "/v1/spend?group_by=tenant,tenant", token: "s3cret", status: 400, invalid: true},
		{name: "spend from after to", base: full, path: "/v1/spend?from=2026-12&to=2026-11", token: "s3cret", status: 400},
		{name: "spend without the token", base: full, path: "/v1/spend", status: 401, invalid: true},
		{name: "spend without a ledger", base: tokenless, path: "/v1/spend", status: 404, invalid: true},
		{name: "spend ledger away", base: noLedger, path: "/v1/spend", status: 503, invalid: true},

		{name: "openapi", base: full, path: "/v1/openapi.json", token: "s3cret", status: 200},
		{name: "openapi without the token", base: full, path: "/v1/openapi.json", status: 401, invalid: true},

		{name: "dashboard", base: full, path: "/", status: 200},
		{name: "dashboard script", base: full, path: "/dashboard/dashboard.js", status: 200},
		{name: "dashboard style", base: full, path: "/dashboard/dashboard.css", status: 200},
		{name: "dashboard no such file", base: full, path: "/dashboard/nope.js", status: 404, invalid: true},

		{name: "unknown path", base: full, path: "/nope", status: 404},
		{name: "unknown /v1/ path", base: full, path: "/v1/nope", token: "s3cret", status: 404},
		{name: "unknown /v1/ path without the token", base: full, path: "/v1/nope", status: 401},
		{name: "wrong method", base: full, method: http.MethodPost, path: "/v1/budgets", token: "s3cret", status: 405},
		{name: "wrong method, open path", base: full, method: http.MethodDelete, path: "/healthz", status: 405},
	} {
		t.Run(e.name, func(t *testing.T) { d.check(t, e) })
	}
}

// Must show: the checks above can fail: an answer the description does
// not describe (an undocumented status, an extra field, a money field
// that is a string) is refused.
func TestOpenAPIValidationRefusesUndescribedAnswers(t *testing.T) {
	d := loadAPIDoc(t)
	req := httptest.NewRequest(http.MethodGet, "/v1/estimates", nil)
	req.Header.Set("Authorization", "Bearer t")
	route, params, err := d.router.FindRoute(req)
	require.NoError(t, err)
	in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
		Options: &openapi3filter.Options{AuthenticationFunc: bearerForm}}
	require.NoError(t, openapi3filter.ValidateRequest(context.Background(), in))
	good := `{"quantile":0.95,"window":1000,"min_samples":20,"estimates":[]}`
	for _, tt := range []struct {
		name   string
		status int
		body   string
		ok     bool
	}{
		{"as served", 200, good, true},
		{"undocumented status", 500, `{"error":{"message":"m","type":"t","code":"c"}}`, false},
		{"extra field", 200, strings.Replace(good, `"window"`, `"extra":1,"window"`, 1), false},
		{"missing field", 200, strings.Replace(good, `"window":1000,`, ``, 1), false},
		{"wrong error code", 401, `{"error":{"message":"m","type":"unauthorized","code":"forbidden"}}`, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{"Content-Type": {"application/json"}}
			if tt.status == 401 {
				h.Set("WWW-Authenticate", `Bearer realm="spendguard"`)
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: tt.status, Header: h,
				Options: &openapi3filter.Options{IncludeResponseStatus: true}}
			out.SetBodyBytes([]byte(tt.body))
			err := openapi3filter.ValidateResponse(context.Background(), out)
			if tt.ok {
				assert.NoError(t, err)
			} else {
				assert.Error(t, err)
			}
		})
	}
}
