package fakevllm

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

type responseBody struct {
	ID                string          `json:"id"`
	Status            string          `json:"status"`
	Background        bool            `json:"background"`
	Output            []any           `json:"output"`
	Usage             json.RawMessage `json:"usage"`
	IncompleteDetails json.RawMessage `json:"incomplete_details"`
}

func decodeResponse(t *testing.T, rec *flushRecorder) responseBody {
	t.Helper()
	var b responseBody
	require.NoError(t, json.Unmarshal(rec.Body.Bytes(), &b), rec.Body.String())
	return b
}

func TestBackgroundResponses(t *testing.T) {
	s := New(Config{PromptTokens: 7, CompletionTokens: 5})
	rec := post(t, s, "/v1/responses", `{"model":"m","input":"hi","background":true}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	queued := decodeResponse(t, rec)
	assert.Equal(t, "queued", queued.Status)
	assert.True(t, queued.Background)
	assert.Equal(t, "null", string(queued.Usage))
	assert.Empty(t, queued.Output)

	got := decodeResponse(t, do(t, s, http.MethodGet, "/v1/responses/"+queued.ID, "", nil))
	assert.Equal(t, queued.ID, got.ID)
	assert.Equal(t, "completed", got.Status, "no delay: done by the first GET")
	assert.Equal(t, `{"input_tokens":7,"input_tokens_details":{"cached_tokens":0},"output_tokens":5,"output_tokens_details":{"reasoning_tokens":0},"total_tokens":12}`, string(got.Usage))

	cancel := do(t, s, http.MethodPost, "/v1/responses/"+queued.ID+"/cancel", "", nil)
	assert.Equal(t, http.StatusBadRequest, cancel.Code, "a finished response cannot be cancelled")

	// Kept pending by the header: in_progress, then cancelled for good.
	rec = do(t, s, http.MethodPost, "/v1/responses", `{"model":"m","input":"hi","background":true}`,
		map[string]string{HeaderBackgroundMS: "3600000", HeaderBackgroundStatus: "in_progress"})
	pending := decodeResponse(t, rec)
	assert.Equal(t, "in_progress", pending.Status)
	again := decodeResponse(t, do(t, s, http.MethodGet, "/v1/responses/"+pending.ID, "", nil))
	assert.Equal(t, "in_progress", again.Status)
	assert.Equal(t, "null", string(again.Usage))
	cancelled := decodeResponse(t, do(t, s, http.MethodPost, "/v1/responses/"+pending.ID+"/cancel", "", nil))
	assert.Equal(t, "cancelled", cancelled.Status)
	assert.Equal(t, "cancelled", decodeResponse(t, do(t, s, http.MethodGet, "/v1/responses/"+pending.ID, "", nil)).Status)

	missing := do(t, s, http.MethodGet, "/v1/responses/resp_nope", "", nil)
	assert.Equal(t, http.StatusNotFound, missing.Code)
	assert.Equal(t, `{"error":{"message":"Response with id 'resp_nope' not found.","type":"invalid_request_error","param":null,"code":404}}`, missing.Body.String())

	noStore := post(t, s, "/v1/responses", `{"model":"m","input":"hi","background":true,"store":false}`)
	assert.Equal(t, http.StatusBadRequest, noStore.Code)

	wrongMethod := do(t, s, http.MethodPost, "/v1/responses/"+queued.ID, "", nil)
	assert.Equal(t, http.StatusMethodNotAllowed, wrongMethod.Code)
}

// A response that reached max_output_tokens is incomplete, and its stream
// still ends with response.completed carrying the usage.
func TestIncompleteResponseEndsWithCompleted(t *testing.T) {
	s := New(Config{PromptTokens: 2})
	body := post(t, s, "/v1/responses", `{"model":"m","input":"hi","max_output_tokens":3}`)
	r := decodeResponse(t, body)
	assert.Equal(t, "incomplete", r.Status)
	assert.Equal(t, `{"reason":"max_output_tokens"}`, string(r.IncompleteDetails))

	stream := post(t, s, "/v1/responses", `{"model":"m","input":"hi","max_output_tokens":3,"stream":true}`).Body.String()
	events := strings.Split(strings.TrimSuffix(stream, "\n\n"), "\n\n")
	last := events[len(events)-1]
	assert.True(t, strings.HasPrefix(last, "event: response.completed\ndata: {\"response\":{"), last)
	assert.Contains(t, last, `"status":"incomplete"`)
	assert.Contains(t, last, `"usage":{"input_tokens":2,"input_tokens_details":{"cached_tokens":0},"output_tokens":3,`)
	assert.True(t, strings.HasSuffix(last, `"sequence_number":10,"type":"response.completed"}`), last)
	for i, ev := range events {
		assert.Contains(t, ev, `"sequence_number":`+itoa(i)+`,`, "sequence numbers count from 0")
	}
}

func itoa(i int) string { b, _ := json.Marshal(i); return string(b) }
