package admin

import (
	_ "embed" // the OpenAPI description is part of the binary
	"net/http"
	"slices"
)

// openAPIDocument is the OpenAPI 3.0 description of the whole admin
// server: every route registered on its Mux (here and in the serving
// command), its parameters, answers and errors.
//
//go:embed openapi.json
var openAPIDocument []byte

// OpenAPI returns the OpenAPI 3.0.3 description (JSON) of the admin
// server, as GET /v1/openapi.json serves it.
func OpenAPI() []byte { return slices.Clone(openAPIDocument) }

// openAPI answers GET /v1/openapi.json.
func openAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("content-type", "application/json")
	w.Header().Set("cache-control", "no-cache")
	_, _ = w.Write(openAPIDocument)
}
