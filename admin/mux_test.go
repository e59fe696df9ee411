package admin

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// Must show: Mux remembers what is registered, serves it as a ServeMux
// does (path values, redirects), and answers an unknown path 404 and a
// wrong method 405 with Allow, both as the API's JSON errors.
func TestMuxRecordsRoutesAndAnswersJSONErrors(t *testing.T) {
	m := NewMux()
	m.HandleFunc("GET /v1/things/{name}", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"name": r.PathValue("name")})
	})
	m.Handle("GET /files/", http.NotFoundHandler())
	assert.Equal(t, []string{"GET /files/", "GET /v1/things/{name}"}, m.Patterns())

	serve := func(method, path string) *httptest.ResponseRecorder {
		w := httptest.NewRecorder()
		m.ServeHTTP(w, httptest.NewRequest(method, path, nil))
		return w
	}
	w := serve(http.MethodGet, "/v1/things/a")
	assert.Equal(t, http.StatusOK, w.Code)
	assert.JSONEq(t, `{"name":"a"}`, w.Body.String())

	w = serve(http.MethodGet, "/files")
	assert.True(t, w.Code >= 300 && w.Code < 400, "the ServeMux's redirect to the subtree is kept: %d", w.Code)
	assert.Equal(t, "/files/", w.Header().Get("Location"))

	for _, tt := range []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{http.MethodGet, "/nope", http.StatusNotFound, "not_found", ""},
		{http.MethodDelete, "/v1/things/a", http.StatusMethodNotAllowed, "method_not_allowed", "GET, HEAD"},
	} {
		w := serve(tt.method, tt.path)
		require.Equal(t, tt.status, w.Code, w.Body.String())
		assert.Equal(t, "application/json", w.Header().Get("content-type"))
		assert.Equal(t, tt.allow, w.Header().Get("Allow"))
		var e ErrorBody
		require.NoError(t, json.Unmarshal(w.Body.Bytes(), &e), w.Body.String())
		assert.Equal(t, tt.code, e.Error.Code)
		assert.Contains(t, e.Error.Message, "/v1/openapi.json")
	}
}
