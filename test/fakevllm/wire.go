package fakevllm

// The response bodies, one struct per vLLM pydantic model. Field order is
// vLLM's field order, so encoding/json writes the keys as vLLM does.

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"math"
	"net/http"
	"strconv"
	"strings"
)

// null always encodes as JSON null: a field vLLM sends but this fake never fills.
type null struct{}

func (null) MarshalJSON() ([]byte, error) { return []byte("null"), nil }

// emptyList always encodes as [].
type emptyList struct{}

func (emptyList) MarshalJSON() ([]byte, error) { return []byte("[]"), nil }

// pyFloat encodes as Python's repr does: 1.0 (not 1), 1e-05, 0.5.
type pyFloat float64

func (f pyFloat) MarshalJSON() ([]byte, error) { return []byte(formatPyFloat(float64(f))), nil }

func formatPyFloat(v float64) string {
	if a := math.Abs(v); a != 0 && (a < 1e-4 || a >= 1e16) {
		return strconv.FormatFloat(v, 'e', -1, 64) // 1e-05, 1.5e+16, as Python
	}
	s := strconv.FormatFloat(v, 'f', -1, 64)
	if !strings.Contains(s, ".") {
		s += ".0"
	}
	return s
}

// usageInfo is vLLM's UsageInfo as a non-streaming body carries it.
type usageInfo struct {
	PromptTokens        int             `json:"prompt_tokens"`
	TotalTokens         int             `json:"total_tokens"`
	CompletionTokens    int             `json:"completion_tokens"`
	PromptTokensDetails *promptTokenUse `json:"prompt_tokens_details"`
}

// streamUsage is UsageInfo in a final stream chunk, which vLLM dumps with
// exclude_none: no prompt_tokens_details unless there are cached tokens.
type streamUsage struct {
	PromptTokens        int             `json:"prompt_tokens"`
	TotalTokens         int             `json:"total_tokens"`
	CompletionTokens    int             `json:"completion_tokens"`
	PromptTokensDetails *promptTokenUse `json:"prompt_tokens_details,omitempty"`
}

type promptTokenUse struct {
	CachedTokens int `json:"cached_tokens"`
}

func newUsage(prompt, completion, cached int) usageInfo {
	u := usageInfo{PromptTokens: prompt, TotalTokens: prompt + completion, CompletionTokens: completion}
	if cached > 0 {
		u.PromptTokensDetails = &promptTokenUse{CachedTokens: cached}
	}
	return u
}

type chatCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []chatChoice `json:"choices"`
	ServiceTier       null         `json:"service_tier"`
	SystemFingerprint null         `json:"system_fingerprint"`
	Usage             usageInfo    `json:"usage"`
	PromptLogprobs    null         `json:"prompt_logprobs"`
	PromptTokenIDs    null         `json:"prompt_token_ids"`
	KVTransferParams  null         `json:"kv_transfer_params"`
}

type chatChoice struct {
	Index        int         `json:"index"`
	Message      chatMessage `json:"message"`
	Logprobs     null        `json:"logprobs"`
	FinishReason string      `json:"finish_reason"`
	StopReason   null        `json:"stop_reason"`
	TokenIDs     null        `json:"token_ids"`
}

type chatMessage struct {
	Role         string    `json:"role"`
	Content      string    `json:"content"`
	Refusal      null      `json:"refusal"`
	Annotations  null      `json:"annotations"`
	Audio        null      `json:"audio"`
	FunctionCall null      `json:"function_call"`
	ToolCalls    emptyList `json:"tool_calls"`
	Reasoning    null      `json:"reasoning"`
}

type textCompletion struct {
	ID                string       `json:"id"`
	Object            string       `json:"object"`
	Created           int64        `json:"created"`
	Model             string       `json:"model"`
	Choices           []textChoice `json:"choices"`
	ServiceTier       null         `json:"service_tier"`
	SystemFingerprint null         `json:"system_fingerprint"`
	Usage             usageInfo    `json:"usage"`
	KVTransferParams  null         `json:"kv_transfer_params"`
}

type textChoice struct {
	Index          int    `json:"index"`
	Text           string `json:"text"`
	Logprobs       null   `json:"logprobs"`
	FinishReason   string `json:"finish_reason"`
	StopReason     null   `json:"stop_reason"`
	PromptLogprobs null   `json:"prompt_logprobs"`
}

type embeddingList struct {
	ID      string          `json:"id"`
	Object  string          `json:"object"`
	Created int64           `json:"created"`
	Model   string          `json:"model"`
	Data    []embeddingData `json:"data"`
	Usage   usageInfo       `json:"usage"`
}

type embeddingData struct {
	Index     int             `json:"index"`
	Object    string          `json:"object"`
	Embedding json.RawMessage `json:"embedding"` // [floats] or a base64 string
}

// responsesResponse is vLLM's ResponsesResponse, as model_dump() writes it.
type responsesResponse struct {
	ID                 string             `json:"id"`
	CreatedAt          int64              `json:"created_at"`
	IncompleteDetails  *incompleteDetails `json:"incomplete_details"`
	Instructions       *string            `json:"instructions"`
	Metadata           null               `json:"metadata"`
	Model              string             `json:"model"`
	Object             string             `json:"object"`
	Output             []outputMessage    `json:"output"`
	ParallelToolCalls  bool               `json:"parallel_tool_calls"`
	Temperature        pyFloat            `json:"temperature"`
	ToolChoice         string             `json:"tool_choice"`
	Tools              emptyList          `json:"tools"`
	TopP               pyFloat            `json:"top_p"`
	Background         bool               `json:"background"`
	MaxOutputTokens    int                `json:"max_output_tokens"`
	MaxToolCalls       null               `json:"max_tool_calls"`
	PreviousResponseID null               `json:"previous_response_id"`
	Prompt             null               `json:"prompt"`
	Reasoning          null               `json:"reasoning"`
	ServiceTier        string             `json:"service_tier"`
	Status             string             `json:"status"`
	Text               null               `json:"text"`
	TopLogprobs        null               `json:"top_logprobs"`
	Truncation         string             `json:"truncation"`
	Usage              *responseUsage     `json:"usage"`
	User               null               `json:"user"`
	InputMessages      null               `json:"input_messages"`
	OutputMessages     null               `json:"output_messages"`
}

type incompleteDetails struct {
	Reason string `json:"reason"`
}

type outputMessage struct {
	ID      string       `json:"id"`
	Content []outputText `json:"content"`
	Role    string       `json:"role"`
	Status  string       `json:"status"`
	Type    string       `json:"type"`
}

type outputText struct {
	Annotations emptyList `json:"annotations"`
	Text        string    `json:"text"`
	Type        string    `json:"type"`
	Logprobs    null      `json:"logprobs"`
}

type responseUsage struct {
	InputTokens         int               `json:"input_tokens"`
	InputTokensDetails  inputTokenDetail  `json:"input_tokens_details"`
	OutputTokens        int               `json:"output_tokens"`
	OutputTokensDetails outputTokenDetail `json:"output_tokens_details"`
	TotalTokens         int               `json:"total_tokens"`
}

type inputTokenDetail struct {
	CachedTokens int `json:"cached_tokens"`
}

type outputTokenDetail struct {
	ReasoningTokens int `json:"reasoning_tokens"`
}

type modelList struct {
	Object string      `json:"object"`
	Data   []modelCard `json:"data"`
}

type modelCard struct {
	ID          string            `json:"id"`
	Object      string            `json:"object"`
	Created     int64             `json:"created"`
	OwnedBy     string            `json:"owned_by"`
	Root        string            `json:"root"`
	Parent      null              `json:"parent"`
	MaxModelLen int               `json:"max_model_len"`
	Permission  []modelPermission `json:"permission"`
}

type modelPermission struct {
	ID                 string `json:"id"`
	Object             string `json:"object"`
	Created            int64  `json:"created"`
	AllowCreateEngine  bool   `json:"allow_create_engine"`
	AllowSampling      bool   `json:"allow_sampling"`
	AllowLogprobs      bool   `json:"allow_logprobs"`
	AllowSearchIndices bool   `json:"allow_search_indices"`
	AllowView          bool   `json:"allow_view"`
	AllowFineTuning    bool   `json:"allow_fine_tuning"`
	Organization       string `json:"organization"`
	Group              null   `json:"group"`
	IsBlocking         bool   `json:"is_blocking"`
}

// errorBody is vLLM's ErrorResponse (vLLM >= 0.10.1): code is the HTTP status.
type errorBody struct {
	Error errorInfo `json:"error"`
}

type errorInfo struct {
	Message string  `json:"message"`
	Type    string  `json:"type"`
	Param   *string `json:"param"`
	Code    int     `json:"code"`
}

// errorType names an HTTP status as vLLM's error types do: 400
// BadRequestError, 404 NotFoundError, 500 InternalServerError.
func errorType(status int) string {
	t := strings.ReplaceAll(http.StatusText(status), " ", "")
	if !strings.HasSuffix(t, "Error") {
		t += "Error"
	}
	return t
}

// writeError answers with vLLM's error shape; param "" is null.
func writeError(w http.ResponseWriter, status int, message, param string) {
	e := errorBody{Error: errorInfo{Message: message, Type: errorType(status), Code: status}}
	if param != "" {
		e.Error.Param = &param
	}
	writeBody(w, status, contentTypeJSON, marshal(e), defaultWriteChunkSize)
}

// writeTypedError answers with vLLM's error shape and an explicit type, as
// vLLM's create_error_response(err_type=…) does; param "" is null.
func writeTypedError(w http.ResponseWriter, status int, errType, message, param string) {
	e := errorBody{Error: errorInfo{Message: message, Type: errType, Code: status}}
	if param != "" {
		e.Error.Param = &param
	}
	writeBody(w, status, contentTypeJSON, marshal(e), defaultWriteChunkSize)
}

// writeDetail answers as FastAPI does for a path or method it has no route for.
func writeDetail(w http.ResponseWriter, status int) {
	body := marshal(struct {
		Detail string `json:"detail"`
	}{http.StatusText(status)})
	writeBody(w, status, contentTypeJSON, body, defaultWriteChunkSize)
}

// marshal encodes v compactly without HTML escaping, as Python's json.dumps.
func marshal(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic("fakevllm: marshal: " + err.Error()) // only our own structs get here
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}

// newID returns prefix followed by n random hex digits.
func newID(prefix string, n int) string {
	b := make([]byte, (n+1)/2)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)[:n]
}
