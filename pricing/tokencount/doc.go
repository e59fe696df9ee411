// Package tokencount asks the model server itself how many tokens a text
// is: vLLM's POST /tokenize answers the exact count of a prompt (its chat
// template applied) or of a piece of text. spendguard uses it where the
// upstream sent no usage (an aborted or errored stream, an embeddings
// answer in bytes_only form), so that such a request is charged what it
// counted rather than what spendguard guessed.
//
// A Client is bounded in every direction: a fixed number of workers take
// calls from a queue of fixed size, and Submit never waits for room (a
// full queue fails the count at once, and the caller falls back to its
// estimate); every call has a timeout; answers are cached by (model,
// kind, SHA-256 of what was sent) in an LRU of bounded size. A count
// fails (and the caller estimates) when the server is unreachable,
// answers other than 2xx, or answers a count that cannot be right.
//
// Prompts of APIs vLLM serves through its chat template (the Responses
// API, the Anthropic Messages API) are first converted to the chat
// messages vLLM renders for them (FromResponses, FromAnthropic) and then
// counted with ChatMessages; where the body alone cannot say what vLLM
// renders (media, state vLLM keeps, options read by server flags) the
// conversion fails with ErrUncountable and the caller keeps its estimate.
//
// The `pricing.tokenizer:` section configures it (Config, validated into
// Settings). It is off unless a URL is set: spendguard sits in front of
// the model server but is never told its address.
package tokencount
