package fakevllm

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"time"
)

type endpoint struct {
	method string
	serve  func(http.ResponseWriter, []byte, params)
}

var routes = map[string]endpoint{
	"/health":              {http.MethodGet, serveHealth},
	"/v1/models":           {http.MethodGet, serveModels},
	"/metrics":             {http.MethodGet, serveMetrics},
	"/v1/chat/completions": {http.MethodPost, serveChat},
	"/v1/completions":      {http.MethodPost, serveCompletions},
	"/v1/embeddings":       {http.MethodPost, serveEmbeddings},
	"/v1/responses":        {http.MethodPost, serveResponses},
}

// route answers one request that no replay took.
func route(w http.ResponseWriter, r *http.Request, body []byte, p params) {
	e, ok := routes[r.URL.Path]
	switch {
	case !ok:
		writeDetail(w, http.StatusNotFound)
	case r.Method != e.method:
		w.Header().Set("Allow", e.method)
		writeDetail(w, http.StatusMethodNotAllowed)
	case p.status != 0 && (p.status < 200 || p.status > 299):
		writeError(w, p.status, fmt.Sprintf("fakevllm: %s=%d", HeaderStatus, p.status), "")
	default:
		e.serve(w, body, p)
	}
}

// okStatus is the status of a successful answer: 200 or the 2xx override.
func (p params) okStatus() int {
	if p.status != 0 {
		return p.status
	}
	return http.StatusOK
}

func serveHealth(w http.ResponseWriter, _ []byte, p params) {
	w.Header().Set("Content-Length", "0")
	w.WriteHeader(p.okStatus())
}

func serveModels(w http.ResponseWriter, _ []byte, p params) {
	now := time.Now().Unix()
	list := modelList{Object: "list"}
	for _, m := range p.servedModels() {
		list.Data = append(list.Data, modelCard{
			ID: m, Object: "model", Created: now, OwnedBy: "vllm", Root: m, MaxModelLen: maxModelLen,
			Permission: []modelPermission{{
				ID: newID("modelperm-", 32), Object: "model_permission", Created: now,
				AllowSampling: true, AllowLogprobs: true, AllowView: true, Organization: "*",
			}},
		})
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(list), p.chunkSize)
}

type streamOptions struct {
	IncludeUsage         *bool `json:"include_usage"`
	ContinuousUsageStats bool  `json:"continuous_usage_stats"`
}

// continuous is vLLM's continuous_usage_stats: cumulative usage on every
// chunk, when usage is included at all.
func (o *streamOptions) continuous() bool {
	return o.includeUsage() && o.ContinuousUsageStats
}

// includeUsage is vLLM's rule: include_usage defaults to true once a
// stream_options object is present, and there is no usage without one.
func (o *streamOptions) includeUsage() bool {
	return o != nil && (o.IncludeUsage == nil || *o.IncludeUsage)
}

// plan is what one request generates.
type plan struct {
	model     string
	prompt    int // total over all prompts
	cached    int
	choices   int
	perChoice int // completion tokens of each choice
	words     int // filler words of each choice: perChoice, at most maxTextWords
	finish    string
	usage     usageInfo
}

// newPlan applies the configured counts, or derives them from the request:
// promptEstimate tokens of prompt, maxTokens (nil: not given), choices.
func newPlan(p params, model string, promptEstimate int, maxTokens *int, choices int) plan {
	pl := plan{model: model, prompt: promptEstimate, cached: p.cached, choices: choices, finish: "stop"}
	if p.prompt != derive {
		pl.prompt = p.prompt
	}
	switch {
	case p.completion != derive:
		pl.perChoice = p.completion
	case maxTokens != nil:
		pl.perChoice = *maxTokens
	default:
		pl.perChoice = defaultCompletionTokens
	}
	pl.words = min(pl.perChoice, maxTextWords)
	if maxTokens != nil && pl.perChoice >= *maxTokens {
		pl.finish = "length"
	}
	pl.usage = newUsage(pl.prompt, pl.perChoice*pl.choices, pl.cached)
	return pl
}

// decode parses a request body, answering vLLM's 400 when it is not a JSON
// object of the expected shape, and vLLM's 404 when the model is not served.
func decode(w http.ResponseWriter, body []byte, p params, req any, model *string) (string, bool) {
	if err := json.Unmarshal(body, req); err != nil {
		writeError(w, http.StatusBadRequest, "JSON decode error: "+err.Error(), "")
		return "", false
	}
	name, ok := p.modelFor(*model)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", *model), "model")
		return "", false
	}
	return name, true
}

// validate answers vLLM's 400 for an n or max_tokens it would reject, and
// this fake's own 400 for an n too large to generate.
func validate(w http.ResponseWriter, n, maxTokens *int) (choices int, ok bool) {
	choices = 1
	if n != nil {
		choices = *n
	}
	switch {
	case choices < 1:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("n must be at least 1, got %d.", choices), "n")
	case choices > maxChoices:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("fakevllm: n=%d, more than the %d this fake serves", choices, maxChoices), "n")
	case maxTokens != nil && *maxTokens < 1:
		writeError(w, http.StatusBadRequest, fmt.Sprintf("max_tokens must be at least 1, got %d.", *maxTokens), "max_tokens")
	default:
		return choices, true
	}
	return 0, false
}

type chatRequest struct {
	Model               string          `json:"model"`
	Messages            json.RawMessage `json:"messages"`
	MaxTokens           *int            `json:"max_tokens"`
	MaxCompletionTokens *int            `json:"max_completion_tokens"`
	N                   *int            `json:"n"`
	Stream              bool            `json:"stream"`
	StreamOptions       *streamOptions  `json:"stream_options"`
}

func serveChat(w http.ResponseWriter, body []byte, p params) {
	var req chatRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	maxTokens := req.MaxCompletionTokens
	if maxTokens == nil {
		maxTokens = req.MaxTokens
	}
	n, ok := validate(w, req.N, maxTokens)
	if !ok {
		return
	}
	pl := newPlan(p, model, estimateTokens(req.Messages), maxTokens, n)
	p.tokens.add(model, pl.prompt, pl.perChoice*pl.choices)
	if req.Stream {
		streamChat(w, p, pl, req.StreamOptions.includeUsage(), req.StreamOptions.continuous())
		return
	}
	content := filler(pl.words)
	resp := chatCompletion{
		ID: newID("chatcmpl-", 16), Object: "chat.completion", Created: time.Now().Unix(),
		Model: model, Usage: pl.usage,
	}
	for i := range pl.choices {
		resp.Choices = append(resp.Choices, chatChoice{
			Index:        i,
			Message:      chatMessage{Role: "assistant", Content: content},
			FinishReason: pl.finish,
		})
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

type completionRequest struct {
	Model         string          `json:"model"`
	Prompt        json.RawMessage `json:"prompt"`
	MaxTokens     *int            `json:"max_tokens"`
	N             *int            `json:"n"`
	Stream        bool            `json:"stream"`
	StreamOptions *streamOptions  `json:"stream_options"`
}

func serveCompletions(w http.ResponseWriter, body []byte, p params) {
	var req completionRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	n, ok := validate(w, req.N, req.MaxTokens)
	if !ok {
		return
	}
	prompts := estimatePrompts(req.Prompt)
	pl := newPlan(p, model, sum(prompts), req.MaxTokens, len(prompts)*n)
	p.tokens.add(model, pl.prompt, pl.perChoice*pl.choices)
	if req.Stream {
		streamCompletions(w, p, pl, req.StreamOptions.includeUsage(), req.StreamOptions.continuous())
		return
	}
	text := filler(pl.words)
	resp := textCompletion{
		ID: newID("cmpl-", 32), Object: "text_completion", Created: time.Now().Unix(),
		Model: model, Usage: pl.usage,
	}
	for i := range pl.choices {
		resp.Choices = append(resp.Choices, textChoice{Index: i, Text: text, FinishReason: pl.finish})
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
}

// serveEmbeddings answers one vector per input. Usage has no cached tokens:
// vLLM reports prompt_tokens_details null for embeddings.
func serveEmbeddings(w http.ResponseWriter, body []byte, p params) {
	var req embeddingRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	dims := p.dims
	if d := req.Dimensions; dims == 0 && d != nil {
		if *d < 1 || *d > maxRequestDims {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("fakevllm: dimensions=%d, want 1 to %d", *d, maxRequestDims), "dimensions")
			return
		}
		dims = *d
	}
	if dims == 0 {
		dims = defaultEmbeddingDims
	}
	inputs := estimatePrompts(req.Input)
	prompt := sum(inputs)
	if p.prompt != derive {
		prompt = p.prompt
	}
	p.tokens.add(model, prompt, 0)
	resp := embeddingList{
		ID: newID("embd-", 16), Object: "list", Created: time.Now().Unix(), Model: model,
		Usage: newUsage(prompt, 0, 0),
	}
	for i := range inputs {
		resp.Data = append(resp.Data, embeddingData{
			Index: i, Object: "embedding", Embedding: embedding(i, dims, req.EncodingFormat == "base64"),
		})
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

// embedding is a deterministic vector of dims values in (-0.1, 0.1), as a
// JSON array of floats or, when asBase64, a base64 string of little-endian
// float32s (what the OpenAI SDKs ask for by default).
func embedding(input, dims int, asBase64 bool) json.RawMessage {
	x := uint64(input) << 32
	next := func() float64 { // splitmix64
		x += 0x9e3779b97f4a7c15
		z := (x ^ x>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		return float64(z>>11)/(1<<53)*0.2 - 0.1
	}
	if asBase64 {
		raw := make([]byte, 4*dims)
		for i := range dims {
			binary.LittleEndian.PutUint32(raw[4*i:], math.Float32bits(float32(next())))
		}
		return marshal(base64.StdEncoding.EncodeToString(raw))
	}
	out := make([]byte, 0, 22*dims+2)
	out = append(out, '[')
	for i := range dims {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, formatPyFloat(next())...)
	}
	return append(out, ']')
}

type responsesRequest struct {
	Model           string          `json:"model"`
	Input           json.RawMessage `json:"input"`
	Instructions    *string         `json:"instructions"`
	MaxOutputTokens *int            `json:"max_output_tokens"`
	Stream          bool            `json:"stream"`
}

func serveResponses(w http.ResponseWriter, body []byte, p params) {
	var req responsesRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	if _, ok := validate(w, nil, req.MaxOutputTokens); !ok {
		return
	}
	estimate := estimateTokens(req.Input)
	if req.Instructions != nil {
		estimate += len(*req.Instructions) / 4
	}
	pl := newPlan(p, model, estimate, req.MaxOutputTokens, 1)
	p.tokens.add(model, pl.prompt, pl.perChoice)
	maxOutput := maxModelLen - pl.prompt
	if req.MaxOutputTokens != nil {
		maxOutput = min(*req.MaxOutputTokens, maxOutput)
	}
	resp := responsesResponse{
		ID: newID("resp_", 32), CreatedAt: time.Now().Unix(), Instructions: req.Instructions,
		Model: model, Object: "response", ParallelToolCalls: true, Temperature: 1, ToolChoice: "auto",
		TopP: 1, MaxOutputTokens: maxOutput, ServiceTier: "auto", Status: "completed", Truncation: "disabled",
		Output: []outputMessage{{
			ID:      newID("msg_", 32),
			Content: []outputText{{Text: filler(pl.words), Type: "output_text"}},
			Role:    "assistant", Status: "completed", Type: "message",
		}},
		Usage: &responseUsage{
			InputTokens:        pl.prompt,
			InputTokensDetails: inputTokenDetail{CachedTokens: pl.cached},
			OutputTokens:       pl.perChoice,
			TotalTokens:        pl.prompt + pl.perChoice,
		},
	}
	if req.Stream {
		streamResponses(w, p, resp, pl.words)
		return
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}
