package fakevllm

import (
	"encoding/json"
	"strings"
)

// estimateTokens is the prompt size of a chat "messages" list or a responses
// "input": the bytes of every content/text string / 4, plus one per token id,
// at least 1. Roles, names and other keys do not count.
func estimateTokens(raw json.RawMessage) int {
	var v any
	_ = json.Unmarshal(raw, &v) // raw is valid JSON or empty
	bytes, ids := textSize(v)
	return max(bytes/4+ids, 1)
}

func textSize(v any) (bytes, ids int) {
	switch v := v.(type) {
	case string:
		return len(v), 0
	case float64:
		return 0, 1
	case []any:
		for _, e := range v {
			b, i := textSize(e)
			bytes, ids = bytes+b, ids+i
		}
	case map[string]any:
		for _, k := range []string{"content", "text"} {
			b, i := textSize(v[k])
			bytes, ids = bytes+b, ids+i
		}
	}
	return bytes, ids
}

// estimatePrompts sizes each prompt of a completions "prompt" or an
// embeddings "input": a string, a list of strings, a list of token ids (one
// prompt), or a list of token-id lists. Each prompt is at least 1 token.
func estimatePrompts(raw json.RawMessage) []int {
	var v any
	_ = json.Unmarshal(raw, &v)
	list, ok := v.([]any)
	if !ok || len(list) == 0 {
		return []int{estimateOne(v)}
	}
	if _, isID := list[0].(float64); isID {
		return []int{estimateOne(list)}
	}
	out := make([]int, len(list))
	for i, e := range list {
		out[i] = estimateOne(e)
	}
	return out
}

func estimateOne(v any) int {
	bytes, ids := textSize(v)
	return max(bytes/4+ids, 1)
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

var fillerWords = []string{
	"lorem", "ipsum", "dolor", "sit", "amet", "consectetur", "adipiscing", "elit",
	"sed", "do", "eiusmod", "tempor", "incididunt", "ut", "labore", "et",
}

// fillerWord is word i of the generated text, one word per token; words after
// the first carry their leading space, so the words concatenate to filler(n).
func fillerWord(i int) string {
	w := fillerWords[i%len(fillerWords)]
	if i == 0 {
		return w
	}
	return " " + w
}

// filler is the generated text of n tokens.
func filler(n int) string {
	var b strings.Builder
	for i := range n {
		b.WriteString(fillerWord(i))
	}
	return b.String()
}
