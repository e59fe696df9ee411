package fakevllm

import (
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// The generated bodies have exactly the keys, key order and JSON kinds of
// the bodies vLLM really sent.
func TestBodiesHaveTheShapeOfRealVLLMBodies(t *testing.T) {
	tests := []struct {
		name, path, request, fixture string
	}{
		{"chat", "/v1/chat/completions", `{"model":"Hunyuan","messages":[{"role":"user","content":"hi"}],"max_tokens":100}`, "vllm-chat.json"},
		{"completion", "/v1/completions", `{"model":"Qwen/Qwen2.5-0.5B-Instruct","prompt":"A","max_tokens":1}`, "vllm-completion.json"},
		{"embeddings", "/v1/embeddings", `{"model":"Qwen/Qwen3-Embedding-0.6B","input":["a","b"]}`, "vllm-embeddings.json"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, New(Config{}), tt.path, tt.request)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Equal(t, "application/json", rec.Header().Get("Content-Type"))
			assert.Equal(t, shape(t, readFixture(t, tt.fixture)), shape(t, rec.Body.Bytes()))
		})
	}
}

func TestUsageIsTheConfiguredOneInVLLMKeyOrder(t *testing.T) {
	tests := []struct {
		name, path, request string
		cached              int
		wantRaw             string // the usage object, byte for byte
	}{
		{
			name: "chat", path: "/v1/chat/completions",
			request: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			wantRaw: `"usage":{"prompt_tokens":12,"total_tokens":112,"completion_tokens":100,"prompt_tokens_details":null}`,
		},
		{
			name: "chat cached", path: "/v1/chat/completions", cached: 5,
			request: `{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			wantRaw: `"usage":{"prompt_tokens":12,"total_tokens":112,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":5}}`,
		},
		{
			name: "completion", path: "/v1/completions",
			request: `{"model":"m","prompt":"hi"}`,
			wantRaw: `"usage":{"prompt_tokens":12,"total_tokens":112,"completion_tokens":100,"prompt_tokens_details":null}`,
		},
		{
			name: "completion cached", path: "/v1/completions", cached: 5,
			request: `{"model":"m","prompt":"hi"}`,
			wantRaw: `"usage":{"prompt_tokens":12,"total_tokens":112,"completion_tokens":100,"prompt_tokens_details":{"cached_tokens":5}}`,
		},
		{
			name: "embeddings never report completion or cached tokens", path: "/v1/embeddings", cached: 5,
			request: `{"model":"m","input":"hi"}`,
			wantRaw: `"usage":{"prompt_tokens":12,"total_tokens":12,"completion_tokens":0,"prompt_tokens_details":null}`,
		},
		{
			name: "responses", path: "/v1/responses", cached: 5,
			request: `{"model":"m","input":"hi"}`,
			wantRaw: `"usage":{"input_tokens":12,"input_tokens_details":{"cached_tokens":5},"output_tokens":100,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":112}`,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := New(Config{PromptTokens: 12, CompletionTokens: 100, CachedTokens: tt.cached})
			rec := post(t, s, tt.path, tt.request)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			assert.Contains(t, rec.Body.String(), tt.wantRaw)
		})
	}
}

func TestChatAnswer(t *testing.T) {
	s := New(Config{PromptTokens: 7, CompletionTokens: 5})
	rec := post(t, s, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":3}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())

	var body struct {
		ID      string `json:"id"`
		Object  string `json:"object"`
		Created int64  `json:"created"`
		Model   string `json:"model"`
		Choices []struct {
			Index   int `json:"index"`
			Message struct {
				Role    string `json:"role"`
				Content string `json:"content"`
			} `json:"message"`
			FinishReason string `json:"finish_reason"`
		} `json:"choices"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	assert.Regexp(t, `^chatcmpl-[0-9a-f]{16}$`, body.ID)
	assert.Equal(t, "chat.completion", body.Object)
	assert.Positive(t, body.Created)
	assert.Equal(t, "m", body.Model)
	require.Len(t, body.Choices, 3)
	for i, c := range body.Choices {
		assert.Equal(t, i, c.Index)
		assert.Equal(t, "assistant", c.Message.Role)
		assert.Equal(t, "Once fox ran far and", c.Message.Content, "one filler word per token")
		assert.Equal(t, "stop", c.FinishReason)
	}
	assert.Equal(t, map[string]any{
		"prompt_tokens": 7.0, "total_tokens": 22.0, "completion_tokens": 15.0, "prompt_tokens_details": nil,
	}, usageOf(t, rec.Body.Bytes()), "completion_tokens is summed over the n choices")
}

// Usage reports any count; the text stops growing at maxTextWords.
func TestHugeCompletionKeepsTheTextBounded(t *testing.T) {
	s := New(Config{CompletionTokens: 5_000_000})
	rec := post(t, s, "/v1/chat/completions", `{"model":"m","messages":[{"role":"user","content":"hi"}],"n":2}`)
	require.Equal(t, http.StatusOK, rec.Code)
	assert.Equal(t, 10_000_000.0, usageOf(t, rec.Body.Bytes())["completion_tokens"])
	var body struct {
		Choices []struct {
			Message struct {
				Content string `json:"content"`
			} `json:"message"`
		} `json:"choices"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
	require.Len(t, body.Choices, 2)
	assert.Len(t, strings.Fields(body.Choices[0].Message.Content), maxTextWords)
}

func TestDerivedCounts(t *testing.T) {
	long := strings.Repeat("x", 40) // 10 tokens at 4 bytes a token
	tests := []struct {
		name, path, request  string
		wantPrompt, wantComp float64 // usage
		wantChoices          int
		wantFinish           string
	}{
		{"chat, max_tokens reached", "/v1/chat/completions",
			`{"model":"m","messages":[{"role":"system","content":"` + long + `"},{"role":"user","content":[{"type":"text","text":"` + long + `"}]}],"max_tokens":7}`,
			20, 7, 1, "length"},
		{"chat, max_completion_tokens wins", "/v1/chat/completions",
			`{"model":"m","messages":[{"role":"user","content":"hi"}],"max_tokens":7,"max_completion_tokens":3}`,
			1, 3, 1, "length"},
		{"chat without max_tokens: 16, stop", "/v1/chat/completions",
			`{"model":"m","messages":[{"role":"user","content":"hi"}]}`,
			1, 16, 1, "stop"},
		{"chat n=2", "/v1/chat/completions",
			`{"model":"m","messages":[{"role":"user","content":"` + long + `"}],"max_tokens":4,"n":2}`,
			10, 8, 2, "length"},
		{"completion, one string", "/v1/completions",
			`{"model":"m","prompt":"` + long + `","max_tokens":2}`, 10, 2, 1, "length"},
		{"completion, token ids", "/v1/completions",
			`{"model":"m","prompt":[1,2,3,4,5],"max_tokens":2}`, 5, 2, 1, "length"},
		{"completion, two prompts n=2: four choices", "/v1/completions",
			`{"model":"m","prompt":["` + long + `","a"],"max_tokens":2,"n":2}`, 11, 8, 4, "length"},
		{"completion, token-id lists", "/v1/completions",
			`{"model":"m","prompt":[[1,2],[3,4,5]],"max_tokens":1}`, 5, 2, 2, "length"},
		{"embeddings, list", "/v1/embeddings",
			`{"model":"m","input":["` + long + `","a","b"]}`, 12, 0, 3, ""},
		{"responses, input and instructions", "/v1/responses",
			`{"model":"m","input":[{"role":"user","content":"` + long + `"}],"instructions":"` + long + `","max_output_tokens":5}`,
			20, 5, 1, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, New(Config{}), tt.path, tt.request)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var body struct {
				Choices []struct {
					FinishReason string `json:"finish_reason"`
				} `json:"choices"`
				Data   []json.RawMessage `json:"data"`
				Output []json.RawMessage `json:"output"`
				Usage  map[string]any    `json:"usage"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			switch tt.path {
			case "/v1/embeddings":
				assert.Len(t, body.Data, tt.wantChoices)
				assert.Equal(t, tt.wantPrompt, body.Usage["prompt_tokens"])
				assert.Equal(t, tt.wantComp, body.Usage["completion_tokens"])
			case "/v1/responses":
				assert.Len(t, body.Output, tt.wantChoices)
				assert.Equal(t, tt.wantPrompt, body.Usage["input_tokens"])
				assert.Equal(t, tt.wantComp, body.Usage["output_tokens"])
				assert.Equal(t, tt.wantPrompt+tt.wantComp, body.Usage["total_tokens"])
			default:
				require.Len(t, body.Choices, tt.wantChoices)
				for _, c := range body.Choices {
					assert.Equal(t, tt.wantFinish, c.FinishReason)
				}
				assert.Equal(t, tt.wantPrompt, body.Usage["prompt_tokens"])
				assert.Equal(t, tt.wantComp, body.Usage["completion_tokens"])
				assert.Equal(t, tt.wantPrompt+tt.wantComp, body.Usage["total_tokens"])
			}
		})
	}
}

func TestReportedModel(t *testing.T) {
	tests := []struct {
		name      string
		cfg       Config
		requested string
		want      string
	}{
		{"echoes the request", Config{}, "alias", "alias"},
		{"served name wins, as vLLM's first --served-model-name", Config{ServedModelName: "Hunyuan"}, "alias", "Hunyuan"},
		{"served name accepts a known alias", Config{ServedModelName: "Hunyuan", KnownModels: []string{"Hunyuan", "alias"}}, "alias", "Hunyuan"},
		{"no model: the first known", Config{KnownModels: []string{"a", "b"}}, "", "a"},
		{"no model, nothing configured", Config{}, "", DefaultModel},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req := `{"messages":[{"role":"user","content":"hi"}]}`
			if tt.requested != "" {
				req = `{"model":"` + tt.requested + `","messages":[{"role":"user","content":"hi"}]}`
			}
			rec := post(t, New(tt.cfg), "/v1/chat/completions", req)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var body struct {
				Model string `json:"model"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			assert.Equal(t, tt.want, body.Model)
		})
	}
}

func TestEmbeddingVectors(t *testing.T) {
	tests := []struct {
		name    string
		cfg     Config
		request string
		want    int // floats per vector
	}{
		{"default", Config{}, `{"model":"m","input":"a"}`, 8},
		{"request dimensions", Config{}, `{"model":"m","input":"a","dimensions":32}`, 32},
		{"configured dims win", Config{EmbeddingDims: 3}, `{"model":"m","input":"a","dimensions":32}`, 3},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			rec := post(t, New(tt.cfg), "/v1/embeddings", tt.request)
			require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
			var body struct {
				Data []struct {
					Embedding []float64 `json:"embedding"`
				} `json:"data"`
			}
			require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
			require.Len(t, body.Data, 1)
			assert.Len(t, body.Data[0].Embedding, tt.want)
		})
	}

	t.Run("base64 is little-endian float32", func(t *testing.T) {
		rec := post(t, New(Config{EmbeddingDims: 5}), "/v1/embeddings", `{"model":"m","input":"a","encoding_format":"base64"}`)
		require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
		var body struct {
			Data []struct {
				Embedding []byte `json:"embedding"` // encoding/json decodes base64 into []byte
			} `json:"data"`
		}
		require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &body))
		require.Len(t, body.Data, 1)
		assert.Len(t, body.Data[0].Embedding, 5*4)
	})
}

// A large body leaves in several flushed pieces, as a proxy should be able to
// handle, with its full Content-Length.
func TestLargeBodyIsWrittenInChunks(t *testing.T) {
	s := New(Config{WriteChunkSize: 4096})
	rec := do(t, s, http.MethodPost, "/v1/embeddings", `{"model":"m","input":["a","b"]}`,
		map[string]string{HeaderEmbeddingDims: "2048"})
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, rec.Header().Get("Content-Length"), strconv.Itoa(rec.Body.Len()))
	assert.Greater(t, rec.flushes, 5)
	assert.True(t, json.Valid(rec.Body.Bytes()))
}

func TestModelsAndHealth(t *testing.T) {
	s := New(Config{ServedModelName: "Hunyuan", KnownModels: []string{"Hunyuan", "alias"}})

	rec := do(t, s, http.MethodGet, "/v1/models", "", nil)
	require.Equal(t, http.StatusOK, rec.Code)
	var list struct {
		Object string `json:"object"`
		Data   []struct {
			ID      string `json:"id"`
			Object  string `json:"object"`
			OwnedBy string `json:"owned_by"`
		} `json:"data"`
	}
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &list))
	assert.Equal(t, "list", list.Object)
	require.Len(t, list.Data, 2)
	assert.Equal(t, "Hunyuan", list.Data[0].ID)
	assert.Equal(t, "alias", list.Data[1].ID)
	assert.Equal(t, "model", list.Data[0].Object)
	assert.Equal(t, "vllm", list.Data[0].OwnedBy)

	rec = do(t, s, http.MethodGet, "/health", "", nil)
	assert.Equal(t, http.StatusOK, rec.Code)
	assert.Empty(t, rec.Body.Bytes())
}
