package app

import (
	"encoding/json"
	"net/http"
)

// adminHandler serves the admin HTTP API. /healthz answers while the
// process runs; /readyz once a configuration is loaded.
func (in *Instance) adminHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if in.Processor.Snapshot() == nil {
			writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "no configuration loaded"})
			return
		}
		writeJSON(w, http.StatusOK, map[string]string{"status": "ready"})
	})
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("content-type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}
