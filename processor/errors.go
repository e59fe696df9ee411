package processor

import (
	"encoding/json"
	"strconv"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
)

// apiError is an error answered to the client in OpenAI's error shape, so
// SDKs surface its message: {"error":{"message","type","param","code"}}.
type apiError struct {
	status  int
	errType string
	code    string
	message string
	headers [][2]string
}

// Error types and codes spendguard answers with.
const (
	typeBudgetExceeded   = "budget_exceeded"
	typeInvalidRequest   = "invalid_request_error"
	typeUnauthorized     = "unauthorized"
	typeServiceUnavail   = "service_unavailable"
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

// body renders the OpenAI-shaped JSON body.
func (e *apiError) body() []byte {
	b, err := json.Marshal(errorBody{Error: errorFields{Message: e.message, Type: e.errType, Code: e.code}})
	if err != nil { // cannot happen: only strings
		return []byte(`{"error":{"message":"internal error","type":"internal_error","param":null,"code":"internal_error"}}`)
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

func unavailable(message string) *apiError {
	return &apiError{status: 503, errType: typeServiceUnavail, code: typeServiceUnavail, message: message}
}

func itoa(n int) string { return strconv.Itoa(n) }
