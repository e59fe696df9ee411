package app

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"go.uber.org/zap"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/exporters/postgres"
	"github.com/spendguard/spendguard/internal/money"
)

// spendResponse is the body of GET /v1/spend (docs/ledger.md).
type spendResponse struct {
	Period   string      `json:"period"`
	Timezone string      `json:"timezone"`
	From     time.Time   `json:"from"`
	To       time.Time   `json:"to"`
	GroupBy  []string    `json:"group_by"`
	Rows     []spendJSON `json:"rows"`
	Drift    []driftJSON `json:"drift"`
	Total    spendTotals `json:"total"`
}

type spendTotals struct {
	Requests         int64       `json:"requests"`
	Rejected         int64       `json:"rejected"`
	PromptTokens     int64       `json:"prompt_tokens"`
	CompletionTokens int64       `json:"completion_tokens"`
	CostUSD          json.Number `json:"cost_usd"`
	CostNanoUSD      int64       `json:"cost_nano_usd"`
}

type spendJSON struct {
	PeriodStart        *time.Time        `json:"period_start"` // null for total
	Groups             map[string]string `json:"groups"`
	Requests           int64             `json:"requests"`
	Rejected           int64             `json:"rejected"`
	PromptTokens       int64             `json:"prompt_tokens"`
	CachedPromptTokens int64             `json:"cached_prompt_tokens"`
	CompletionTokens   int64             `json:"completion_tokens"`
	CostUSD            json.Number       `json:"cost_usd"`
	CostNanoUSD        int64             `json:"cost_nano_usd"`
	UnmeteredUSD       json.Number       `json:"unmetered_usd"`
	UnmeteredNanoUSD   int64             `json:"unmetered_nano_usd"`
	Estimated          int64             `json:"estimated"`
}

type driftJSON struct {
	Upstream                 string    `json:"upstream"`
	Model                    string    `json:"model"`
	WindowStart              time.Time `json:"window_start"`
	WindowEnd                time.Time `json:"window_end"`
	Windows                  int64     `json:"windows"`
	UpstreamPromptTokens     int64     `json:"upstream_prompt_tokens"`
	RecordedPromptTokens     int64     `json:"recorded_prompt_tokens"`
	PromptDriftTokens        int64     `json:"prompt_drift_tokens"`
	UpstreamGenerationTokens int64     `json:"upstream_generation_tokens"`
	RecordedGenerationTokens int64     `json:"recorded_generation_tokens"`
	GenerationDriftTokens    int64     `json:"generation_drift_tokens"`
}

// spendHandler serves GET /v1/spend?group_by=tenant,use_case&period=month
// &from=…&to=…&tz=…: the ledger's spend, as `spendguard report` prints
// it, with the reconciliation over the same range. 404 without a ledger
// (exporters.postgres), 400 for a bad query.
func (in *Instance) spendHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		l := in.Ledger
		if l == nil {
			spendError(w, http.StatusNotFound, "not_found", "no spend ledger is configured (exporters.postgres)")
			return
		}
		v := r.URL.Query()
		period := v.Get("period")
		if period == "" {
			period = "month"
		}
		q, err := spendQuery(v.Get("group_by"), period, v.Get("from"), v.Get("to"), v.Get("tz"), time.Now())
		if err != nil {
			spendError(w, http.StatusBadRequest, "invalid_request", err.Error())
			return
		}
		ctx, cancel := context.WithTimeout(r.Context(), 30*time.Second)
		defer cancel()
		rows, err := l.Spend(ctx, q)
		var drift []postgres.DriftRow
		if err == nil {
			drift, err = l.Drift(ctx, q.From, q.To)
		}
		if err != nil {
			in.Log.Warn("admin: reading the ledger failed", zap.Error(err))
			msg := "cannot read the ledger (spendguard's log says why)"
			if in.atStart.adminTokens.Set() { // behind a token (either): the error may name the database
				msg = err.Error()
			}
			spendError(w, http.StatusServiceUnavailable, "ledger_unavailable", msg)
			return
		}
		writeJSON(w, http.StatusOK, spendBody(q, rows, drift))
	})
}

func spendBody(q postgres.SpendQuery, rows []postgres.SpendRow, drift []postgres.DriftRow) spendResponse {
	usd := func(n money.Nano) json.Number { return json.Number(n.USD()) }
	out := spendResponse{Period: q.Period, Timezone: q.Location.String(), From: q.From.In(q.Location), To: q.To.In(q.Location),
		GroupBy: append([]string{}, q.GroupBy...), Rows: []spendJSON{}, Drift: []driftJSON{}}
	var total money.Nano
	for _, r := range rows {
		j := spendJSON{Groups: map[string]string{}, Requests: r.Requests, Rejected: r.Rejected, PromptTokens: r.PromptTokens,
			CachedPromptTokens: r.CachedPromptTokens, CompletionTokens: r.CompletionTokens,
			CostUSD: usd(r.Cost), CostNanoUSD: int64(r.Cost), UnmeteredUSD: usd(r.Unmetered), UnmeteredNanoUSD: int64(r.Unmetered),
			Estimated: r.Estimated}
		if !r.Period.IsZero() {
			p := r.Period
			j.PeriodStart = &p
		}
		for i, g := range q.GroupBy {
			j.Groups[g] = r.Groups[i]
		}
		out.Rows = append(out.Rows, j)
		out.Total.Requests += r.Requests
		out.Total.Rejected += r.Rejected
		out.Total.PromptTokens += r.PromptTokens
		out.Total.CompletionTokens += r.CompletionTokens
		total = money.Add(total, r.Cost)
	}
	out.Total.CostUSD, out.Total.CostNanoUSD = usd(total), int64(total)
	for _, d := range drift {
		out.Drift = append(out.Drift, driftJSON{Upstream: d.Upstream, Model: d.Model, WindowStart: d.Start.UTC(), WindowEnd: d.End.UTC(),
			Windows: d.Windows, UpstreamPromptTokens: d.UpstreamPrompt, RecordedPromptTokens: d.RecordedPrompt,
			PromptDriftTokens: d.PromptDrift(), UpstreamGenerationTokens: d.UpstreamGeneration,
			RecordedGenerationTokens: d.RecordedGeneration, GenerationDriftTokens: d.GenerationDrift()})
	}
	return out
}

func spendError(w http.ResponseWriter, status int, typ, msg string) {
	var e admin.ErrorBody
	e.Error.Message, e.Error.Type, e.Error.Code = msg, typ, typ
	writeJSON(w, status, e)
}
