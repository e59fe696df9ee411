package fakevllm

import (
	"encoding/json"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestErrorsHaveVLLMShape(t *testing.T) {
	known := Config{KnownModels: []string{"served"}}
	tests := []struct {
		name       string
		cfg        Config
		path, body string
		header     map[string]string
		wantStatus int
		wantType   string
		wantParam  any
		wantMsg    string // "" skips the check
	}{
		{"unknown model", known, "/v1/chat/completions", `{"model":"x","messages":[]}`, nil,
			404, "NotFoundError", "model", "The model `x` does not exist."},
		{"unknown model, embeddings", known, "/v1/embeddings", `{"model":"x","input":"a"}`, nil,
			404, "NotFoundError", "model", "The model `x` does not exist."},
		{"unknown model, responses", known, "/v1/responses", `{"model":"x","input":"a"}`, nil,
			404, "NotFoundError", "model", "The model `x` does not exist."},
		{"invalid JSON", Config{}, "/v1/chat/completions", `{"model":`, nil,
			400, "BadRequestError", nil, ""},
		{"not an object", Config{}, "/v1/completions", `[1,2]`, nil,
			400, "BadRequestError", nil, ""},
		{"wrong field type", Config{}, "/v1/chat/completions", `{"model":"m","n":"two"}`, nil,
			400, "BadRequestError", nil, ""},
		{"n below 1", Config{}, "/v1/chat/completions", `{"model":"m","messages":[],"n":0}`, nil,
			400, "BadRequestError", "n", "n must be at least 1, got 0."},
		{"max_tokens below 1", Config{}, "/v1/completions", `{"model":"m","prompt":"a","max_tokens":0}`, nil,
			400, "BadRequestError", "max_tokens", "max_tokens must be at least 1, got 0."},
		{"max_output_tokens below 1", Config{}, "/v1/responses", `{"model":"m","input":"a","max_output_tokens":-3}`, nil,
			400, "BadRequestError", "max_tokens", "max_tokens must be at least 1, got -3."},
		{"n too large for the fake", Config{}, "/v1/chat/completions", `{"model":"m","messages":[],"n":129}`, nil,
			400, "BadRequestError", "n", "fakevllm: n=129, more than the 128 this fake serves"},
		{"dimensions too large for the fake", Config{}, "/v1/embeddings", `{"model":"m","input":"a","dimensions":100000}`, nil,
			400, "BadRequestError", "dimensions", "fakevllm: dimensions=100000, want 1 to 65536"},
		{"forced 500", Config{}, "/v1/chat/completions", `{"model":"m","messages":[]}`, map[string]string{HeaderStatus: "500"},
			500, "InternalServerError", nil, "fakevllm: x-fake-status=500"},
		{"forced 503 beats an unknown model", known, "/v1/chat/completions", `{"model":"x"}`, map[string]string{HeaderStatus: "503"},
			503, "ServiceUnavailableError", nil, ""},
		{"forced 429", Config{}, "/v1/embeddings", `{}`, map[string]string{HeaderStatus: "429"},
			429, "TooManyRequestsError", nil, ""},
		{"bad override header", Config{}, "/v1/chat/completions", `{"model":"m"}`, map[string]string{HeaderPromptTokens: "many"},
			400, "BadRequestError", nil, "fakevllm: header x-fake-prompt-tokens=\"many\": want an integer in [0, 1099511627776]"},
	}
	want := shape(t, readFixture(t, "vllm-error-400.json"))
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, New(tt.cfg), http.MethodPost, tt.path, tt.body, tt.header)
			require.Equal(t, tt.wantStatus, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			if tt.wantParam == nil {
				assert.Equal(t, want, shape(t, rec.Body.Bytes()), "same keys, order and kinds as vllm-error-400.json")
			}
			var body struct {
				Error map[string]any `json:"error"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.wantType, body.Error["type"])
			assert.Equal(t, tt.wantParam, body.Error["param"])
			assert.Equal(t, float64(tt.wantStatus), body.Error["code"], "code is the HTTP status, an integer")
			if tt.wantMsg != "" {
				assert.Equal(t, tt.wantMsg, body.Error["message"])
			}
		})
	}
}

// Paths and methods without a route answer as FastAPI does.
func TestNoRoute(t *testing.T) {
	tests := []struct {
		name, method, path string
		wantStatus         int
		wantBody           string
	}{
		{"unknown path", http.MethodPost, "/v1/nothing", 404, `{"detail":"Not Found"}`},
		{"GET a POST endpoint", http.MethodGet, "/v1/chat/completions", 405, `{"detail":"Method Not Allowed"}`},
		{"POST a GET endpoint", http.MethodPost, "/v1/models", 405, `{"detail":"Method Not Allowed"}`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := do(t, New(Config{}), tt.method, tt.path, "", nil)
			assert.Equal(t, tt.wantStatus, rec.Code)
			assert.Equal(t, tt.wantBody, rec.Body.String())
		})
	}
}
