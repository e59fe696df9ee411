package pricing

import (
	"bytes"

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

// fields holds the value of each field, nil when the body does not have
// it: what jsonscan.Object.Get returns for its name (the last of duplicate
// keys wins), found in one pass over the members instead of one pass per
// field.
type fields [nFields][]byte

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
