package fakevllm

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"strings"
	"time"
)

type endpoint struct {
	method string
	serve  func(http.ResponseWriter, []byte, params)
}

var routes = map[string]endpoint{
	"/health":                  {http.MethodGet, serveHealth},
	"/v1/models":               {http.MethodGet, serveModels},
	"/metrics":                 {http.MethodGet, serveMetrics},
	"/v1/chat/completions":     {http.MethodPost, serveChat},
	"/v1/completions":          {http.MethodPost, serveCompletions},
	"/v1/embeddings":           {http.MethodPost, serveEmbeddings},
	"/v1/responses":            {http.MethodPost, serveResponses},
	"/v1/messages":             {http.MethodPost, serveMessages},
	"/invocations":             {http.MethodPost, serveInvocations},
	"/inference/v1/generate":   {http.MethodPost, serveGenerate},
	"/v1/audio/transcriptions": {http.MethodPost, serveTranscriptions},
	"/v1/audio/translations":   {http.MethodPost, serveTranslations},
	"/rerank":                  {http.MethodPost, serveRerank},
	"/v1/rerank":               {http.MethodPost, serveRerank},
	"/v2/rerank":               {http.MethodPost, serveRerank},
	"/score":                   {http.MethodPost, serveScore},
	"/v1/score":                {http.MethodPost, serveScore},
	"/pooling":                 {http.MethodPost, servePooling},
	"/classify":                {http.MethodPost, serveClassify},
	"/tokenize":                {http.MethodPost, serveTokenize},
	"/detokenize":              {http.MethodPost, serveDetokenize},
}

// responsesPrefix starts GET /v1/responses/{id} and POST
// /v1/responses/{id}/cancel.
const responsesPrefix = "/v1/responses/"

// lookup finds the endpoint of path, the path-parameter routes included.
func lookup(path string) (endpoint, bool) {
	if e, ok := routes[path]; ok {
		return e, true
	}
	rest, ok := strings.CutPrefix(path, responsesPrefix)
	switch {
	case !ok || rest == "":
		return endpoint{}, false
	case !strings.Contains(rest, "/"):
		return endpoint{http.MethodGet, serveRetrieveResponse}, true
	case strings.Count(rest, "/") == 1 && strings.HasSuffix(rest, "/cancel") && rest != "/cancel":
		return endpoint{http.MethodPost, serveCancelResponse}, true
	}
	return endpoint{}, false
}

// route answers one request that no replay took.
func route(w http.ResponseWriter, r *http.Request, body []byte, p params) {
	e, ok := lookup(r.URL.Path)
	switch {
	case !ok:
		writeDetail(w, http.StatusNotFound)
	case r.Method != e.method:
		w.Header().Set("Allow", e.method)
		writeDetail(w, http.StatusMethodNotAllowed)
	case p.status != 0 && (p.status < 200 || p.status > 299):
		msg := fmt.Sprintf("fakevllm: %s=%d", HeaderStatus, p.status)
		if r.URL.Path == "/v1/messages" {
			writeAnthropicError(w, p.status, errorType(p.status), msg)
			return
		}
		writeError(w, p.status, msg, "")
	default:
		p.contentType = r.Header.Get("Content-Type")
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
	IncludeUsage         optionalBool `json:"include_usage"`
	ContinuousUsageStats *bool        `json:"continuous_usage_stats"`
}

// optionalBool tells a JSON field that is absent (set false) from one that
// is null (set, null) or a boolean.
type optionalBool struct {
	set, null, value bool
}

func (o *optionalBool) UnmarshalJSON(b []byte) error {
	o.set = true
	if string(b) == "null" {
		o.null = true
		return nil
	}
	return json.Unmarshal(b, &o.value)
}

// usageModes is vLLM's should_include_usage: with --enable-force-include-usage
// every stream has usage, on every chunk too; otherwise usage needs a
// stream_options object whose include_usage is absent (it defaults to true)
// or true — null and false turn it off — and per-chunk usage
// (continuous_usage_stats) needs usage.
func usageModes(o *streamOptions, force bool) (include, continuous bool) {
	if force {
		return true, true
	}
	if o == nil {
		return false, false
	}
	include = !o.IncludeUsage.set || (!o.IncludeUsage.null && o.IncludeUsage.value)
	return include, include && o.ContinuousUsageStats != nil && *o.ContinuousUsageStats
}

// plan is what one request generates.
type plan struct {
	model     string
	prompt    int   // total over all prompts
	prompts   []int // each prompt's tokens; choices are n per prompt, in order
	cached    int
	choices   int
	perChoice int // completion tokens of each choice
	words     int // filler words of each choice: perChoice, at most maxTextWords
	finish    string
	usage     usageInfo
}

// newPlan applies the configured counts, or derives them from the request:
// the tokens of each prompt, maxTokens (nil: not given), choices in all
// (n per prompt). A configured prompt count is split over the prompts, the
// remainder on the first.
func newPlan(p params, model string, prompts []int, maxTokens *int, choices int) plan {
	pl := plan{model: model, prompts: prompts, prompt: sum(prompts), cached: p.cached, choices: choices, finish: "stop"}
	if p.prompt != derive {
		pl.prompt = p.prompt
		pl.prompts = make([]int, len(prompts))
		for i := range pl.prompts {
			pl.prompts[i] = p.prompt / len(prompts)
		}
		pl.prompts[0] += p.prompt % len(prompts)
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

// promptOf is the prompt tokens of the prompt choice belongs to.
func (pl plan) promptOf(choice int) int {
	perPrompt := max(pl.choices/max(len(pl.prompts), 1), 1)
	return pl.prompts[min(choice/perPrompt, len(pl.prompts)-1)]
}

// checkStreamOptions answers vLLM's 400 for stream_options on a request
// that does not stream.
func checkStreamOptions(w http.ResponseWriter, o *streamOptions, stream bool) bool {
	if o != nil && !stream {
		writeError(w, http.StatusBadRequest, "Stream options can only be defined when `stream=True`.", "stream_options")
		return false
	}
	return true
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
	if !ok || !checkStreamOptions(w, req.StreamOptions, req.Stream) {
		return
	}
	pl := newPlan(p, model, []int{estimateTokens(req.Messages)}, maxTokens, n)
	p.tokens.add(model, pl.prompt, pl.perChoice*pl.choices)
	if req.Stream {
		include, continuous := usageModes(req.StreamOptions, p.forceUsage)
		streamChat(w, p, pl, include, continuous)
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
	UseBeamSearch bool            `json:"use_beam_search"`
}

func serveCompletions(w http.ResponseWriter, body []byte, p params) {
	var req completionRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	n, ok := validate(w, req.N, req.MaxTokens)
	if !ok || !checkStreamOptions(w, req.StreamOptions, req.Stream) {
		return
	}
	prompts := estimatePrompts(req.Prompt)
	pl := newPlan(p, model, prompts, req.MaxTokens, len(prompts)*n)
	p.tokens.add(model, pl.prompt, pl.perChoice*pl.choices)
	if req.Stream && !req.UseBeamSearch {
		include, continuous := usageModes(req.StreamOptions, p.forceUsage)
		streamCompletions(w, p, pl, include, continuous)
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
	if req.Stream { // beam search does not stream: vLLM sends the whole answer as one event
		s := newSSEWriter(w, p)
		s.data(resp)
		s.done()
		return
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
	EmbedDType     string          `json:"embed_dtype"`
	Endianness     string          `json:"endianness"`
}

// serveEmbeddings answers one vector per input. Usage has no cached tokens:
// vLLM reports prompt_tokens_details null for embeddings. encoding_format
// "bytes" answers the raw vectors (application/octet-stream) with the ids,
// offsets and usage in a "metadata" response header; "bytes_only" the same
// without the header, so with no usage anywhere.
func serveEmbeddings(w http.ResponseWriter, body []byte, p params) {
	var req embeddingRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	dims, ok := embeddingDims(w, p, req.Dimensions)
	if !ok || !checkEncoding(w, req) {
		return
	}
	inputs := estimatePrompts(req.Input)
	prompt := sum(inputs)
	if p.prompt != derive {
		prompt = p.prompt
	}
	p.tokens.add(model, prompt, 0)
	id, created := newID("embd-", 16), time.Now().Unix()
	switch req.EncodingFormat {
	case "bytes", "bytes_only":
		writeEmbeddingBytes(w, p, embeddingBytes{
			id: id, created: created, model: model, inputs: len(inputs), dims: dims, prompt: prompt,
			endianness: cmp.Or(req.Endianness, "native"), header: req.EncodingFormat == "bytes",
		})
		return
	}
	resp := embeddingList{ID: id, Object: "list", Created: created, Model: model, Usage: newUsage(prompt, 0, 0)}
	for i := range inputs {
		resp.Data = append(resp.Data, embeddingData{
			Index: i, Object: "embedding", Embedding: embedding(i, dims, req.EncodingFormat == "base64"),
		})
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

// embeddingDims is the vector length: the configured one, else the
// request's dimensions, else the default.
func embeddingDims(w http.ResponseWriter, p params, requested *int) (int, bool) {
	dims := p.dims
	if d := requested; dims == 0 && d != nil {
		if *d < 1 || *d > maxRequestDims {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("fakevllm: dimensions=%d, want 1 to %d", *d, maxRequestDims), "dimensions")
			return 0, false
		}
		dims = *d
	}
	if dims == 0 {
		dims = defaultEmbeddingDims
	}
	return dims, true
}

// checkEncoding answers 400 for an encoding vLLM does not know, and for an
// embed_dtype this fake does not write (it writes float32 only).
func checkEncoding(w http.ResponseWriter, req embeddingRequest) bool {
	switch {
	case !slices.Contains([]string{"", "float", "base64", "bytes", "bytes_only"}, req.EncodingFormat):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("encoding_format must be one of float, base64, bytes, bytes_only, got %q", req.EncodingFormat), "encoding_format")
	case req.EmbedDType != "" && req.EmbedDType != "float32":
		writeError(w, http.StatusBadRequest, fmt.Sprintf("fakevllm: embed_dtype=%q, this fake writes float32 only", req.EmbedDType), "embed_dtype")
	case !slices.Contains([]string{"", "native", "little", "big"}, req.Endianness):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("endianness must be one of native, little, big, got %q", req.Endianness), "endianness")
	default:
		return true
	}
	return false
}

// vector is a deterministic vector of dims values in (-0.1, 0.1).
func vector(input, dims int) []float64 {
	x := uint64(input) << 32
	out := make([]float64, dims)
	for i := range out { // splitmix64
		x += 0x9e3779b97f4a7c15
		z := (x ^ x>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		out[i] = float64(z>>11)/(1<<53)*0.2 - 0.1
	}
	return out
}

// float32Bytes is v as float32s in the byte order order.
func float32Bytes(v []float64, order binary.ByteOrder) []byte {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		order.PutUint32(raw[4*i:], math.Float32bits(float32(f)))
	}
	return raw
}

// embedding is vector(input, dims) as a JSON array of floats or, when
// asBase64, a base64 string of little-endian float32s (what the OpenAI SDKs
// ask for by default).
func embedding(input, dims int, asBase64 bool) json.RawMessage {
	v := vector(input, dims)
	if asBase64 {
		return marshal(base64.StdEncoding.EncodeToString(float32Bytes(v, binary.LittleEndian)))
	}
	out := make([]byte, 0, 22*dims+2)
	out = append(out, '[')
	for i, f := range v {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, formatPyFloat(f)...)
	}
	return append(out, ']')
}
