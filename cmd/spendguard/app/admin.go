package app

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"time"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/budget"
)

// Admin HTTP server bounds (ServeOptions can shorten the idle timeout).
// No endpoint streams: the slowest answer, a /v1/budgets listing, gives
// up after 10s, well inside the write timeout.
const (
	adminReadHeaderTimeout  = 10 * time.Second
	adminReadTimeout        = 30 * time.Second
	adminWriteTimeout       = 60 * time.Second
	DefaultAdminIdleTimeout = 2 * time.Minute
	adminMaxHeaderBytes     = 64 << 10
)

// newAdminServer is the admin HTTP server: every phase of a connection
// is bounded (headers, the whole request, the answer, the idle time
// between requests) and so are the request headers' size, so a client
// cannot hold connections or memory open.
func (in *Instance) newAdminServer() *http.Server {
	idle := in.opts.AdminIdleTimeout
	if idle <= 0 {
		idle = DefaultAdminIdleTimeout
	}
	return &http.Server{
		Handler:           in.adminHandler(),
		ReadHeaderTimeout: adminReadHeaderTimeout,
		ReadTimeout:       adminReadTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       idle,
		MaxHeaderBytes:    adminMaxHeaderBytes,
	}
}

// adminHandler serves the admin HTTP API. /healthz answers while the
// process runs; /readyz once a configuration is loaded and the store
// answers; /metrics from caches (never the store); /v1/budgets and the
// dashboard come from package admin (docs/admin.md). What an anonymous
// caller gets never names infrastructure: /readyz's reason is a status
// word, the store's error only with admin.token or admin.read_token.
func (in *Instance) adminHandler() http.Handler {
	// /v1/* (and /metrics with metrics.require_token) need a token when one
	// is set: either for reading, admin.token for anything else.
	return admin.Guard(in.atStart.adminTokens, in.adminMux(), in.metricsPaths()...)
}

// adminMux registers every route of the admin server. Each one is
// described in admin/openapi.json (served at /v1/openapi.json); a test
// holds the two to each other.
func (in *Instance) adminMux() *admin.Mux {
	mux := admin.NewMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if in.CurrentConfig() == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no configuration loaded"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := in.Store.Ping(ctx); err != nil {
			body := map[string]string{"status": "budget store unreachable"}
			if errors.Is(err, budget.ErrStoreLost) {
				body["status"] = "budget store lost its data"
			}
			if admin.RoleOf(r) != admin.RoleNone { // the error names the store's address
				body["error"] = err.Error()
			}
			writeJSON(w, http.StatusServiceUnavailable, body)
			return
		}
		if l := in.Ledger; l != nil { // only with exporters.postgres.ready_requires_ledger
			if err := l.Ready(); err != nil {
				body := map[string]string{"status": "ledger not writable"}
				if admin.RoleOf(r) != admin.RoleNone {
					body["error"] = err.Error()
				}
				writeJSON(w, http.StatusServiceUnavailable, body)
				return
			}
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", in.Metrics.Handler()) // per-scope gauges from a cache (metrics.go)
	mux.Handle("GET /v1/spend", in.spendHandler())   // the ledger's spend (admin_spend.go), behind the tokens like all /v1/*
	in.budgetsAPI.Register(mux)                      // GET /v1/budgets[/{name}], /v1/estimates, /v1/openapi.json and the dashboard at /
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// AdminRoutes returns the patterns the admin server registers
// ("GET /v1/budgets/{name}"), sorted: the routes its OpenAPI description
// (/v1/openapi.json) must describe.
func (in *Instance) AdminRoutes() []string { return in.adminMux().Patterns() }
