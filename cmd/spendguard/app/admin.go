package app

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"github.com/spendguard/spendguard/internal/admin"
)

// adminHandler serves the admin HTTP API. /healthz answers while the
// process runs; /readyz once a configuration is loaded; /v1/budgets and
// the dashboard come from package admin (docs/admin.md).
func (in *Instance) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		if in.Processor.Snapshot() == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no configuration loaded"})
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
		defer cancel()
		if err := in.Store.Ping(ctx); err != nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "budget store unreachable", "error": err.Error()})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	mux.Handle("GET /metrics", in.metricsHandler())            // budget gauges refreshed from the store per scrape (metrics.go)
	mux.Handle("GET /v1/spend", in.spendHandler())             // the ledger's spend (admin_spend.go), behind the token like all /v1/*
	in.budgetsAPI.Register(mux)                                // GET /v1/budgets[/{name}] and the dashboard at /
	return admin.RequireToken(in.Config.File.Admin.Token, mux) // /v1/* needs admin.token when it is set
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
