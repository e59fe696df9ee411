package admin_test

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/admin"
)

// echoRole answers 200 with the role Guard passed on, so that a test
// sees both whether a request got through and as whom.
var echoRole = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("x-role", string(admin.RoleOf(r)))
	w.WriteHeader(http.StatusOK)
})

// Must show: Guard with admin.token only guards /v1/* and exactly the extra paths given,
// nothing else, and passes the role on (also on open paths).
func TestGuardWithAdminTokenOnly(t *testing.T) {
	tests := []struct {
		name, token, path, sent string
		also                    []string
		status                  int
		role                    admin.Role
	}{
		{"v1 without a token sent", "s3cret", "/v1/budgets", "", nil, 401, ""},
		{"v1 with the token", "s3cret", "/v1/budgets", "Bearer s3cret", nil, 200, admin.RoleAdmin},
		{"v1 scheme in any case", "s3cret", "/v1/budgets", "bearer s3cret", nil, 200, admin.RoleAdmin},
		{"v1 wrong token", "s3cret", "/v1/budgets", "Bearer s3cre", nil, 401, ""},
		{"v1 another scheme", "s3cret", "/v1/budgets", "Basic s3cret", nil, 401, ""},
		{"metrics open unless listed", "s3cret", "/metrics", "", nil, 200, ""},
		{"metrics listed", "s3cret", "/metrics", "", []string{"/metrics"}, 401, ""},
		{"metrics listed, with the token", "s3cret", "/metrics", "Bearer s3cret", []string{"/metrics"}, 200, admin.RoleAdmin},
		{"a listed path is exact", "s3cret", "/metricsx", "", []string{"/metrics"}, 200, ""},
		{"an open path knows the token's holder", "s3cret", "/readyz", "Bearer s3cret", nil, 200, admin.RoleAdmin},
		{"an open path ignores a wrong token", "s3cret", "/readyz", "Bearer nope", nil, 200, ""},
		{"no admin.token: open, nobody known", "", "/v1/budgets", "Bearer anything", []string{"/metrics"}, 200, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := httptest.NewRequest("GET", tt.path, nil)
			if tt.sent != "" {
				req.Header.Set("Authorization", tt.sent)
			}
			rec := httptest.NewRecorder()
			admin.Guard(admin.Tokens{Admin: tt.token}, echoRole, tt.also...).ServeHTTP(rec, req)
			assert.Equal(t, tt.status, rec.Code)
			assert.Equal(t, string(tt.role), rec.Header().Get("x-role"))
		})
	}
}

// Must show, for every method × token sent × path × tokens configured:
// safe methods pass with either token, the others only with admin.token;
// the read token on a write is 403 forbidden, a missing or wrong token
// 401 unauthorized; with only a read token nobody can write (403); with
// none everything is open; the handler learns the role.
func TestGuardRoles(t *testing.T) {
	const adminTok, readTok = "admin-s3cret", "read-s3cret"
	both := admin.Tokens{Admin: adminTok, Read: readTok}
	readOnly := admin.Tokens{Read: readTok}
	adminOnly := admin.Tokens{Admin: adminTok}
	sent := map[string]string{"admin": adminTok, "read": readTok, "none": "", "wrong": "not-a-token"}
	safe := []string{http.MethodGet, http.MethodHead, http.MethodOptions}
	unsafe := []string{http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

	type want struct {
		status int
		code   string // of the JSON error, "" for 200
		role   admin.Role
	}
	ok := func(role admin.Role) want { return want{200, "", role} }
	unauthorized := want{401, "unauthorized", ""}
	forbidden := want{403, "forbidden", ""}
	tests := []struct {
		name    string
		tokens  admin.Tokens
		methods []string
		path    string
		want    map[string]want // by token sent
	}{
		{"both, reads", both, safe, "/v1/budgets",
			map[string]want{"admin": ok(admin.RoleAdmin), "read": ok(admin.RoleRead), "none": unauthorized, "wrong": unauthorized}},
		{"both, writes", both, unsafe, "/v1/budgets/fleet-daily",
			map[string]want{"admin": ok(admin.RoleAdmin), "read": forbidden, "none": unauthorized, "wrong": unauthorized}},
		{"both, listed path", both, safe, "/metrics",
			map[string]want{"admin": ok(admin.RoleAdmin), "read": ok(admin.RoleRead), "none": unauthorized, "wrong": unauthorized}},
		{"both, open path, reads", both, safe, "/readyz",
			map[string]want{"admin": ok(admin.RoleAdmin), "read": ok(admin.RoleRead), "none": ok(""), "wrong": ok("")}},
		{"both, open path, writes", both, unsafe, "/healthz",
			map[string]want{"admin": ok(admin.RoleAdmin), "read": ok(admin.RoleRead), "none": ok(""), "wrong": ok("")}},
		{"read only, reads", readOnly, safe, "/v1/budgets",
			map[string]want{"admin": unauthorized, "read": ok(admin.RoleRead), "none": unauthorized, "wrong": unauthorized}},
		{"read only, writes: nobody", readOnly, unsafe, "/v1/budgets",
			map[string]want{"admin": forbidden, "read": forbidden, "none": forbidden, "wrong": forbidden}},
		{"admin only, reads", adminOnly, safe, "/v1/budgets",
			map[string]want{"admin": ok(admin.RoleAdmin), "read": unauthorized, "none": unauthorized, "wrong": unauthorized}},
		{"admin only, writes", adminOnly, unsafe, "/v1/budgets",
			map[string]want{"admin": ok(admin.RoleAdmin), "read": unauthorized, "none": unauthorized, "wrong": unauthorized}},
		{"none configured, writes", admin.Tokens{}, unsafe, "/v1/budgets",
			map[string]want{"admin": forbidden, "read": forbidden, "none": forbidden, "wrong": forbidden}},
	}
	for _, tt := range tests {
		h := admin.Guard(tt.tokens, echoRole, "/metrics")
		for _, method := range tt.methods {
			for who, w := range tt.want {
				t.Run(tt.name+"/"+method+"/"+who, func(t *testing.T) {
					req := httptest.NewRequest(method, tt.path, nil)
					if sent[who] != "" {
						req.Header.Set("Authorization", "Bearer "+sent[who])
					}
					rec := httptest.NewRecorder()
					h.ServeHTTP(rec, req)
					require.Equal(t, w.status, rec.Code, rec.Body.String())
					if w.status == 200 {
						assert.Equal(t, string(w.role), rec.Header().Get("x-role"))
						return
					}
					assert.Empty(t, rec.Header().Get("x-role"), "the handler did not run")
					assert.Equal(t, "application/json", rec.Header().Get("content-type"))
					var body admin.ErrorBody
					require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body), rec.Body.String())
					assert.Equal(t, w.code, body.Error.Code)
					assert.Equal(t, w.code, body.Error.Type)
					assert.NotContains(t, rec.Body.String(), "s3cret", "a token is never echoed")
					if w.status == 401 {
						assert.Equal(t, `Bearer realm="spendguard"`, rec.Header().Get("WWW-Authenticate"))
					} else {
						assert.Empty(t, rec.Header().Get("WWW-Authenticate"), "a token would not help")
					}
				})
			}
		}
	}
}

// Must show: the messages say what to do: which token is needed, that
// the read token cannot change anything, that nothing can be changed
// without admin.token.
func TestGuardMessages(t *testing.T) {
	tests := []struct {
		tokens       admin.Tokens
		method, sent string
		msg          string
	}{
		{admin.Tokens{Admin: "a", Read: "r"}, "GET", "", "this endpoint needs Authorization: Bearer <admin.token or admin.read_token>"},
		{admin.Tokens{Admin: "a", Read: "r"}, "POST", "", "this endpoint needs Authorization: Bearer <admin.token>"},
		{admin.Tokens{Admin: "a", Read: "r"}, "GET", "x", "the bearer token is neither admin.token nor admin.read_token"},
		{admin.Tokens{Admin: "a", Read: "r"}, "DELETE", "r", "the bearer token is admin.read_token, which can only read (GET, HEAD, OPTIONS); DELETE needs admin.token"},
		{admin.Tokens{Admin: "a"}, "GET", "", "this endpoint needs Authorization: Bearer <admin.token>"},
		{admin.Tokens{Admin: "a"}, "GET", "x", "the bearer token is not admin.token"},
		{admin.Tokens{Read: "r"}, "GET", "", "this endpoint needs Authorization: Bearer <admin.read_token>"},
		{admin.Tokens{Read: "r"}, "GET", "x", "the bearer token is not admin.read_token"},
		{admin.Tokens{Read: "r"}, "PUT", "r", "can only read"},
		{admin.Tokens{Read: "r"}, "PUT", "", "admin.token is not set, so nothing can be changed through the admin API"},
	}
	for _, tt := range tests {
		req := httptest.NewRequest(tt.method, "/v1/budgets", nil)
		if tt.sent != "" {
			req.Header.Set("Authorization", "Bearer "+tt.sent)
		}
		rec := httptest.NewRecorder()
		admin.Guard(tt.tokens, echoRole).ServeHTTP(rec, req)
		var body admin.ErrorBody
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		assert.Contains(t, body.Error.Message, tt.msg, "%+v %s %q", tt.tokens, tt.method, tt.sent)
	}
}

// Must show: RoleOf is RoleNone for a request Guard never saw.
func TestRoleOfWithoutGuard(t *testing.T) {
	req := httptest.NewRequest("GET", "/v1/budgets", nil)
	req.Header.Set("Authorization", "Bearer anything")
	assert.Equal(t, admin.RoleNone, admin.RoleOf(req))
}
