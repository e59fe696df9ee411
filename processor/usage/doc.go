// Package usage reads the token usage that an OpenAI-compatible upstream
// (vLLM, OpenAI) reports in a response body, as the body streams through the
// proxy in chunks split at arbitrary bytes, without holding the body in
// memory: JSONScanner for a JSON body, SSEScanner for a text/event-stream
// (a "stream": true response).
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
// plus, from the Anthropic Messages API, cache_read_input_tokens and
// cache_creation_input_tokens, and the audio usage of transcriptions,
// {"type":"duration","seconds":N}.
//
// They map to pricing.Usage{Prompt, CachedPrompt, Completion, Seconds};
// reasoning tokens (already part of Completion) are reported in Details.
// Rules:
//
//   - The prompt count (prompt_tokens or input_tokens) is required. The
//     completion count is optional and 0 when absent (OpenAI embeddings).
//     A details object may be absent or null; so may any count, and null
//     counts as absent.
//   - A count must be a JSON integer written without sign, fraction or
//     exponent: -1, 12.5, 1.0, 1e3, 1e300 and "1" are errors (the caller
//     then charges its estimate). An integer too large for int64 counts as
//     math.MaxInt64 (2^63-1) tokens: an absurd count saturates, so its cost
//     saturates and blocks every capped budget it is charged to; it never
//     wraps negative, and one more digit never turns it into the smaller
//     estimate. The same holds for total_tokens, which is validated but not
//     otherwise used (it is not required to equal prompt + completion).
//   - If a quantity is given under both vocabularies, the two values must be
//     equal.
//   - Cached tokens may not exceed the prompt tokens (they are part of them).
//   - Anthropic's input_tokens leave out the prompt tokens read from or
//     written to its cache: cache_read_input_tokens and
//     cache_creation_input_tokens (counts as above, null or absent as 0)
//     are added to the prompt, and the reads to the cached prompt
//     (saturating). vLLM's /v1/messages sends neither: its input_tokens
//     are the whole prompt.
//   - When the member type is the string "duration" (after unescaping),
//     seconds is a required count (an integer, as above: vLLM rounds the
//     audio's length up) that becomes Seconds, and the prompt count is
//     optional; token counts given beside it are read as usual. With any
//     other type, or none, seconds is not read.
//   - Other members are ignored. Keys are matched exactly, and duplicate keys
//     resolve to the last one, as with encoding/json and a map.
//
// # Streams
//
// SSEScanner reads a streamed response: SSEChat for /v1/chat/completions,
// /v1/completions and the other chat-like streams (generate,
// transcription.chunk and translation.chunk), SSEResponses for
// /v1/responses, SSEAnthropic for /v1/messages. Chunks may split it
// anywhere: inside a field name, a JSON string, a multi-byte character, or
// between the '\r' and '\n' of a line end.
//
// Framing follows the WHATWG event-stream format: lines end with "\r\n",
// "\n" or "\r"; a blank line ends an event; lines starting with ':' are
// comments (keep-alives); a field's name runs to the first ':' and one space
// after it is dropped; data lines are joined with '\n'; the last event
// field names the event; id, retry and unknown fields are ignored. A block
// of lines without a data line is no event. A byte-order mark is not
// stripped (vLLM sends none). At Finish, an unterminated last event is read
// as if a blank line followed it.
//
// Cheap by default: an event's data is copied into a reused buffer and
// searched (bytes.Index) for a few quoted keys. A token event is never
// decoded and, once the buffers have grown, nothing is allocated for it,
// including OpenAI's "usage":null. Only these events are decoded:
//
//   - an event with a "usage" key whose value is not null, or with an
//     escaped letter of "usage" (\u0061, \u0065, \u0067, \u0073, \u0075):
//     a JSONScanner runs over its data;
//   - when dropping, the usage event: its top-level members are checked.
//
// Usage, decisions exactly:
//
//   - SSEChat: the top-level usage member of an event's JSON; SSEResponses:
//     its response.usage member. Keys match as in JSONScanner: exactly,
//     after unescaping, the last duplicate winning.
//   - The last event with a non-null usage wins. Events with a null or no
//     usage change nothing, nor do events whose data is not JSON (such as a
//     truncated last event). When the winning usage cannot be decoded,
//     Result returns an error wrapping ErrUsage and naming the event.
//   - SSEChat, continuous_usage_stats: an event whose top-level choices is
//     a non-empty array carries the running count of one choice, the one
//     whose index its first choice names (an integer from 0 to 4095;
//     another index, or none, makes it an event of the request, below).
//     Each choice's last count is kept; an event without choices or with
//     an empty choices array (the usage-only event) carries the
//     request's usage. Once such an event came, it wins (the last of
//     them) and later choice events change nothing; until then the
//     usage is the last choice event's, with the completion replaced by
//     the sum over choices of each one's last count (saturating). So a
//     stream aborted before its usage-only event is charged the tokens
//     of every choice; with n=1 the sum is the last count. With several
//     prompts (SetChoicesPerPrompt(n): a completions request whose prompt
//     is a list; vLLM numbers choice i of prompt p as p*n + i and gives
//     each choice's event its own prompt's prompt_tokens), the prompt is
//     likewise the sum over the prompts seen of each one's last
//     prompt_tokens, not the last event's.
//   - SSEAnthropic: the type of an event is its event field, else the
//     first "type" in its data. message_start's message.usage is kept
//     apart: on its own it is no usage (Result reports none) but
//     PromptOnly reports it, the prompt of a stream cut before its end.
//     message_delta's top-level usage is the request's: its members are
//     laid over message_start's usage members (a later member wins, as in
//     one object), so an Anthropic delta with output_tokens alone is read
//     whole, and the result is decoded as a usage object; the last
//     message_delta wins. Other events' usage, and event: error frames,
//     change nothing.
//   - An event with more than MaxSSEEventBytes of data still gives its
//     usage (the rest of its data streams through a JSONScanner), but the
//     checks below see only its first MaxSSEEventBytes; it counts as an
//     event of the request, not of a choice, and its Anthropic usage is
//     not read.
//
// Dropping the usage event (dropUsageEvent, SSEChat only): the event that
// OpenAI and vLLM send because stream_options.include_usage is set, a JSON
// object whose top-level usage is not null and whose top-level choices is
// an empty array, is removed from the output byte-exactly: its block, from
// the end of the previous event's blank line (comments and other fields
// included) through its own blank line, both bytes of a "\r\n". The
// client's stream is the upstream's minus those bytes. Every such event is
// dropped; none other is. To do it across chunks, the bytes of an
// unterminated last event are held back and returned by a later Write or by
// Finish; a chunk that ends on an event boundary and holds no usage event
// comes back unchanged, without a copy. An event longer than
// MaxSSEEventBytes (counting its blank line) is forwarded as it arrives and
// never dropped; an unterminated event at Finish is forwarded unchanged.
// Dropping changes nothing that the scanner reports.
//
// Hiding each chunk's usage (SetStripChunkUsage, SSEChat only): when
// spendguard asks vLLM for continuous_usage_stats to follow a stream's
// running count, a client that did not ask for it must not see it. Every
// event whose top-level choices is a non-empty array loses its top-level
// usage: StripDelete (chat) removes the member with the separator before
// it (or, for members before the first other one, with the separators up
// to it), so the chunk is what vLLM's chat dump writes without continuous
// usage, no usage key; StripNull (completions) writes null in place of
// each usage value that is not null, as vLLM's completions dump writes
// "usage":null. Duplicate and escaped usage keys are all hidden; nested
// usage keys are not touched. The usage is read from the event first, so
// Result (the running usage, above) is the same with or without hiding.
// The usage-only event (choices empty) is left to dropUsageEvent. Like
// dropping, hiding holds each event back until its blank line, so an
// event is forwarded whole, rewritten or not, and the output is the same
// for any split of the input (inside the usage object, inside a number,
// between the '\r' and '\n' of a line end). Only an event of one data
// line (vLLM's shape) whose data is a valid JSON object is rewritten, the
// rest of its block (comments, id and retry fields, line ends) kept byte
// for byte; an event longer than MaxSSEEventBytes (counting its blank
// line) is forwarded as it came, usage included, and so is any other
// event. An unterminated last event is rewritten by Finish. Once the
// buffers have grown, hiding allocates nothing.
//
// The other findings:
//
//   - Model: the model the upstream names, the top-level "model" string of
//     the first event that has one (SSEResponses: response.model); see
//     model.go. JSONScanner.Model is the top-level "model" of a JSON body.
//   - ContentEvents, a heuristic to estimate the completion of a stream that
//     ends without usage (about one token per event; vLLM sends one per
//     token): for SSEChat the events with a non-empty string under a
//     content, text, reasoning_content, reasoning or refusal key, or a
//     non-empty tool_calls array, found by search, so at any depth; for
//     SSEResponses the events whose type (event field, else the first
//     "type" in the data) ends in ".delta" and whose "delta" is a non-empty
//     string; for SSEAnthropic the content_block_delta events with a
//     non-empty text, partial_json or thinking string (signature_delta
//     events are not content).
//   - Text (opt-in, SetCaptureText): the decoded text the content events
//     deliver, in stream order, at most the limit in bytes (cut before an
//     incomplete character, and nothing after a cut): SSEChat the text of
//     every choice and, in its delta, content, reasoning_content,
//     reasoning, refusal and each tool call's function.arguments;
//     SSEResponses the delta string of a *.delta event; SSEAnthropic
//     the delta's text, partial_json and thinking. Off (the default) it
//     costs nothing but a comparison per content event.
//   - Model for SSEAnthropic: message_start's message.model.
package usage
