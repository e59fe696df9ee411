// Package fakevllm is an in-process stand-in for vLLM's OpenAI-compatible HTTP
// server, for end-to-end tests and the local demo. It follows vLLM's own
// serving code for every endpoint below: key order, Python spacing where
// vLLM uses json.dumps, compact bodies as Starlette renders them.
//
// Endpoints:
//
//	POST /v1/chat/completions     JSON or SSE
//	POST /v1/completions          JSON or SSE; use_beam_search + stream: one event
//	POST /v1/embeddings           float, base64, bytes (usage in the "metadata"
//	                              header), bytes_only (no usage anywhere)
//	POST /v1/responses            JSON, SSE, background (queued, usage null)
//	GET  /v1/responses/{id}       a stored response; a background one completes
//	                              after Config.BackgroundDelay
//	POST /v1/responses/{id}/cancel a pending background response → cancelled
//	POST /v1/messages             Anthropic Messages API, JSON or SSE
//	POST /invocations             routed by body shape (below)
//	POST /inference/v1/generate   token ids in, token ids out
//	POST /v1/audio/transcriptions multipart; usage {"type":"duration","seconds":N}
//	POST /v1/audio/translations   multipart; no usage in JSON, as in vLLM
//	POST /rerank, /v1/rerank, /v2/rerank   usage {prompt_tokens,total_tokens}
//	POST /score, /v1/score, /pooling, /classify   the standard usage object
//	POST /tokenize, /detokenize   the fake's tokenizer (below)
//	GET  /v1/models, /health, /metrics
//
// Errors use vLLM's shape {"error":{"message","type","param","code"}};
// FastAPI request validation errors have type "Bad Request" and param
// "body.<field>"; unknown paths get FastAPI's {"detail":"Not Found"}. On
// /v1/messages, errors from the handler (unknown model, x-fake-status) are
// Anthropic's {"type":"error","error":{"type","message"}} with vLLM's OpenAI
// type names (NotFoundError), while validation errors (max_tokens missing or
// not positive) keep the OpenAI shape, as vLLM answers them.
//
// # Token counts
//
// Token counts are the configured ones, or derived from the request with
// one rule, the fake's tokenizer: text is one token per 4 bytes (rounded
// down), a token id one token, a prompt at least 1 token. A chat prompt
// counts the text of every content/text string of its messages (system and
// messages for /v1/messages, instructions and input for /v1/responses); a
// completions or embeddings prompt list counts each prompt; rerank and
// score count each (query, document) pair together; /inference/v1/generate
// counts its token_ids; audio prompts are the file's seconds. Completion
// tokens are max_tokens (chat: max_completion_tokens first; responses:
// max_output_tokens; generate: sampling_params.max_tokens; audio:
// max_completion_tokens) or 16, per choice; finish_reason is "length" when
// the completion reaches the request's limit (responses: status
// "incomplete"; messages: stop_reason "max_tokens"), else "stop". With n>1
// every choice has the same completion and usage.completion_tokens is the
// sum.
//
// The generated text is one 4-byte filler word per completion token ("Once",
// " fox", " ran", …; at most 16384 words, usage always reports the whole
// count), so delivered text tokenizes back to the tokens that produced it.
// POST /tokenize ({model, prompt} or {model, messages}) answers
// {"count":N,"max_model_len":32768,"tokens":[…],"token_strs":null} with N
// exactly the prompt_tokens the fake reports for that prompt or those
// messages; with "add_special_tokens": false a prompt has no at-least-1
// token, so delivered text of k words counts k. Token ids are the 4 bytes of
// each token read as a big-endian number (1 is the BOS token of an empty
// prompt); /detokenize inverts them. Requests the fake will not generate for
// (n over 128, dimensions over 65536, embed_dtype other than float32) get a
// 400 whose message starts "fakevllm:".
//
// # Streams
//
// Chat and completions stream one SSE event per word, flushed one by one.
// Usage follows vLLM's should_include_usage: a stream_options object turns
// it on unless include_usage is false or null (an empty object turns it on);
// continuous_usage_stats then puts usage on every chunk, the chat role
// chunks included, where completion_tokens is THAT CHOICE's running count
// and prompt_tokens that choice's prompt; the final "choices":[] chunk
// carries the sums, then "data: [DONE]". Config.ForceIncludeUsage
// (--enable-force-include-usage) turns usage and per-chunk usage on for every
// stream. Chat chunks without usage have no usage key; completions chunks
// carry "usage":null. /inference/v1/generate streams one chunk per token with
// the same usage rules (force-include-usage does not apply there, as in
// vLLM). Audio streams take stream_include_usage and
// stream_continuous_usage_stats form fields.
//
// /v1/responses streams response.created, response.in_progress,
// response.output_item.added, response.content_part.added, one
// response.output_text.delta per word, response.output_text.done,
// response.content_part.done, response.output_item.done and
// response.completed (with usage, also when the status is incomplete), each
// "event: T" + "data: …" with sequence_number from 0. /v1/messages streams
// message_start (input tokens, output 0), content_block_start, one
// content_block_delta (text_delta) per word, content_block_stop,
// message_delta (stop_reason and the whole usage) and message_stop.
//
// # /invocations
//
// Routed as vLLM's SageMaker handler tries its request types, first match
// wins: messages → chat, prompt (or prompt_embeds) → completions, input →
// embeddings, query + documents → rerank, queries + documents, queries +
// items, data_1 + data_2 or text_1 + text_2 → score, data → pooling; any
// other body is a 400 naming the types it expected.
//
// # Overrides
//
// Each request may override the configuration with headers (a header given
// replaces the Config value, 0 included); they apply to every endpoint where
// they make sense:
//
//	x-fake-prompt-tokens      prompt tokens to report (the total over all prompts)
//	x-fake-completion-tokens  completion tokens per choice
//	x-fake-cached-tokens      >0 reports prompt_tokens_details {"cached_tokens":N}
//	x-fake-status             answer with this HTTP status; non-2xx gets an error body
//	                          (Anthropic's shape on /v1/messages)
//	x-fake-latency-ms         wait this long before the first byte
//	x-fake-embedding-dims     length of each embedding (and pooling) vector
//	x-fake-model              the model name to report, like Config.ServedModelName
//	x-fake-force-include-usage  true/false: Config.ForceIncludeUsage for this request
//	x-fake-background-ms      how long a background response stays pending
//	x-fake-background-status  what it reports meanwhile: queued (default) or in_progress
//
// A malformed override header is answered with 400 and a message starting
// "fakevllm:". Replay queues exact bytes (a recorded fixture) for a path.
//
//	x-fake-abort-after-events cut the connection (no final chunk) after N SSE events
//	x-fake-error-after-events end with the endpoint's error event after N content
//	                          events: chat, completions, generate and audio send
//	                          {"error": {...}} in json.dumps spacing then [DONE];
//	                          responses an "error" event; messages an Anthropic
//	                          "error" event; never any usage
//	x-fake-event-delay-ms     pause between SSE events (a slow generation)
//	x-fake-stop-after-tokens  the tokens per choice the model generates before it
//	                          stops by itself (Config.StopAfterTokens)
//
// A stream whose client goes away before its end (the connection closed,
// as when a proxy resets the upstream request) stops generating, as vLLM
// aborts such a request; Server.Disconnects counts those streams.
//
// GET /metrics answers in vLLM's Prometheus format with its
// vllm:prompt_tokens_total and vllm:generation_tokens_total counters of the
// tokens this server reported, by model_name (Server.Tokens reads them): an
// answer counts whole when it starts, replays and error answers not at all.
package fakevllm
