package e2e

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/test/fakevllm"
)

// Every endpoint vLLM serves, through envoysim (responses split at random
// bytes) to the fake vLLM: each request is charged exactly the usage its
// answer carries, read here independently of spendguard with
// encoding/json, and the paths nobody priced are refused.

const endpointsConfig = `
version: 1
identity:
  dimensions:
    tenant:
      - header: x-tenant-id
      - default: anonymous
pricing:
  models:
    - {match: "fake-model", input: 1.00, output: 2.00, per_second: 0.0001}
budgets:
  - name: per-tenant
    match: {tenant: "*"}
    period: total
    hard_usd: 100
`

// perSecondNano is per_second above in nano-USD.
const perSecondNano = 100_000

// answerUsage is the usage an answer carries: prompt, completion and audio
// seconds, found=false when it carries none.
type answerUsage struct {
	prompt, completion, seconds int64
	found                       bool
}

// usageOf reads the usage of a JSON body or an SSE stream as a client
// would: the top-level usage of a JSON body (either vocabulary, or the
// duration shape); in a stream, the last non-null usage of a chunk, a
// Responses event's response.usage, or Anthropic's message_start prompt
// overlaid by message_delta.
func usageOf(t *testing.T, body []byte, sse bool) answerUsage {
	t.Helper()
	if !sse {
		var v struct {
			Usage json.RawMessage `json:"usage"`
		}
		if json.Unmarshal(body, &v) != nil {
			return answerUsage{}
		}
		return decodeUsage(t, v.Usage)
	}
	var u answerUsage
	for _, line := range strings.Split(string(body), "\n") {
		data, ok := strings.CutPrefix(line, "data: ")
		if !ok || data == "[DONE]" {
			continue
		}
		var ev struct {
			Type     string          `json:"type"`
			Usage    json.RawMessage `json:"usage"`
			Response struct {
				Usage json.RawMessage `json:"usage"`
			} `json:"response"`
			Message struct {
				Usage json.RawMessage `json:"usage"`
			} `json:"message"`
		}
		require.NoError(t, json.Unmarshal([]byte(data), &ev), "event %s", data)
		switch {
		case ev.Type == "message_start":
			u = decodeUsage(t, ev.Message.Usage)
		case ev.Type == "message_delta":
			d := decodeUsage(t, ev.Usage)
			u.completion, u.found = d.completion, true
		case ev.Type == "response.completed":
			u = decodeUsage(t, ev.Response.Usage)
		default:
			if d := decodeUsage(t, ev.Usage); d.found {
				u = d
			}
		}
	}
	return u
}

func decodeUsage(t *testing.T, raw json.RawMessage) answerUsage {
	t.Helper()
	if len(raw) == 0 || string(raw) == "null" {
		return answerUsage{}
	}
	var v struct {
		PromptTokens     *int64 `json:"prompt_tokens"`
		CompletionTokens int64  `json:"completion_tokens"`
		InputTokens      *int64 `json:"input_tokens"`
		OutputTokens     int64  `json:"output_tokens"`
		Type             string `json:"type"`
		Seconds          int64  `json:"seconds"`
	}
	require.NoError(t, json.Unmarshal(raw, &v))
	u := answerUsage{found: true, completion: v.CompletionTokens + v.OutputTokens}
	switch {
	case v.Type == "duration":
		u.seconds = v.Seconds
	case v.PromptTokens != nil:
		u.prompt = *v.PromptTokens
	case v.InputTokens != nil:
		u.prompt = *v.InputTokens
	}
	return u
}

// wavFile is a 16-bit mono PCM WAV file of the given length at 8 kHz.
func wavFile(seconds float64) []byte {
	const rate = 8000
	data := int(seconds * rate * 2)
	var b bytes.Buffer
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, uint32(36+data))
	b.WriteString("WAVEfmt ")
	for _, v := range []any{uint32(16), uint16(1), uint16(1), uint32(rate), uint32(rate * 2), uint16(2), uint16(16)} {
		_ = binary.Write(&b, binary.LittleEndian, v)
	}
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, uint32(data))
	b.Write(make([]byte, data))
	return b.Bytes()
}

// audioForm is a transcription form: the fields, then the file.
func audioForm(t *testing.T, audio []byte, fields ...string) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for i := 0; i+1 < len(fields); i += 2 {
		require.NoError(t, w.WriteField(fields[i], fields[i+1]))
	}
	fw, err := w.CreateFormFile("file", "speech.wav")
	require.NoError(t, err)
	_, err = fw.Write(audio)
	require.NoError(t, err)
	require.NoError(t, w.Close())
	return b.Bytes(), w.FormDataContentType()
}

func (s *stack) send(method, path, contentType string, body []byte) response {
	s.t.Helper()
	req, err := http.NewRequest(method, s.proxy.URL()+path, bytes.NewReader(body))
	require.NoError(s.t, err)
	if contentType != "" {
		req.Header.Set("content-type", contentType)
	}
	resp, err := http.DefaultClient.Do(req)
	require.NoError(s.t, err)
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	require.NoError(s.t, err)
	return response{status: resp.StatusCode, header: resp.Header, body: b}
}

func TestEveryEndpointChargedExactly(t *testing.T) {
	s := newStack(t, endpointsConfig, fakevllm.Config{})
	wav := wavFile(7.3) // vLLM bills 8 seconds
	form, formType := audioForm(t, wav, "model", "fake-model")
	streamForm, streamFormType := audioForm(t, wav, "model", "fake-model", "stream", "true", "stream_include_usage", "true")

	cases := []struct {
		name, path, contentType, body string
		sse                           bool
	}{
		{name: "chat", path: "/v1/chat/completions", body: `{"model":"fake-model","messages":[{"role":"user","content":"Hello there, how much?"}],"max_tokens":9,"n":2}`},
		{name: "chat stream, usage injected", path: "/v1/chat/completions", sse: true, body: `{"model":"fake-model","messages":[{"role":"user","content":"stream me"}],"max_tokens":6,"stream":true}`},
		{name: "chat stream, include_usage null", path: "/v1/chat/completions", sse: true, body: `{"model":"fake-model","messages":[{"role":"user","content":"stream me"}],"max_tokens":5,"stream":true,"stream_options":{"include_usage":null}}`},
		{name: "chat stream, continuous n=2", path: "/v1/chat/completions", sse: true, body: `{"model":"fake-model","messages":[{"role":"user","content":"both choices"}],"max_tokens":4,"n":2,"stream":true,"stream_options":{"include_usage":true,"continuous_usage_stats":true}}`},
		{name: "completions", path: "/v1/completions", body: `{"model":"fake-model","prompt":["first prompt here","second prompt"],"max_tokens":3}`},
		{name: "completions stream", path: "/v1/completions", sse: true, body: `{"model":"fake-model","prompt":"count with me","max_tokens":5,"stream":true}`},
		{name: "embeddings", path: "/v1/embeddings", body: `{"model":"fake-model","input":["embed this text","and this"]}`},
		{name: "embeddings as bytes", path: "/v1/embeddings", body: `{"model":"fake-model","input":"binary please","encoding_format":"bytes"}`},
		{name: "responses", path: "/v1/responses", body: `{"model":"fake-model","input":"What is a budget?","max_output_tokens":7}`},
		{name: "responses stream", path: "/v1/responses", sse: true, body: `{"model":"fake-model","input":"Stream it","max_output_tokens":5,"stream":true}`},
		{name: "messages", path: "/v1/messages", body: `{"model":"fake-model","max_tokens":8,"system":"Be brief.","messages":[{"role":"user","content":"Hi there"}]}`},
		{name: "messages stream", path: "/v1/messages", sse: true, body: `{"model":"fake-model","max_tokens":6,"stream":true,"messages":[{"role":"user","content":[{"type":"text","text":"Stream a reply"}]}]}`},
		{name: "invocations as chat", path: "/invocations", body: `{"model":"fake-model","messages":[{"role":"user","content":"via sagemaker"}],"max_tokens":4}`},
		{name: "invocations as completions", path: "/invocations", body: `{"model":"fake-model","prompt":"via sagemaker","max_tokens":3}`},
		{name: "invocations as embeddings", path: "/invocations", body: `{"model":"fake-model","input":"via sagemaker"}`},
		{name: "invocations as rerank", path: "/invocations", body: `{"model":"fake-model","query":"which one","documents":["this one","that one"]}`},
		{name: "generate", path: "/inference/v1/generate", body: `{"model":"fake-model","token_ids":[1,2,3,4,5,6],"sampling_params":{"max_tokens":5}}`},
		{name: "rerank", path: "/rerank", body: `{"model":"fake-model","query":"best doc","documents":["doc one","doc two","doc three"]}`},
		{name: "v1 rerank", path: "/v1/rerank", body: `{"model":"fake-model","query":"best doc","documents":["doc one"]}`},
		{name: "v2 rerank", path: "/v2/rerank", body: `{"model":"fake-model","query":"best doc","documents":["doc one","doc two"]}`},
		{name: "score", path: "/score", body: `{"model":"fake-model","text_1":"a question","text_2":["answer one","answer two"]}`},
		{name: "v1 score", path: "/v1/score", body: `{"model":"fake-model","text_1":"a question","text_2":"one answer"}`},
		{name: "pooling", path: "/pooling", body: `{"model":"fake-model","input":"pool this text"}`},
		{name: "classify", path: "/classify", body: `{"model":"fake-model","input":["classify me","and me"]}`},
		{name: "transcription", path: "/v1/audio/transcriptions", contentType: formType, body: string(form)},
		{name: "transcription stream", path: "/v1/audio/transcriptions", contentType: streamFormType, sse: true, body: string(streamForm)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			before := len(s.reports.all())
			p0, g0 := s.vllm.Tokens("fake-model")
			ct := tc.contentType
			if ct == "" {
				ct = "application/json"
			}
			resp := s.send(http.MethodPost, tc.path, ct, []byte(tc.body))
			require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
			want := usageOf(t, resp.body, tc.sse)
			if h := resp.header.Get("metadata"); h != "" { // bytes embeddings
				var md struct {
					Usage json.RawMessage `json:"usage"`
				}
				require.NoError(t, json.Unmarshal([]byte(h), &md))
				want = decodeUsage(t, md.Usage)
			}
			if !want.found && tc.sse && !strings.Contains(tc.body, `"include_usage":true`) {
				// spendguard injected include_usage and removed the usage
				// event from the client's stream: read it from the upstream.
				// The fake's own counters of the tokens it reported say
				// what that event held.
				p1, g1 := s.vllm.Tokens("fake-model")
				want = answerUsage{prompt: p1 - p0, completion: g1 - g0, found: true}
				assert.NotContains(t, string(resp.body), `"usage":{`, "the injected usage never reaches the client")
			}
			rep := s.reportN(before + 1)
			assert.False(t, rep.GetEstimated(), "usage reported by vLLM, not estimated")
			require.True(t, want.found, "the answer carries usage")
			require.Positive(t, want.prompt+want.completion+want.seconds, "the answer's usage is not empty")
			assert.Equal(t, want.prompt, rep.GetPromptTokens(), "prompt tokens")
			assert.Equal(t, want.completion, rep.GetCompletionTokens(), "completion tokens")
			assert.Equal(t, want.prompt*1000+want.completion*2000+want.seconds*perSecondNano, rep.GetCostNanoUsd(), "cost")
		})
	}
}

// TestPathsAroundTheBudget: a POST to a path nobody priced is refused
// before the upstream sees it, GETs pass free, and answers without usage
// are charged an estimate, marked so, never nothing.
func TestPathsAroundTheBudget(t *testing.T) {
	s := newStack(t, endpointsConfig, fakevllm.Config{})

	for _, path := range []string{"/v1/chat/completion", "/v1/chat/completions/", "/V1/chat/completions", "/v3/rerank", "/sleep", "/v1/load_lora_adapter"} {
		resp := s.send(http.MethodPost, path, "application/json", []byte(`{"model":"fake-model","messages":[{"role":"user","content":"hi"}]}`))
		assert.Equal(t, http.StatusForbidden, resp.status, "%s: %s", path, resp.body)
		assert.Contains(t, string(resp.body), "pricing.free_paths", path)
	}
	assert.Equal(t, 0, s.vllm.Count(), "no refused path reached the upstream")

	resp := s.send(http.MethodGet, "/v1/models", "", nil)
	assert.Equal(t, http.StatusOK, resp.status)
	resp = s.send(http.MethodPost, "/tokenize", "application/json", []byte(`{"model":"fake-model","prompt":"count me"}`))
	assert.Equal(t, http.StatusOK, resp.status, "%s", resp.body)

	// No usage anywhere: an estimate is charged and marked.
	form, formType := audioForm(t, wavFile(3), "model", "fake-model")
	for _, tc := range []struct{ name, path, ct, body string }{
		{"translation", "/v1/audio/translations", formType, string(form)},
		{"embeddings bytes_only", "/v1/embeddings", "application/json", `{"model":"fake-model","input":"no usage at all","encoding_format":"bytes_only"}`},
	} {
		before := len(s.reports.all())
		resp := s.send(http.MethodPost, tc.path, tc.ct, []byte(tc.body))
		require.Equal(t, http.StatusOK, resp.status, "%s: %s", tc.name, resp.body)
		rep := s.reportN(before + 1)
		assert.True(t, rep.GetEstimated(), tc.name)
		assert.Positive(t, rep.GetCostNanoUsd(), tc.name)
	}
}

// TestAudioStreamWithoutUsagePaysItsSeconds: a transcription streamed
// without stream_include_usage carries no usage; it is still charged its
// audio's length at per_second (read from the WAV header), not only the
// text it streamed.
func TestAudioStreamWithoutUsagePaysItsSeconds(t *testing.T) {
	s := newStack(t, endpointsConfig, fakevllm.Config{})
	form, formType := audioForm(t, wavFile(12), "model", "fake-model", "stream", "true")
	resp := s.send(http.MethodPost, "/v1/audio/transcriptions", formType, form)
	require.Equal(t, http.StatusOK, resp.status, "%s", resp.body)
	require.NotContains(t, string(resp.body), `"usage"`)
	rep := s.reportN(1)
	assert.True(t, rep.GetEstimated())
	assert.GreaterOrEqual(t, rep.GetCostNanoUsd(), int64(12*perSecondNano), "12 s of audio at per_second")
}
