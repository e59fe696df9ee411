package workload

import (
	"strconv"
	"strings"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
)

// Model is the model every request asks for; Config prices it.
const Model = "meta-llama/Llama-3.1-70B-Instruct"

// Usage the upstream reports for every response, and the prompt it implies.
const (
	PromptTokens     = 310
	CompletionTokens = 200
)

// Kind is the shape of a lifecycle.
type Kind int

const (
	// JSON is a non-streaming chat completion: a 1 KiB request, one JSON
	// response body with usage.
	JSON Kind = iota
	// SSE is a streaming chat completion whose client did not ask for
	// usage: spendguard injects stream_options.include_usage, and the
	// response is TokenEvents token events, the usage event, [DONE] and
	// the empty end-of-stream chunk.
	SSE
)

func (k Kind) String() string {
	if k == SSE {
		return "streaming"
	}
	return "non-streaming"
}

// TokenEvents is the number of token events of an SSE response.
const TokenEvents = 200

// Lifecycle is the message sequence of one HTTP request as envoysim sends
// it for spendguard's processing mode (request headers SEND, request body
// BUFFERED, response headers SEND, response body STREAMED). The messages
// are built once and shared: gRPC marshals them synchronously on Send and
// nothing mutates them.
type Lifecycle struct {
	Kind            Kind
	RequestHeaders  *extprocv3.ProcessingRequest // carries protocol_config: the first message
	RequestBody     *extprocv3.ProcessingRequest
	ResponseHeaders *extprocv3.ProcessingRequest
	ResponseBody    []*extprocv3.ProcessingRequest // the last one has end_of_stream
}

// NewLifecycle builds the messages of one load-generator worker's
// requests: its tenant and user go in the headers, as the identity
// section reads them.
func NewLifecycle(kind Kind, tenant, user, requestID string) *Lifecycle {
	return newLifecycle(kind, tenant, user, requestID, false)
}

// NewDuplexLifecycle is NewLifecycle in the mode the shipped Envoy
// bootstraps use: the response body FULL_DUPLEX_STREAMED, so that a
// stream's reservation grows and it can be ended at a cap. The upstream's
// SSE chunks then carry vLLM's continuous usage (the running count on
// every chunk), which spendguard asks for in that mode.
func NewDuplexLifecycle(kind Kind, tenant, user, requestID string) *Lifecycle {
	return newLifecycle(kind, tenant, user, requestID, true)
}

func newLifecycle(kind Kind, tenant, user, requestID string, duplex bool) *Lifecycle {
	body := requestBody(kind == SSE)
	lc := &Lifecycle{Kind: kind}
	lc.RequestHeaders = &extprocv3.ProcessingRequest{
		Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: &extprocv3.HttpHeaders{
			Headers: headerMap(requestHeaders(len(body), tenant, user, requestID)),
		}},
		// Envoy announces the body modes on the first message of a stream.
		ProtocolConfig: &extprocv3.ProtocolConfiguration{
			RequestBodyMode:  extprocfilterv3.ProcessingMode_BUFFERED,
			ResponseBodyMode: extprocfilterv3.ProcessingMode_STREAMED,
		},
	}
	if duplex {
		lc.RequestHeaders.ProtocolConfig.ResponseBodyMode = extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
	}
	lc.RequestBody = bodyMsg(true, body, true)
	var chunks [][]byte
	if kind == SSE {
		lc.ResponseHeaders = headersMsg(false, responseHeaders("text/event-stream; charset=utf-8", -1))
		chunks = sseChunks(duplex)
	} else {
		resp := []byte(jsonResponse)
		lc.ResponseHeaders = headersMsg(false, responseHeaders("application/json", len(resp)))
		// A body with content-length: the codec delivers its last bytes
		// with end_of_stream.
		chunks = [][]byte{resp}
	}
	for i, c := range chunks {
		lc.ResponseBody = append(lc.ResponseBody, bodyMsg(false, c, i == len(chunks)-1))
	}
	return lc
}

// requestHeaders is what the ext_proc filter sees from an OpenAI Python
// client: pseudo-headers first, then the client's headers sorted by name,
// then what Envoy's connection manager adds.
func requestHeaders(contentLength int, tenant, user, requestID string) [][2]string {
	return [][2]string{
		{":authority", "vllm.internal:8080"},
		{":path", "/v1/chat/completions"},
		{":method", "POST"},
		{":scheme", "http"},
		{"accept", "application/json"},
		{"accept-encoding", "gzip, deflate"},
		{"content-length", strconv.Itoa(contentLength)},
		{"content-type", "application/json"},
		{"user-agent", "OpenAI/Python 1.109.1"},
		{"x-stainless-arch", "x64"},
		{"x-stainless-lang", "python"},
		{"x-stainless-os", "Linux"},
		{"x-stainless-package-version", "1.109.1"},
		{"x-stainless-retry-count", "0"},
		{"x-stainless-runtime", "CPython"},
		{"x-stainless-runtime-version", "3.12.3"},
		{"x-tenant-id", tenant},
		{"x-user-id", user},
		{"x-forwarded-proto", "http"},
		{"x-request-id", requestID},
	}
}

// responseHeaders are vLLM's (uvicorn) response headers after Envoy's
// codec: transfer-encoding is consumed, x-envoy-upstream-service-time
// added. contentLength < 0 means chunked.
func responseHeaders(contentType string, contentLength int) [][2]string {
	h := [][2]string{{":status", "200"}}
	if contentLength >= 0 {
		h = append(h, [2]string{"content-length", strconv.Itoa(contentLength)})
	}
	return append(h,
		[2]string{"content-type", contentType},
		[2]string{"date", "Sun, 15 Nov 2026 10:00:00 GMT"},
		[2]string{"server", "uvicorn"},
		[2]string{"x-envoy-upstream-service-time", "12"},
	)
}

// headerMap renders headers as Envoy sends them: values in raw_value only.
func headerMap(h [][2]string) *corev3.HeaderMap {
	m := &corev3.HeaderMap{Headers: make([]*corev3.HeaderValue, len(h))}
	for i, kv := range h {
		m.Headers[i] = &corev3.HeaderValue{Key: kv[0], RawValue: []byte(kv[1])}
	}
	return m
}

func headersMsg(request bool, h [][2]string) *extprocv3.ProcessingRequest {
	hh := &extprocv3.HttpHeaders{Headers: headerMap(h)}
	if request {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestHeaders{RequestHeaders: hh}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseHeaders{ResponseHeaders: hh}}
}

func bodyMsg(request bool, data []byte, endOfStream bool) *extprocv3.ProcessingRequest {
	hb := &extprocv3.HttpBody{Body: data, EndOfStream: endOfStream}
	if request {
		return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_RequestBody{RequestBody: hb}}
	}
	return &extprocv3.ProcessingRequest{Request: &extprocv3.ProcessingRequest_ResponseBody{ResponseBody: hb}}
}

// requestBody is a chat request of about 1 KiB: a system prompt, a few
// turns, one multi-part message and sampling options. A streaming one
// does not ask for usage, so spendguard injects include_usage.
func requestBody(stream bool) []byte {
	turn := strings.Repeat("Summarise the quarterly report in three bullet points. ", 2)
	var b strings.Builder
	b.WriteString(`{"model":"` + Model + `","messages":[`)
	b.WriteString(`{"role":"system","content":"You are a concise analyst. Answer in English, cite figures, and say when data is missing."},`)
	b.WriteString(`{"role":"user","content":"` + turn + `"},`)
	b.WriteString(`{"role":"assistant","content":"` + turn + turn + `"},`)
	b.WriteString(`{"role":"user","content":[{"type":"text","text":"` + turn + `"},`)
	b.WriteString(`{"type":"text","text":"Keep it under 50 words, and end with one open question for the team."}]}],`)
	b.WriteString(`"max_tokens":256,"temperature":0.2,"n":1`)
	if stream {
		b.WriteString(`,"stream":true`)
	}
	b.WriteString(`}`)
	return []byte(b.String())
}

// jsonResponse is a vLLM chat completion with usage, in vLLM's key order.
var jsonResponse = `{"id":"chatcmpl-9a60df2b23bb539f","object":"chat.completion","created":1774751760,"model":"` + Model + `",` +
	`"choices":[{"index":0,"message":{"role":"assistant","content":"- Revenue grew 12% to 4.1M USD.\n- Margins held at 31%.\n- ` +
	`Cash reserves cover 18 months.\nWhich product line should lead next quarter's investment?","refusal":null,"annotations":null,` +
	`"audio":null,"function_call":null,"tool_calls":[],"reasoning":null},"logprobs":null,"finish_reason":"stop","stop_reason":null,` +
	`"token_ids":null}],"service_tier":null,"system_fingerprint":null,"usage":{"prompt_tokens":` + strconv.Itoa(PromptTokens) +
	`,"total_tokens":` + strconv.Itoa(PromptTokens+CompletionTokens) + `,"completion_tokens":` + strconv.Itoa(CompletionTokens) +
	`,"prompt_tokens_details":null},"prompt_logprobs":null,"prompt_token_ids":null,"kv_transfer_params":null}`

// sseChunks are the data callbacks of a vLLM chat stream with usage
// requested: one event per chunk as vLLM flushes them, the usage-only
// event, [DONE], then the empty chunk that carries end_of_stream when the
// chunked body ends.
func sseChunks(continuous bool) [][]byte {
	const head = `data: {"id":"chatcmpl-9a60df2b23bb539f","object":"chat.completion.chunk","created":1774751760,"model":"` + Model + `",`
	words := []string{" models", " learn", " from", " text", ",", " and", " the", " report"}
	chunks := make([][]byte, 0, TokenEvents+3)
	for i := range TokenEvents {
		usage := ""
		if continuous {
			usage = `,"usage":{"prompt_tokens":` + strconv.Itoa(PromptTokens) + `,"total_tokens":` + strconv.Itoa(PromptTokens+i+1) +
				`,"completion_tokens":` + strconv.Itoa(i+1) + `}`
		}
		chunks = append(chunks, []byte(head+`"choices":[{"index":0,"delta":{"content":"`+words[i%len(words)]+
			`"},"logprobs":null,"finish_reason":null}]`+usage+"}\n\n"))
	}
	chunks = append(chunks,
		[]byte(head+`"choices":[],"usage":{"prompt_tokens":`+strconv.Itoa(PromptTokens)+`,"total_tokens":`+
			strconv.Itoa(PromptTokens+CompletionTokens)+`,"completion_tokens":`+strconv.Itoa(CompletionTokens)+"}}\n\n"),
		[]byte("data: [DONE]\n\n"),
		nil)
	return chunks
}

// Messages returns the messages of one lifecycle of kind in the order
// Envoy sends them (for benchmarks that drive a processor without gRPC).
// They are shared: do not modify them.
func Messages(kind Kind) []*extprocv3.ProcessingRequest {
	lc := NewLifecycle(kind, "t0", "u0", "loadgen-0")
	return append([]*extprocv3.ProcessingRequest{lc.RequestHeaders, lc.RequestBody, lc.ResponseHeaders}, lc.ResponseBody...)
}
