package fakevllm

// POST /inference/v1/generate: vLLM's tokens-in, tokens-out endpoint.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"time"
)

type generateRequest struct {
	Model          *string         `json:"model"`
	TokenIDs       []int           `json:"token_ids"`
	SamplingParams *samplingParams `json:"sampling_params"`
	Stream         bool            `json:"stream"`
	StreamOptions  *streamOptions  `json:"stream_options"`
}

type samplingParams struct {
	N         *int `json:"n"`
	MaxTokens *int `json:"max_tokens"`
}

// generateResponse is vLLM's GenerateResponse as model_dump() writes it.
type generateResponse struct {
	RequestID        string           `json:"request_id"`
	Model            string           `json:"model"`
	Created          int64            `json:"created"`
	Choices          []generateChoice `json:"choices"`
	Usage            *usageInfo       `json:"usage"`
	PromptLogprobs   null             `json:"prompt_logprobs"`
	KVTransferParams null             `json:"kv_transfer_params"`
	ECTransferParams null             `json:"ec_transfer_params"`
}

type generateChoice struct {
	Index         int     `json:"index"`
	Logprobs      null    `json:"logprobs"`
	FinishReason  *string `json:"finish_reason"`
	TokenIDs      []int   `json:"token_ids"`
	RoutedExperts null    `json:"routed_experts"`
}

// generateChunk is GenerateStreamResponse: a token chunk dumped with every
// field, the final usage chunk without Nones.
type generateChunk struct {
	RequestID string           `json:"request_id"`
	Choices   []generateChoice `json:"choices"`
	Usage     *usageInfo       `json:"usage"`
}

type generateUsageChunk struct {
	RequestID string       `json:"request_id"`
	Choices   emptyList    `json:"choices"`
	Usage     *streamUsage `json:"usage"`
}

// serveGenerate answers the ids of the filler words: prompt tokens are the
// request's token_ids, completion tokens sampling_params.max_tokens (or the
// configured count, or 16) per choice.
func serveGenerate(w http.ResponseWriter, body []byte, p params) {
	var req generateRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeError(w, http.StatusBadRequest, "JSON decode error: "+err.Error(), "")
		return
	}
	for _, f := range []struct {
		missing bool
		name    string
	}{{req.TokenIDs == nil, "token_ids"}, {req.SamplingParams == nil, "sampling_params"}} {
		if f.missing {
			writeTypedError(w, http.StatusBadRequest, "Bad Request",
				fmt.Sprintf("1 validation error:\n  {'type': 'missing', 'loc': ('body', '%s'), 'msg': 'Field required'}", f.name), "body."+f.name)
			return
		}
	}
	requested := ""
	if req.Model != nil {
		requested = *req.Model
	}
	model, ok := p.modelFor(requested)
	if !ok {
		writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", requested), "model")
		return
	}
	n, ok := validate(w, req.SamplingParams.N, req.SamplingParams.MaxTokens)
	if !ok {
		return
	}
	pl := newPlan(p, model, []int{len(req.TokenIDs)}, req.SamplingParams.MaxTokens, n)
	p.tokens.add(model, pl.prompt, pl.perChoice*pl.choices)
	if req.Stream {
		include, continuous := usageModes(req.StreamOptions, false)
		streamGenerate(w, p, pl, include, continuous)
		return
	}
	ids := fillerIDs(pl.words)
	resp := generateResponse{RequestID: newID("", 32), Model: model, Created: time.Now().Unix(), Usage: &pl.usage}
	for i := range pl.choices {
		resp.Choices = append(resp.Choices, generateChoice{Index: i, FinishReason: &pl.finish, TokenIDs: ids})
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

// streamGenerate sends one chunk per generated token (choices interleaved),
// finish_reason on each choice's last, then the usage chunk when asked.
// vLLM's generate streams ignore --enable-force-include-usage.
func streamGenerate(w http.ResponseWriter, p params, pl plan, includeUsage, continuous bool) {
	s := newSSEWriter(w, p)
	id := "generate-tokens-" + newID("", 32)
	ids := fillerIDs(pl.words)
	sent := make([]int, pl.choices)
	for k := range pl.words {
		for i := range pl.choices {
			if s.failNow() {
				return
			}
			c := generateChoice{Index: i, TokenIDs: ids[k : k+1]}
			sent[i]++
			if k == pl.words-1 {
				c.FinishReason = &pl.finish
				sent[i] = pl.perChoice
			}
			chunk := generateChunk{RequestID: id, Choices: []generateChoice{c}}
			if continuous {
				u := pl.usageFor(i, sent[i])
				chunk.Usage = &u
			}
			s.data(chunk)
		}
	}
	if includeUsage {
		s.data(generateUsageChunk{RequestID: id, Usage: pl.streamUsage()})
	}
	s.done()
}
