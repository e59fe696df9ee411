package admin_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/admin"
	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/budget/estimate"
)

func estimatesServer(t *testing.T, token string, src admin.EstimateSource) *httptest.Server {
	t.Helper()
	api := admin.New(admin.Options{
		Policies:  func() (*budget.Policies, []string) { return nil, nil },
		Estimates: src,
	})
	mux := http.NewServeMux()
	api.Register(mux)
	srv := httptest.NewServer(admin.Guard(admin.Tokens{Admin: token}, mux))
	t.Cleanup(srv.Close)
	return srv
}

func getBody(t *testing.T, url, token string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	require.NoError(t, err)
	if token != "" {
		req.Header.Set("authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(t, err)
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	return resp.StatusCode, string(body)
}

func TestEstimatesEndpoint(t *testing.T) {
	e, err := estimate.New(estimate.Config{Quantile: 0.9, Window: 100, MinSamples: 3}, estimate.Options{})
	require.NoError(t, err)
	for i := int64(1); i <= 10; i++ {
		e.Observe("meta-llama/Llama-3.1-8B-Instruct", "chat_completions", i*100)
	}
	e.Observe("meta-llama/Llama-3.1-8B-Instruct", "completions", 42)
	e.Observe("a-model", "responses", 7)
	srv := estimatesServer(t, "s3cret", e)

	status, _ := getBody(t, srv.URL+"/v1/estimates", "")
	assert.Equal(t, http.StatusUnauthorized, status, "behind the admin token like every /v1/ path")

	status, body := getBody(t, srv.URL+"/v1/estimates", "s3cret")
	require.Equal(t, http.StatusOK, status, body)
	assert.JSONEq(t, `{"quantile":0.9,"window":100,"min_samples":3,"estimates":[
		{"model":"a-model","endpoint":"responses","samples":1,"tokens":7,"active":false},
		{"model":"meta-llama/Llama-3.1-8B-Instruct","endpoint":"chat_completions","samples":10,"tokens":900,"active":true},
		{"model":"meta-llama/Llama-3.1-8B-Instruct","endpoint":"completions","samples":1,"tokens":42,"active":false}]}`, body)

	// A reload's new configuration shows at once.
	require.NoError(t, e.SetConfig(estimate.Config{Quantile: 0.5, Window: 100, MinSamples: 1}))
	_, body = getBody(t, srv.URL+"/v1/estimates", "s3cret")
	var got admin.EstimatesResponse
	require.NoError(t, json.Unmarshal([]byte(body), &got))
	assert.Equal(t, 0.5, got.Quantile)
	require.Len(t, got.Estimates, 3)
	assert.Equal(t, admin.OutputEstimate{Model: "meta-llama/Llama-3.1-8B-Instruct", Endpoint: "chat_completions",
		Samples: 10, Tokens: 500, Active: true}, got.Estimates[1])
}

func TestEstimatesEndpointEmptyAndAbsent(t *testing.T) {
	e, err := estimate.New(estimate.DefaultConfig(), estimate.Options{})
	require.NoError(t, err)
	srv := estimatesServer(t, "", e)
	status, body := getBody(t, srv.URL+"/v1/estimates", "")
	require.Equal(t, http.StatusOK, status)
	assert.JSONEq(t, `{"quantile":0.95,"window":1000,"min_samples":20,"estimates":[]}`, body, "an empty list, not null")

	srv = estimatesServer(t, "", nil)
	status, _ = getBody(t, srv.URL+"/v1/estimates", "")
	assert.Equal(t, http.StatusNotFound, status, "no estimator, no route")
}
