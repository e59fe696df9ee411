package fakevllm

import (
	"encoding/json"
	"fmt"
	"net/http"
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
	case maxTokens != nil && p.stopAfter > 0:
		pl.perChoice = min(*maxTokens, p.stopAfter)
	case maxTokens != nil:
		pl.perChoice = *maxTokens
	case p.stopAfter > 0:
		pl.perChoice = p.stopAfter
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
