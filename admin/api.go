// Package admin is spendguard's admin HTTP API for budgets, its dashboard
// and the client of `spendguard status`:
//
//   - GET /v1/budgets[?DIM=VALUE...] and GET /v1/budgets/{name}: the state
//     of every budget scope in its current period (budget.Engine.List),
//     as JSON with USD amounts as numbers with exactly 6 decimals;
//   - GET /v1/estimates: the learned output estimates of streamed
//     responses per model and endpoint (Options.Estimates);
//   - GET / : the dashboard, plain HTML, CSS and JavaScript embedded in
//     the binary, which reads /v1/budgets;
//   - Guard: the bearer-token check of /v1/* and of the paths the caller
//     adds (/metrics with metrics.require_token), with two roles:
//     admin.token may read and change, admin.read_token may only read
//     (safe methods); RoleOf tells a handler which token a request
//     carried, for answers that add detail for the token's holders and
//     for the record of who changed what;
//   - GET /v1/openapi.json: the OpenAPI 3.0 description of the whole
//     admin server (openapi.json, embedded; OpenAPI), and Mux, the router
//     that records every route so the two can be checked against each
//     other and answers unknown paths and methods with JSON errors;
//   - History: the in-process samples that give burn rates.
//
// Every replica answers from the store, so with Redis every replica
// gives the shared numbers. docs/admin.md documents the API for operators.
package admin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/internal/money"
)

// Options configure an API.
type Options struct {
	// Policies returns the budgets in force and the dimensions a filter may
	// name (it is called per request, so hot reloads apply at once).
	Policies func() (*budget.Policies, []string)
	Engine   *budget.Engine
	// Lister lists the store's counters (nil: only budgets without "*").
	Lister budget.Lister
	// History gives burn rates (a new one when nil).
	History *History
	Now     func() time.Time // time.Now when nil
	Log     *zap.Logger
	// Timeout bounds one listing (default 10s).
	Timeout time.Duration
	// Estimates, when set, serves GET /v1/estimates: the learned output
	// estimates of streamed responses (estimates.go).
	Estimates EstimateSource
	// ShowErrors puts the store's error (which may name its address) in
	// a 503's message. Set it only when the API is behind a token;
	// otherwise the message says only that the store could not be read,
	// and the log has the error.
	ShowErrors bool
}

// API serves the budget endpoints and the dashboard.
type API struct {
	opts Options
}

// New returns an API.
func New(opts Options) *API {
	if opts.History == nil {
		opts.History = &History{}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Log == nil {
		opts.Log = zap.NewNop()
	}
	if opts.Timeout <= 0 {
		opts.Timeout = 10 * time.Second
	}
	return &API{opts: opts}
}

// Register adds the budget endpoints, GET /v1/estimates (with
// Options.Estimates), GET /v1/openapi.json (the description of the whole
// admin server, OpenAPI) and the dashboard to mux.
func (a *API) Register(mux Router) {
	mux.Handle("GET /v1/budgets", http.HandlerFunc(a.budgets))
	mux.Handle("GET /v1/budgets/{name}", http.HandlerFunc(a.budgets))
	if a.opts.Estimates != nil {
		mux.Handle("GET /v1/estimates", http.HandlerFunc(a.estimates))
	}
	mux.Handle("GET /v1/openapi.json", http.HandlerFunc(openAPI))
	registerDashboard(mux)
}

// Response is the body of GET /v1/budgets.
type Response struct {
	Budgets []State `json:"budgets"`
	// Truncated is set when the listing stopped at a bound (see
	// budget.ListOptions); absent otherwise.
	Truncated bool `json:"truncated,omitempty"`
}

// State is one scope in its current period. The fields up to State are
// behaviour.md's; the rest extend it for the dashboard and status.
type State struct {
	Budget       string            `json:"budget"`
	Scope        map[string]string `json:"scope"`
	Period       string            `json:"period"`
	PeriodStart  *string           `json:"period_start"` // null for total
	ResetsAt     *string           `json:"resets_at"`    // null for total
	SpentUSD     json.Number       `json:"spent_usd"`
	ReservedUSD  json.Number       `json:"reserved_usd"`
	SoftUSD      *json.Number      `json:"soft_usd"`
	HardUSD      *json.Number      `json:"hard_usd"`
	RemainingUSD *json.Number      `json:"remaining_usd"` // null without hard cap
	State        string            `json:"state"`

	// WindowSeconds is a rolling window's length (absent otherwise).
	WindowSeconds int64 `json:"window_seconds,omitempty"`
	// BurnUSDPerHour is committed spend per hour over the last
	// BurnWindowSeconds (at most an hour), null while unknown.
	BurnUSDPerHour    *json.Number `json:"burn_usd_per_hour"`
	BurnWindowSeconds int64        `json:"burn_window_seconds"`
	// ExhaustsAt is when the hard cap is reached at that rate, when that
	// is before the reset; null otherwise.
	ExhaustsAt *string `json:"exhausts_at"`
}

// ErrorBody is the body of every error answer.
type ErrorBody struct {
	Error struct {
		Message string `json:"message"`
		Type    string `json:"type"`
		Code    string `json:"code"`
	} `json:"error"`
}

func (a *API) budgets(w http.ResponseWriter, r *http.Request) {
	p, dims := a.opts.Policies()
	if p == nil {
		writeError(w, http.StatusServiceUnavailable, "service_unavailable", "no_configuration", "no configuration is loaded")
		return
	}
	name := r.PathValue("name")
	if name != "" {
		if _, ok := p.Budget(name); !ok {
			writeError(w, http.StatusNotFound, "not_found", "budget_not_found", fmt.Sprintf("no budget named %q", name))
			return
		}
	}
	filter, err := parseFilter(r, dims)
	if err != nil {
		writeError(w, http.StatusBadRequest, "invalid_request_error", "invalid_filter", err.Error())
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), a.opts.Timeout)
	defer cancel()
	resp, err := a.List(ctx, budget.ListOptions{Budget: name, Filter: filter})
	if err != nil {
		a.opts.Log.Warn("admin: listing budgets failed", zap.Error(err))
		msg := "cannot read the budget store (spendguard's log says why)"
		if a.opts.ShowErrors {
			msg = "cannot read the budget store: " + err.Error()
		}
		writeError(w, http.StatusServiceUnavailable, "service_unavailable", "store_unavailable", msg)
		return
	}
	w.Header().Set("cache-control", "no-store")
	writeJSON(w, http.StatusOK, resp)
}

// List lists the scopes opts selects, records their samples in History
// and renders them as the API does.
func (a *API) List(ctx context.Context, opts budget.ListOptions) (Response, error) {
	p, _ := a.opts.Policies()
	l, err := a.opts.Engine.List(ctx, p, a.opts.Lister, opts)
	if err != nil {
		return Response{}, err
	}
	now := a.opts.Now()
	a.opts.History.Observe(now, l.States)
	out := Response{Budgets: make([]State, 0, len(l.States)), Truncated: l.Truncated}
	for _, s := range l.States {
		out.Budgets = append(out.Budgets, render(s, a.opts.History.Rate(s, now)))
	}
	return out, nil
}

// Sample lists every scope once, for the burn-rate history.
func (a *API) Sample(ctx context.Context) {
	ctx, cancel := context.WithTimeout(ctx, a.opts.Timeout)
	defer cancel()
	if _, err := a.List(ctx, budget.ListOptions{}); err != nil {
		a.opts.Log.Debug("admin: sampling budgets failed", zap.Error(err))
	}
}

// StartSampling calls Sample every History.SampleEvery (the first time
// one interval from now) until the returned stop function is called,
// which waits for the goroutine to end.
func (a *API) StartSampling() (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(a.opts.History.every())
		defer t.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-t.C:
				a.Sample(ctx)
			}
		}
	}()
	return func() { cancel(); <-done }
}

func render(s budget.State, burn Burn) State {
	b := s.Scope.Budget
	out := State{
		Budget: b.Name(), Scope: s.Scope.Values, Period: b.Period().String(),
		SpentUSD: usd(s.Committed), ReservedUSD: usd(s.Reserved), State: s.Level,
	}
	if out.Scope == nil {
		out.Scope = map[string]string{}
	}
	if !s.Start.IsZero() {
		out.PeriodStart, out.ResetsAt = ptr(timeText(s.Start)), ptr(timeText(s.ResetsAt))
	}
	if w := b.Rolling(); w > 0 {
		out.WindowSeconds = int64(w / time.Second)
	}
	if v, ok := b.Soft(); ok {
		out.SoftUSD = ptr(usd(v))
	}
	if v, ok := b.Hard(); ok {
		out.HardUSD, out.RemainingUSD = ptr(usd(v)), ptr(usd(s.Remaining))
	}
	if burn.OK {
		out.BurnUSDPerHour = ptr(usd(burn.PerHour))
		out.BurnWindowSeconds = int64(burn.Window / time.Second)
	}
	if !burn.ExhaustsAt.IsZero() {
		out.ExhaustsAt = ptr(timeText(burn.ExhaustsAt.In(b.Location())))
	}
	return out
}

// usd is an amount as a JSON number with exactly 6 decimals.
func usd(n money.Nano) json.Number { return json.Number(n.USD()) }

func timeText(t time.Time) string { return t.Format(time.RFC3339) }

func ptr[T any](v T) *T { return &v }

// parseFilter reads DIM=VALUE query parameters: each a known dimension,
// given once, with a non-empty value.
func parseFilter(r *http.Request, dims []string) (map[string]string, error) {
	q := r.URL.Query()
	var errs []error
	filter := map[string]string{}
	for _, k := range slices.Sorted(maps.Keys(q)) {
		vs := q[k]
		switch {
		case !slices.Contains(dims, k):
			errs = append(errs, fmt.Errorf("filter %q: not a dimension (dimensions: %s)", k, strings.Join(dims, ", ")))
		case len(vs) != 1:
			errs = append(errs, fmt.Errorf("filter %q: given %d times; give it once", k, len(vs)))
		case vs[0] == "":
			errs = append(errs, fmt.Errorf("filter %q: empty value", k))
		default:
			filter[k] = vs[0]
		}
	}
	return filter, errors.Join(errs...)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, typ, code, msg string) {
	var e ErrorBody
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, code
	writeJSON(w, status, e)
}
