package pricing

import "strconv"

// Endpoint is a kind of request that costs money: what the body means and
// how the upstream reports usage for it. The zero value is not an endpoint.
type Endpoint int

// The endpoint kinds that cost money. Each is named by its canonical vLLM
// path; several paths can serve one kind (/rerank, /v1/rerank, /v2/rerank).
const (
	ChatCompletions Endpoint = iota + 1 // POST /v1/chat/completions
	Completions                         // POST /v1/completions
	Embeddings                          // POST /v1/embeddings
	Responses                           // POST /v1/responses
	Messages                            // POST /v1/messages (Anthropic Messages API)
	Generate                            // POST /inference/v1/generate (token ids in and out)
	Transcriptions                      // POST /v1/audio/transcriptions (multipart)
	Translations                        // POST /v1/audio/translations (multipart)
	Rerank                              // POST /v1/rerank
	Score                               // POST /v1/score
	Pooling                             // POST /pooling
	Classify                            // POST /classify
)

// LastEndpoint is the highest Endpoint value, for loops over every kind.
const LastEndpoint = Classify

var endpointPaths = [...]string{
	ChatCompletions: "/v1/chat/completions",
	Completions:     "/v1/completions",
	Embeddings:      "/v1/embeddings",
	Responses:       "/v1/responses",
	Messages:        "/v1/messages",
	Generate:        "/inference/v1/generate",
	Transcriptions:  "/v1/audio/transcriptions",
	Translations:    "/v1/audio/translations",
	Rerank:          "/v1/rerank",
	Score:           "/v1/score",
	Pooling:         "/pooling",
	Classify:        "/classify",
	Invocations:     "/invocations",
}

// String returns the endpoint's path, such as "/v1/chat/completions".
func (e Endpoint) String() string {
	if e > 0 && int(e) < len(endpointPaths) {
		return endpointPaths[e]
	}
	return "Endpoint(" + strconv.Itoa(int(e)) + ")"
}

// Multipart reports whether requests of e are multipart/form-data (the
// audio endpoints) rather than JSON.
func (e Endpoint) Multipart() bool { return e == Transcriptions || e == Translations }

// Generates reports whether requests of e generate output tokens (and so
// reserve an output allowance): every kind but embeddings, rerank, score,
// pooling and classify.
func (e Endpoint) Generates() bool {
	switch e {
	case Embeddings, Rerank, Score, Pooling, Classify:
		return false
	}
	return true
}
