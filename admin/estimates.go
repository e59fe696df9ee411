package admin

import (
	"net/http"

	"github.com/spendguard/spendguard/budget/estimate"
)

// EstimateSource gives the learned output estimates (an
// estimate.Estimator): the configuration in force and every model and
// endpoint's window, sorted by model then endpoint.
type EstimateSource interface {
	Snapshot() (estimate.Config, []estimate.Series)
}

// EstimatesResponse is the body of GET /v1/estimates.
type EstimatesResponse struct {
	Quantile   float64          `json:"quantile"`
	Window     int              `json:"window"`
	MinSamples int              `json:"min_samples"`
	Estimates  []OutputEstimate `json:"estimates"`
}

// OutputEstimate is one model and endpoint's learned output estimate.
// Tokens is the quantile of its Samples recent completions; it is the
// estimate in use (Active) once Samples reaches min_samples.
type OutputEstimate struct {
	Model    string `json:"model"`
	Endpoint string `json:"endpoint"`
	Samples  int    `json:"samples"`
	Tokens   int64  `json:"tokens"`
	Active   bool   `json:"active"`
}

// estimates answers GET /v1/estimates from this replica's estimator
// (with a shared store, every replica holds the fleet's windows as of its
// last load).
func (a *API) estimates(w http.ResponseWriter, _ *http.Request) {
	cfg, series := a.opts.Estimates.Snapshot()
	out := EstimatesResponse{Quantile: cfg.Quantile, Window: cfg.Window, MinSamples: cfg.MinSamples,
		Estimates: make([]OutputEstimate, 0, len(series))}
	for _, s := range series {
		out.Estimates = append(out.Estimates, OutputEstimate{Model: s.Model, Endpoint: s.Endpoint,
			Samples: s.Samples, Tokens: s.Tokens, Active: s.Active})
	}
	w.Header().Set("cache-control", "no-store")
	writeJSON(w, http.StatusOK, out)
}
