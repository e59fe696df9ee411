package processor

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"go.uber.org/zap"

	"github.com/spendguard/spendguard/budget"
	"github.com/spendguard/spendguard/identity"
	"github.com/spendguard/spendguard/internal/money"
	"github.com/spendguard/spendguard/pricing"
)

// Every error spendguard answers itself, as Envoy's local reply: its shape
// (apiError), its codes, and the constructors for each refusal.

// apiError is an error answered to the client in OpenAI's error shape, so
// SDKs surface its message: {"error":{"message","type","param","code"}};
// on the Anthropic Messages API, in Anthropic's (see anthropicBody).
type apiError struct {
	status  int
	errType string
	code    string
	message string
	headers [][2]string
	// anthropic: the request is to /v1/messages, whose clients read
	// Anthropic's error shape (set by stream.refuse, the one place every
	// refusal passes).
	anthropic bool
}

// Error types and codes spendguard answers with.
const (
	typeBudgetExceeded = "budget_exceeded"
	typeInvalidRequest = "invalid_request_error"
	typeUnauthorized   = "unauthorized"
	typeServiceUnavail = "service_unavailable"
	typeForbidden      = "forbidden"
	// codeUnpricedPath: a POST to a path neither priced nor free.
	codeUnpricedPath = "unpriced_path"
	// codeUnmeteredUpgrade: a WebSocket or other upgrade to a path not freed.
	codeUnmeteredUpgrade = "unmetered_upgrade"
	codeInvalidJSON      = "invalid_json"
	codeModelNotFound    = "model_not_found"
	codeRequestTooCostly = "max_request_usd_exceeded"
	// codeInvalidAPIKey: an Authorization header that is neither a known
	// API key nor a verified JWT (OpenAI's code for a bad key).
	codeInvalidAPIKey = "invalid_api_key"
	// codeConflictingHeader: a dimension header sent with different values.
	codeConflictingHeader = "conflicting_header"
	// codeInvalidValue: a dimension value or the model with control
	// characters.
	codeInvalidValue = "invalid_value"
)

func (e *apiError) Error() string { return e.message }

type errorBody struct {
	Error errorFields `json:"error"`
}

type errorFields struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    string  `json:"code"`
}

// body renders the JSON body in the shape of the request's API.
func (e *apiError) body() []byte {
	if e.anthropic {
		return e.anthropicBody()
	}
	b, err := json.Marshal(errorBody{Error: errorFields{Message: e.message, Type: e.errType, Code: e.code}})
	if err != nil { // cannot happen: only strings
		return []byte(`{"error":{"message":"internal error","type":"internal_error","param":null,"code":"internal_error"}}`)
	}
	return b
}

type anthropicError struct {
	Type  string          `json:"type"`
	Error anthropicFields `json:"error"`
}

type anthropicFields struct {
	Type    string `json:"type"`
	Message string `json:"message"`
}

// anthropicType is Anthropic's error type for an HTTP status, which
// Anthropic SDKs surface next to the status.
func anthropicType(status int) string {
	switch status {
	case 400:
		return "invalid_request_error"
	case 413:
		return "request_too_large" // as Envoy's own 413 on /v1/messages (envoy.yaml)
	case 401:
		return "authentication_error"
	case 402:
		return "billing_error"
	case 403:
		return "permission_error"
	case 404:
		return "not_found_error"
	case 429:
		return "rate_limit_error"
	case 503:
		return "overloaded_error"
	}
	return "api_error"
}

// anthropicBody renders the error in Anthropic's shape:
// {"type":"error","error":{"type","message"}}. spendguard's own code is
// kept in the message, since the shape has no field for it.
func (e *apiError) anthropicBody() []byte {
	b, err := json.Marshal(anthropicError{Type: "error", Error: anthropicFields{
		Type: anthropicType(e.status), Message: e.message + " (" + e.code + ")",
	}})
	if err != nil { // cannot happen: only strings
		return []byte(`{"type":"error","error":{"type":"api_error","message":"internal error"}}`)
	}
	return b
}

// immediate turns the error into Envoy's local reply.
func (e *apiError) immediate() *extprocv3.ProcessingResponse {
	set := []*corev3.HeaderValueOption{header("content-type", "application/json")}
	for _, h := range e.headers {
		set = append(set, header(h[0], h[1]))
	}
	return &extprocv3.ProcessingResponse{
		Response: &extprocv3.ProcessingResponse_ImmediateResponse{
			ImmediateResponse: &extprocv3.ImmediateResponse{
				Status:  &typev3.HttpStatus{Code: typev3.StatusCode(e.status)},
				Headers: &extprocv3.HeaderMutation{SetHeaders: set},
				Body:    e.body(),
				Details: "spendguard_" + e.code,
			},
		},
	}
}

// header builds an overwriting header with its value in raw_value, the
// field Envoy reads. The value never carries a control character (see
// scrubHeaderValue).
func header(key, value string) *corev3.HeaderValueOption {
	raw := []byte(value)
	scrubHeaderValue(raw)
	return &corev3.HeaderValueOption{
		Header:       &corev3.HeaderValue{Key: key, RawValue: raw},
		AppendAction: corev3.HeaderValueOption_OVERWRITE_IF_EXISTS_OR_ADD,
	}
}

// scrubHeaderValue turns every control byte of a header value (CR and LF
// above all, which could end the header or start another) into a space.
// Values are checked where they enter (identity.ValidValue); this is the
// last line, for any value that went round the check.
func scrubHeaderValue(b []byte) {
	for i, c := range b {
		if c < 0x20 || c == 0x7f {
			b[i] = ' '
		}
	}
}

func invalidRequest(code, message string) *apiError {
	return &apiError{status: 400, errType: typeInvalidRequest, code: code, message: message}
}

// bodyRequired answers a request to e that came without a body.
func bodyRequired(e pricing.Endpoint) *apiError {
	what := "a JSON object"
	if e.Multipart() {
		what = "a multipart/form-data body"
	}
	return invalidRequest(codeInvalidJSON, "request body is required: "+e.String()+" takes "+what)
}

// maxPathInMessage bounds the path quoted in an error message.
const maxPathInMessage = 200

// unpricedPath is the 403 for a POST to a path that is neither priced nor
// free: forwarding it unmetered would be a way around every budget.
func unpricedPath(path []byte) *apiError {
	p, _, _ := strings.Cut(string(path), "?")
	if len(p) > maxPathInMessage {
		p = p[:maxPathInMessage] + "..."
	}
	return &apiError{
		status: 403, errType: typeForbidden, code: codeUnpricedPath,
		message: fmt.Sprintf("spendguard does not forward POST %q: the path is not metered. "+
			"If it costs nothing, list it in pricing.free_paths; if it serves a model, map it to an endpoint kind in pricing.paths", p),
	}
}

// unmeteredUpgrade is the 403 for a WebSocket (or other protocol
// upgrade) to a path the operator did not free: its traffic cannot be
// metered.
func unmeteredUpgrade(path []byte) *apiError {
	p, _, _ := strings.Cut(string(path), "?")
	if len(p) > maxPathInMessage {
		p = p[:maxPathInMessage] + "..."
	}
	return &apiError{
		status: 403, errType: typeForbidden, code: codeUnmeteredUpgrade,
		message: fmt.Sprintf("spendguard does not forward a protocol upgrade (WebSocket) to %q: what it carries cannot be metered. "+
			"To let it through unmetered, list the path in pricing.free_paths", p),
	}
}

func unavailable(message string) *apiError {
	return &apiError{status: 503, errType: typeServiceUnavail, code: typeServiceUnavail, message: message}
}

func itoa(n int) string { return strconv.Itoa(n) }

func unauthorized(missing []string) *apiError {
	return &apiError{
		status: 401, errType: typeUnauthorized, code: typeUnauthorized,
		message: fmt.Sprintf("spendguard cannot attribute this request: no value for %s", strings.Join(missing, ", ")),
	}
}

// identityRefused answers a request whose identity resolution failed: 401
// for an invalid credential, 400 for a conflicting dimension header or a
// value with control characters. The message names the header or source,
// never a token or the value.
func identityRefused(err error) *apiError {
	switch {
	case errors.Is(err, identity.ErrCredential):
		return &apiError{status: 401, errType: typeUnauthorized, code: codeInvalidAPIKey, message: "spendguard cannot attribute this request: " + err.Error()}
	case errors.Is(err, identity.ErrConflict):
		return invalidRequest(codeConflictingHeader, err.Error())
	default:
		return invalidRequest(codeInvalidValue, err.Error())
	}
}

// rejected is the 402 for a budget that cannot take the request.
func (st *stream) rejected(rej *budget.Rejection) *apiError {
	e := &apiError{
		status: 402, errType: typeBudgetExceeded, code: typeBudgetExceeded,
		message: rej.Message() + st.assumedOutput(rej),
		headers: [][2]string{{hdrBudget, rej.Budget}, {hdrScope, rej.Scope}},
	}
	if secs, ok := rej.RetryAfter(st.srv.opts.Now()); ok {
		e.headers = append(e.headers, [2]string{"retry-after", itoa(secs)})
	}
	st.log.Debug("request rejected", zap.String("request_id", st.requestID), zap.String("budget", rej.Budget), zap.String("scope", rej.Scope))
	return e
}

// assumedOutput explains, for a refusal of a request that states no
// output limit, the output spendguard assumed for it, which the client
// cannot otherwise know: "" when the request stated one, was refused
// before its body was read, or generates nothing.
func (st *stream) assumedOutput(rej *budget.Rejection) string {
	if st.req == nil || st.req.OutputLimitStated || !st.endpoint.Generates() || rej.Requested <= 0 {
		return ""
	}
	if g := st.grow; g != nil {
		return fmt.Sprintf(" (the request states no output limit: %d output tokens per sequence were assumed, the model's learned typical answer or pricing.default_max_output_tokens; its stream would have grown from there)", g.perSeq)
	}
	return fmt.Sprintf(" (the request states no output limit: pricing.default_max_output_tokens = %d output tokens per sequence were assumed; state max_tokens to reserve less)",
		st.snap.Pricing.DefaultMaxOutputTokens())
}

// tooCostly is the 402 for a request whose worst case passes
// limits.max_request_usd.
func (st *stream) tooCostly(cost money.Nano) *apiError {
	return &apiError{
		status: 402, errType: typeBudgetExceeded, code: codeRequestTooCostly,
		message: fmt.Sprintf("request worst-case cost %s USD exceeds limits.max_request_usd %s USD (prompt up to %d tokens, output up to %d tokens); lower max_tokens",
			cost.Fixed(2), st.snap.MaxRequest.Fixed(2), st.worstCase.Prompt, st.worstCase.Completion),
		headers: [][2]string{{hdrBudget, "limits.max_request_usd"}},
	}
}

// storeFailed is the answer when the budget store cannot be reached and
// store.on_error is fail_closed: the request is refused rather than served
// unmetered (see failopen.go for fail_open).
func (st *stream) storeFailed(err error) *apiError {
	st.log.Error("budget store failed", zap.String("request_id", st.requestID), zap.Error(err))
	return unavailable("spendguard cannot reach its budget store; try again shortly")
}
