package tokencount

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
)

// ErrAbsurd is wrapped by the error of an answer whose count cannot be
// right: negative, different from the number of tokens listed, beyond the
// model's context length for a prompt, or more tokens than the text has
// bytes (plus a few special tokens) for a delivered text.
var ErrAbsurd = errors.New("tokenize answer not believable")

// maxAnswerBytes bounds the answer read: a token id takes at most 11
// bytes in the list, and no context is near 10M tokens.
const maxAnswerBytes = 64 << 20

// answer is vLLM's TokenizeResponse: {"count":N,"max_model_len":M,"tokens":[…]}
// (token_strs when asked for, which spendguard does not).
type answer struct {
	Count       *int64  `json:"count"`
	MaxModelLen int64   `json:"max_model_len"`
	Tokens      []int64 `json:"tokens"`
}

// parseAnswer reads a /tokenize answer and returns its count. It fails on
// anything but a JSON object with an integer count, and on a count that
// disagrees with the token list when the list is there, is negative, or
// is above max_model_len when that is positive.
func parseAnswer(b []byte) (int64, error) {
	var a answer
	d := json.NewDecoder(bytes.NewReader(b))
	if err := d.Decode(&a); err != nil {
		return 0, fmt.Errorf("tokenize answer: %w", err)
	}
	if d.More() {
		return 0, errors.New("tokenize answer: data after the JSON object")
	}
	switch {
	case a.Count == nil:
		return 0, errors.New("tokenize answer: no count")
	case *a.Count < 0:
		return 0, fmt.Errorf("%w: count %d", ErrAbsurd, *a.Count)
	case a.Tokens != nil && int64(len(a.Tokens)) != *a.Count:
		return 0, fmt.Errorf("%w: count %d but %d tokens", ErrAbsurd, *a.Count, len(a.Tokens))
	case a.MaxModelLen > 0 && *a.Count > a.MaxModelLen:
		return 0, fmt.Errorf("%w: count %d above max_model_len %d", ErrAbsurd, *a.Count, a.MaxModelLen)
	}
	return *a.Count, nil
}
