package pricing

import (
	"bytes"
	"math"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// field is a top-level member of a request body that ParseRequest reads.
type field int

const (
	fModel field = iota
	fUser
	fStream
	fStreamOptions
	fMaxTokens
	fMaxCompletionTokens
	fMaxOutputTokens
	fN
	fBestOf
	fMessages
	fPrompt
	fInput
	fInstructions
	fTools
	fFunctions
	fDocuments
	fChatTemplate
	fPromptEmbeds
	fSystem
	fTokenIDs
	fSamplingParams
	fQuery
	fQueries
	fItems
	fData1
	fData2
	fText1
	fText2
	nFields
	noField = nFields
)

// fieldNames are the fields' keys.
var fieldNames = [nFields]string{
	fModel: "model", fUser: "user", fStream: "stream", fStreamOptions: "stream_options",
	fMaxTokens: "max_tokens", fMaxCompletionTokens: "max_completion_tokens",
	fMaxOutputTokens: "max_output_tokens", fN: "n", fBestOf: "best_of",
	fMessages: "messages", fPrompt: "prompt", fInput: "input", fInstructions: "instructions",
	fTools: "tools", fFunctions: "functions", fDocuments: "documents",
	fChatTemplate: "chat_template", fPromptEmbeds: "prompt_embeds",
	fSystem:         "system",
	fTokenIDs:       "token_ids",
	fSamplingParams: "sampling_params",
	fQuery:          "query",
	fQueries:        "queries",
	fItems:          "items",
	fData1:          "data_1",
	fData2:          "data_2",
	fText1:          "text_1",
	fText2:          "text_2",
}

// fields holds where the value of each field is in the body, found in
// one pass over the members instead of one pass per field: get returns
// what jsonscan.Object.Get returns for its name (the last of duplicate
// keys wins). The values are kept as offsets rather than slices: 8 bytes
// a field instead of 24, and one pointer for the garbage collector
// instead of one per field, in every parse and in every Body (which lives
// in each stream for the whole request).
type fields struct {
	body []byte
	at   [nFields]fieldSpan
}

// fieldSpan is body[start:end] of a field's value; end is 0 when the body
// does not have the field (a value never ends at 0).
type fieldSpan struct{ start, end uint32 }

// maxBodyLen is the longest body whose offsets a fieldSpan holds. gRPC
// frames, and so ext_proc bodies, are shorter.
const maxBodyLen = math.MaxUint32

// get is the value of field k, nil when the body does not have it.
func (f *fields) get(k field) []byte {
	s := f.at[k]
	if s.end == 0 || f.body == nil {
		return nil
	}
	return f.body[s.start:s.end]
}

// set records body[start:end] as the value of field k; the body must be
// the one set recorded before, and at most maxBodyLen long.
func (f *fields) set(body []byte, k field, start, end int) {
	f.body = body
	f.at[k] = fieldSpan{uint32(start), uint32(end)}
}

// fieldOf is the field whose name a key as written decodes to, noField
// when none: the field a key without escapes spells byte for byte (see
// jsonscan.KeyIs), else the one an escaped key decodes to.
func fieldOf(key []byte) field {
	switch string(key) {
	case "model":
		return fModel
	case "user":
		return fUser
	case "stream":
		return fStream
	case "stream_options":
		return fStreamOptions
	case "max_tokens":
		return fMaxTokens
	case "max_completion_tokens":
		return fMaxCompletionTokens
	case "max_output_tokens":
		return fMaxOutputTokens
	case "n":
		return fN
	case "best_of":
		return fBestOf
	case "messages":
		return fMessages
	case "prompt":
		return fPrompt
	case "input":
		return fInput
	case "instructions":
		return fInstructions
	case "tools":
		return fTools
	case "functions":
		return fFunctions
	case "documents":
		return fDocuments
	case "chat_template":
		return fChatTemplate
	case "prompt_embeds":
		return fPromptEmbeds
	case "system":
		return fSystem
	case "token_ids":
		return fTokenIDs
	case "sampling_params":
		return fSamplingParams
	case "query":
		return fQuery
	case "queries":
		return fQueries
	case "items":
		return fItems
	case "data_1":
		return fData1
	case "data_2":
		return fData2
	case "text_1":
		return fText1
	case "text_2":
		return fText2
	}
	if bytes.IndexByte(key, '\\') >= 0 {
		for k, name := range fieldNames {
			if jsonscan.KeyIs(key, name) {
				return field(k)
			}
		}
	}
	return noField
}
