// Package usage reads the token usage that an OpenAI-compatible upstream
// (vLLM, OpenAI) reports in a non-streaming JSON response body, as the body
// streams through the proxy in chunks split at arbitrary bytes, without
// holding the body in memory.
//
// # Scanner
//
// JSONScanner is a byte-level state machine over one JSON document. It
// validates the whole document (the same grammar as encoding/json, including
// its nesting limit of 10000) and tracks nesting depth, strings and escapes
// across chunk boundaries. It decodes only the keys of the top-level object,
// and captures only the bytes of the value of the top-level member named
// "usage", at most MaxUsageBytes of them. Everything else (the data array of
// a 50 MB embeddings response, long content strings) is skipped in constant
// memory without allocating. Write never retains its argument.
//
// Decisions, exactly:
//
//   - Only a member of the top-level object counts. A "usage" key nested
//     anywhere else (inside choices, a message, tool call arguments) and the
//     text "usage" inside any string are ignored.
//   - Keys are compared after unescaping, byte for byte and case-sensitively:
//     "us\u0061ge" is the key usage; "Usage" is not. (encoding/json would match
//     "Usage" to a struct field case-insensitively; a map key would not. This
//     package behaves like a map.)
//   - If the top-level object has several usage members, the last one wins,
//     whatever it holds: a later null hides an earlier object, and a later
//     valid object replaces an earlier undecodable or oversized one.
//   - "usage": null, or no usage member, gives found=false and no error.
//   - A body that is valid JSON but not an object (an array, a string, a
//     number, true, false, null) gives found=false and no error. An error
//     body such as {"error":{...}} is an object without usage: found=false,
//     no error.
//   - A body that is not valid JSON gives an error wrapping ErrMalformed (at
//     the first bad byte; later bytes are ignored), a body that ends before
//     its JSON value is complete (including an empty or all-whitespace body)
//     gives ErrTruncated. Whitespace after the value is allowed; anything
//     else after it is ErrMalformed.
//   - A usage value that is not an object, or an object that ParseUsageObject
//     rejects, gives an error wrapping ErrUsage. One larger than MaxUsageBytes
//     gives an error wrapping both ErrUsage and ErrUsageTooLarge; nothing is
//     counted from it.
//   - Whenever Result returns an error, the usage is zero and found is false:
//     a caller that must charge something falls back to its own estimate.
//   - Error messages carry the byte offset of the problem in the whole body,
//     so they are the same however the body was split.
//
// # Usage objects
//
// ParseUsageObject decodes one usage object in either vocabulary:
//
//   - chat, completions and embeddings: prompt_tokens, completion_tokens,
//     total_tokens, prompt_tokens_details.cached_tokens,
//     completion_tokens_details.reasoning_tokens;
//   - Responses API: input_tokens, output_tokens, total_tokens,
//     input_tokens_details.cached_tokens,
//     output_tokens_details.reasoning_tokens.
//
// They map to pricing.Usage{Prompt, CachedPrompt, Completion}; reasoning
// tokens (already part of Completion) are reported in Details. Rules:
//
//   - The prompt count (prompt_tokens or input_tokens) is required. The
//     completion count is optional and 0 when absent (OpenAI embeddings).
//     A details object may be absent or null; so may any count, and null
//     counts as absent.
//   - A count must be a JSON integer written without sign, fraction or
//     exponent that fits in int64: -1, 1.0, 1e2 and "1" are errors. The
//     same holds for total_tokens, which is validated but not otherwise used
//     (it is not required to equal prompt + completion).
//   - If a quantity is given under both vocabularies, the two values must be
//     equal.
//   - Cached tokens may not exceed the prompt tokens (they are part of them).
//   - Other members are ignored. Keys are matched exactly, and duplicate keys
//     resolve to the last one, as with encoding/json and a map.
//
// Streaming (SSE) bodies are not handled here; the usage object of a stream
// event can be decoded with ParseUsageObject, or the event's JSON fed to a
// JSONScanner.
package usage
