package fakevllm

// POST /tokenize and /detokenize: vLLM's free token-counting endpoints,
// with the fake's own tokenizer (see tokens.go), so that /tokenize of a
// prompt gives exactly the prompt_tokens the fake reports for it.

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
)

type tokenizeRequest struct {
	Model            string          `json:"model"`
	Prompt           *string         `json:"prompt"`
	Messages         json.RawMessage `json:"messages"`
	AddSpecialTokens *bool           `json:"add_special_tokens"`
	ReturnTokenStrs  bool            `json:"return_token_strs"`
}

// tokenizeResponse is vLLM's TokenizeResponse as model_dump() writes it.
type tokenizeResponse struct {
	Count       int       `json:"count"`
	MaxModelLen int       `json:"max_model_len"`
	Tokens      []int     `json:"tokens"`
	TokenStrs   *[]string `json:"token_strs"`
}

// serveTokenize counts a prompt ({model, prompt}) as /v1/completions
// reports it, or messages ({model, messages}) as /v1/chat/completions does:
// one token per 4 bytes of text, at least 1. With "add_special_tokens":
// false a prompt has no at-least-1 token, so the count of delivered text
// is exactly its words.
func serveTokenize(w http.ResponseWriter, body []byte, p params) {
	var req tokenizeRequest
	if _, ok := decode(w, body, p, &req, &req.Model); !ok {
		return
	}
	var text strings.Builder
	var count int
	switch {
	case req.Prompt != nil:
		text.WriteString(*req.Prompt)
		count = countText(*req.Prompt)
		if req.AddSpecialTokens == nil || *req.AddSpecialTokens {
			count = max(count, 1)
		}
	case len(req.Messages) > 0 && string(req.Messages) != "null":
		var v any
		_ = json.Unmarshal(req.Messages, &v)
		textOf(v, &text)
		count = estimateOne(v)
	default:
		writeTypedError(w, http.StatusBadRequest, "Bad Request",
			"1 validation error:\n  {'type': 'missing', 'loc': ('body', 'prompt'), 'msg': 'Field required'}", "body.prompt")
		return
	}
	ids := tokenIDs(text.String())
	for len(ids) < count { // the BOS token, and any token ids in the messages
		ids = append([]int{bosTokenID}, ids...)
	}
	ids = ids[len(ids)-count:]
	resp := tokenizeResponse{Count: count, MaxModelLen: maxModelLen, Tokens: ids}
	if req.ReturnTokenStrs {
		strs := make([]string, len(ids))
		for i, id := range ids {
			strs[i] = detokenize([]int{id})
		}
		resp.TokenStrs = &strs
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

type detokenizeRequest struct {
	Model  string `json:"model"`
	Tokens []int  `json:"tokens"`
}

// serveDetokenize answers {"prompt": text} for token ids: the inverse of
// /tokenize, the BOS token standing for nothing.
func serveDetokenize(w http.ResponseWriter, body []byte, p params) {
	var req detokenizeRequest
	if _, ok := decode(w, body, p, &req, &req.Model); !ok {
		return
	}
	for _, id := range req.Tokens {
		if id < 0 || id > 0xFFFFFFFF {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("token id %d out of vocabulary", id), "tokens")
			return
		}
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(struct {
		Prompt string `json:"prompt"`
	}{detokenize(req.Tokens)}), p.chunkSize)
}
