package fakevllm

// How the fake counts tokens. One rule serves every endpoint, /tokenize
// included, so that a test can count exactly what the fake reports:
//
//   - text is one token per 4 bytes (UTF-8), rounded down;
//   - a token id in a prompt is one token;
//   - a prompt (or an input, or the messages of a chat) is at least 1 token.
//
// The generated text is made of 4-byte filler words ("Once", " the", " fox",
// …), one per completion token, so any prefix of k delivered words is 4k
// bytes and counts k tokens: /tokenize of delivered text gives back the
// number of tokens that produced it. Token ids are the 4 bytes of the token
// read as a big-endian number, so /detokenize inverts /tokenize (a text's
// last len%4 bytes belong to no token and are dropped).

import (
	"encoding/binary"
	"encoding/json"
	"strings"
)

// bytesPerToken is the fake tokenizer's token size.
const bytesPerToken = 4

// bosTokenID is the id of the one token of an empty prompt.
const bosTokenID = 1

// estimateTokens is the prompt size of a chat "messages" list or a responses
// "input": the bytes of every content/text string / 4, plus one per token id,
// at least 1. Roles, names and other keys do not count.
func estimateTokens(raw json.RawMessage) int {
	var v any
	_ = json.Unmarshal(raw, &v) // raw is valid JSON or empty
	return estimateOne(v)
}

// textOf is the text a prompt value counts: every content/text string
// concatenated, in document order; ids counts its token ids.
func textOf(v any, b *strings.Builder) (ids int) {
	switch v := v.(type) {
	case string:
		b.WriteString(v)
	case float64:
		return 1
	case []any:
		for _, e := range v {
			ids += textOf(e, b)
		}
	case map[string]any:
		for _, k := range []string{"content", "text"} {
			ids += textOf(v[k], b)
		}
	}
	return ids
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
	var b strings.Builder
	ids := textOf(v, &b)
	return max(b.Len()/bytesPerToken+ids, 1)
}

// countText is the number of tokens of text, without the at-least-1 rule.
func countText(text string) int { return len(text) / bytesPerToken }

// tokenIDs is the token ids of text: one per whole 4 bytes.
func tokenIDs(text string) []int {
	out := make([]int, 0, countText(text))
	for i := 0; i+bytesPerToken <= len(text); i += bytesPerToken {
		out = append(out, int(binary.BigEndian.Uint32([]byte(text[i:i+bytesPerToken]))))
	}
	return out
}

// detokenize is the text of ids; ids that are not 4 bytes of text (the BOS
// token, out-of-range numbers) stand for nothing.
func detokenize(ids []int) string {
	var b strings.Builder
	var buf [bytesPerToken]byte
	for _, id := range ids {
		if id <= bosTokenID || id > 0xFFFFFFFF {
			continue
		}
		binary.BigEndian.PutUint32(buf[:], uint32(id))
		b.Write(buf[:])
	}
	return b.String()
}

func sum(xs []int) int {
	t := 0
	for _, x := range xs {
		t += x
	}
	return t
}

// fillerWords are the generated words, each 3 letters: with its leading
// space every word but the first is 4 bytes, one token.
var fillerWords = []string{
	"the", "fox", "ran", "far", "and", "sat", "low", "old", "elm", "top", "see", "how", "sky", "was", "red", "now",
}

// fillerWord is word i of the generated text, one word (4 bytes) per token:
// the first is "Once", the others carry their leading space, so the words
// concatenate to filler(n) and any k of them are 4k bytes.
func fillerWord(i int) string {
	if i == 0 {
		return "Once"
	}
	return " " + fillerWords[i%len(fillerWords)]
}

// filler is the generated text of n tokens.
func filler(n int) string {
	var b strings.Builder
	b.Grow(n * bytesPerToken)
	for i := range n {
		b.WriteString(fillerWord(i))
	}
	return b.String()
}

// fillerIDs is the token ids of the first n generated words.
func fillerIDs(n int) []int { return tokenIDs(filler(n)) }
