package fakevllm

// The pooling endpoints (rerank, score, pooling, classify) and
// /invocations, which routes by body shape as vLLM's SageMaker handler.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"sort"
	"strings"
	"time"
)

// rerankRequest and scoreRequest take every shape vLLM accepts: rerank is
// query + documents; score is queries + documents, queries + items,
// data_1 + data_2 or text_1 + text_2.
type rerankRequest struct {
	Model     string          `json:"model"`
	Query     json.RawMessage `json:"query"`
	Documents json.RawMessage `json:"documents"`
	TopN      int             `json:"top_n"`
}

type scoreRequest struct {
	Model     string          `json:"model"`
	Queries   json.RawMessage `json:"queries"`
	Documents json.RawMessage `json:"documents"`
	Items     json.RawMessage `json:"items"`
	Data1     json.RawMessage `json:"data_1"`
	Data2     json.RawMessage `json:"data_2"`
	Text1     json.RawMessage `json:"text_1"`
	Text2     json.RawMessage `json:"text_2"`
}

type rerankResponse struct {
	ID      string         `json:"id"`
	Model   string         `json:"model"`
	Usage   rerankUsage    `json:"usage"`
	Results []rerankResult `json:"results"`
}

type rerankUsage struct {
	PromptTokens int `json:"prompt_tokens"`
	TotalTokens  int `json:"total_tokens"`
}

type rerankResult struct {
	Index          int            `json:"index"`
	Document       rerankDocument `json:"document"`
	RelevanceScore pyFloat        `json:"relevance_score"`
}

type rerankDocument struct {
	Text       *string `json:"text"`
	MultiModal null    `json:"multi_modal"`
}

// listResponse is vLLM's ScoreResponse, PoolingResponse and
// ClassificationResponse: id, object "list", created, model, data, usage.
type listResponse struct {
	ID      string    `json:"id"`
	Object  string    `json:"object"`
	Created int64     `json:"created"`
	Model   string    `json:"model"`
	Data    any       `json:"data"`
	Usage   usageInfo `json:"usage"`
}

type scoreData struct {
	Index  int     `json:"index"`
	Object string  `json:"object"`
	Score  pyFloat `json:"score"`
}

type poolingData struct {
	Index  int             `json:"index"`
	Object string          `json:"object"`
	Data   json.RawMessage `json:"data"`
}

type classifyData struct {
	Index      int       `json:"index"`
	Label      string    `json:"label"`
	Probs      []pyFloat `json:"probs"`
	NumClasses int       `json:"num_classes"`
}

// items splits a score input into its items: a string or object is one, a
// list is its elements.
func items(raw json.RawMessage) []any {
	var v any
	_ = json.Unmarshal(raw, &v)
	if list, ok := v.([]any); ok {
		return list
	}
	if v == nil {
		return nil
	}
	return []any{v}
}

// pairTokens is the prompt of one (query, document) pair, scored together
// as a cross-encoder does: the pair's text / 4, at least 1.
func pairTokens(a, b any) int { return estimateOne([]any{a, b}) }

// relevance is a deterministic score in (0, 1) for item i.
func relevance(i int) float64 { return 0.5 + vector(i, 1)[0]*4 }

func serveRerank(w http.ResponseWriter, body []byte, p params) {
	var req rerankRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	docs := items(req.Documents)
	if len(req.Query) == 0 || len(docs) == 0 {
		writeError(w, http.StatusBadRequest, "fakevllm: rerank needs a query and documents", "documents")
		return
	}
	var query any
	_ = json.Unmarshal(req.Query, &query)
	prompt := 0
	results := make([]rerankResult, len(docs))
	for i, d := range docs {
		prompt += pairTokens(query, d)
		results[i] = rerankResult{Index: i, RelevanceScore: pyFloat(relevance(i))}
		if s, ok := d.(string); ok {
			results[i].Document.Text = &s
		}
	}
	prompt = p.promptOr(prompt)
	sort.SliceStable(results, func(a, b int) bool { return results[a].RelevanceScore > results[b].RelevanceScore })
	if req.TopN > 0 && req.TopN < len(results) {
		results = results[:req.TopN]
	}
	p.tokens.add(model, prompt, 0)
	resp := rerankResponse{ID: newID("rerank-", 32), Model: model, Usage: rerankUsage{prompt, prompt}, Results: results}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

// promptOr is the configured prompt tokens, or derived.
func (p params) promptOr(derived int) int {
	if p.prompt != derive {
		return p.prompt
	}
	return derived
}

// scorePairs is the two sides of a score request, in vLLM's order of
// request shapes.
func (r scoreRequest) scorePairs() (left, right []any, ok bool) {
	for _, pair := range [][2]json.RawMessage{{r.Queries, r.Documents}, {r.Queries, r.Items}, {r.Data1, r.Data2}, {r.Text1, r.Text2}} {
		if len(pair[0]) > 0 && len(pair[1]) > 0 {
			return items(pair[0]), items(pair[1]), true
		}
	}
	return nil, nil, false
}

// serveScore scores one left item against every right item, or the lists
// pairwise when both have the same length.
func serveScore(w http.ResponseWriter, body []byte, p params) {
	var req scoreRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	left, right, ok := req.scorePairs()
	switch {
	case !ok || len(left) == 0 || len(right) == 0:
		writeError(w, http.StatusBadRequest, "fakevllm: score needs queries and documents (or items, data_1 and data_2, text_1 and text_2)", "")
		return
	case len(left) != 1 && len(left) != len(right):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Input lengths must be either 1:1, 1:N or N:N, got %d:%d", len(left), len(right)), "")
		return
	}
	prompt := 0
	data := make([]scoreData, len(right))
	for i, r := range right {
		prompt += pairTokens(left[min(i, len(left)-1)], r)
		data[i] = scoreData{Index: i, Object: "score", Score: pyFloat(relevance(i))}
	}
	prompt = p.promptOr(prompt)
	p.tokens.add(model, prompt, 0)
	writeList(w, p, "score-", model, data, prompt)
}

func writeList(w http.ResponseWriter, p params, idPrefix, model string, data any, prompt int) {
	resp := listResponse{ID: newID(idPrefix, 32), Object: "list", Created: time.Now().Unix(), Model: model, Data: data, Usage: newUsage(prompt, 0, 0)}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

// servePooling answers one pooled vector per input (input or messages).
func servePooling(w http.ResponseWriter, body []byte, p params) {
	var req embeddingRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	dims, ok := embeddingDims(w, p, req.Dimensions)
	if !ok {
		return
	}
	inputs := estimatePrompts(req.Input)
	prompt := p.promptOr(sum(inputs))
	p.tokens.add(model, prompt, 0)
	data := make([]poolingData, len(inputs))
	for i := range inputs {
		data[i] = poolingData{Index: i, Object: "pooling", Data: embedding(i, dims, false)}
	}
	writeList(w, p, "pool-", model, data, prompt)
}

// serveClassify answers two classes per input.
func serveClassify(w http.ResponseWriter, body []byte, p params) {
	var req embeddingRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	inputs := estimatePrompts(req.Input)
	prompt := p.promptOr(sum(inputs))
	p.tokens.add(model, prompt, 0)
	data := make([]classifyData, len(inputs))
	for i := range inputs {
		r := relevance(i)
		label := "LABEL_0"
		if r < 0.5 {
			label = "LABEL_1"
		}
		data[i] = classifyData{Index: i, Label: label, Probs: []pyFloat{pyFloat(r), pyFloat(1 - r)}, NumClasses: 2}
	}
	writeList(w, p, "classify-", model, data, prompt)
}

// invocationTypes is the order in which vLLM's /invocations tries the
// request types; the first whose required fields the body has serves it.
var invocationTypes = []struct {
	name   string
	fields [][]string // any one of these field sets
	serve  func(http.ResponseWriter, []byte, params)
}{
	{"ChatCompletionRequest", [][]string{{"messages"}}, serveChat},
	{"CompletionRequest", [][]string{{"prompt"}, {"prompt_embeds"}}, serveCompletions},
	{"EmbeddingRequest", [][]string{{"input"}}, serveEmbeddings},
	{"RerankRequest", [][]string{{"query", "documents"}}, serveRerank},
	{"ScoreRequest", [][]string{{"queries", "documents"}, {"queries", "items"}, {"data_1", "data_2"}, {"text_1", "text_2"}}, serveScore},
	{"PoolingRequest", [][]string{{"data"}}, servePooling},
}

// serveInvocations routes by body shape: chat (messages), completions
// (prompt), embeddings (input), rerank (query + documents), score, pooling
// (data); any other body is vLLM's 400.
func serveInvocations(w http.ResponseWriter, body []byte, p params) {
	var fields map[string]json.RawMessage
	if err := json.Unmarshal(body, &fields); err != nil {
		writeError(w, http.StatusBadRequest, "JSON decode error: "+err.Error(), "")
		return
	}
	names := make([]string, len(invocationTypes))
	for i, t := range invocationTypes {
		names[i] = "'" + t.name + "'"
		for _, set := range t.fields {
			if hasAll(fields, set) {
				t.serve(w, body, p)
				return
			}
		}
	}
	writeError(w, http.StatusBadRequest, fmt.Sprintf("Cannot find suitable handler for request. Expected one of: [%s]", strings.Join(names, ", ")), "")
}

func hasAll(fields map[string]json.RawMessage, names []string) bool {
	for _, n := range names {
		if v, ok := fields[n]; !ok || string(v) == "null" {
			return false
		}
	}
	return true
}
