package admin_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"

	"github.com/spendguard/spendguard/admin"
)

// Must show: RequireToken guards /v1/* and exactly the extra paths given,
// nothing else; Authorized agrees with it and is false without a token.
func TestRequireTokenAndAuthorized(t *testing.T) {
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusOK) })
	tests := []struct {
		name, token, path, sent string
		also                    []string
		status                  int
		authorized              bool
	}{
		{"v1 without a token sent", "s3cret", "/v1/budgets", "", nil, 401, false},
		{"v1 with the token", "s3cret", "/v1/budgets", "Bearer s3cret", nil, 200, true},
		{"v1 scheme in any case", "s3cret", "/v1/budgets", "bearer s3cret", nil, 200, true},
		{"v1 wrong token", "s3cret", "/v1/budgets", "Bearer s3cre", nil, 401, false},
		{"metrics open unless listed", "s3cret", "/metrics", "", nil, 200, false},
		{"metrics listed", "s3cret", "/metrics", "", []string{"/metrics"}, 401, false},
		{"metrics listed, with the token", "s3cret", "/metrics", "Bearer s3cret", []string{"/metrics"}, 200, true},
		{"a listed path is exact", "s3cret", "/metricsx", "", []string{"/metrics"}, 200, false},
		{"no admin.token: open, nobody authorized", "", "/v1/budgets", "Bearer anything", []string{"/metrics"}, 200, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.sent != "" {
				req.Header.Set("Authorization", tt.sent)
			}
			rec := httptest.NewRecorder()
			admin.RequireToken(tt.token, ok, tt.also...).ServeHTTP(rec, req)
			assert.Equal(t, tt.status, rec.Code)
			assert.Equal(t, tt.authorized, admin.Authorized(tt.token, req))
		})
	}
}
