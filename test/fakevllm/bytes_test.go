package fakevllm

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

func TestEmbeddingsAsBytes(t *testing.T) {
	s := New(Config{ServedModelName: "emb"})
	rec := post(t, s, "/v1/embeddings", `{"model":"x","input":["12345678","1234"],"dimensions":3,"encoding_format":"bytes"}`)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, "application/octet-stream", rec.Header().Get("Content-Type"))
	assert.Empty(t, rec.Header().Get("Content-Length"), "a StreamingResponse: no length")
	body := rec.Body.Bytes()
	require.Len(t, body, 2*3*4, "two vectors of three float32s")
	for i, want := range [][]float64{vector(0, 3), vector(1, 3)} {
		for j, f := range want {
			got := math.Float32frombits(binary.LittleEndian.Uint32(body[12*i+4*j:]))
			assert.Equal(t, float32(f), got)
		}
	}
	meta := rec.Header().Get(HeaderEmbeddingMetadata)
	var parsed struct {
		ID      string `json:"id"`
		Created int64  `json:"created"`
	}
	require.NoError(t, json.Unmarshal([]byte(meta), &parsed), meta)
	assert.Regexp(t, `^embd-[0-9a-f]{16}$`, parsed.ID)
	assert.Equal(t, fmt.Sprintf(`{"id": "%s", "created": %d, "model": "emb", "data": [`+
		`{"index": 0, "embed_dtype": "float32", "endianness": "native", "start": 0, "end": 12, "shape": [3]}, `+
		`{"index": 1, "embed_dtype": "float32", "endianness": "native", "start": 12, "end": 24, "shape": [3]}], `+
		`"usage": {"prompt_tokens": 3, "total_tokens": 3}}`, parsed.ID, parsed.Created), meta, "Python json.dumps, as vLLM writes it")

	only := post(t, s, "/v1/embeddings", `{"model":"x","input":"abcd","encoding_format":"bytes_only","endianness":"big"}`)
	require.Equal(t, http.StatusOK, only.Code)
	assert.Empty(t, only.Header().Get(HeaderEmbeddingMetadata), "bytes_only: no usage anywhere")
	assert.Len(t, only.Body.Bytes(), 8*4)
	assert.Equal(t, math.Float32bits(float32(vector(0, 8)[0])), binary.BigEndian.Uint32(only.Body.Bytes()))

	bad := post(t, s, "/v1/embeddings", `{"model":"x","input":"a","encoding_format":"hex"}`)
	assert.Equal(t, http.StatusBadRequest, bad.Code)
}

func TestPyString(t *testing.T) {
	assert.Equal(t, `"a\"b\\c\n\u00e9\ud83d\ude00\u007f"`, pyString("a\"b\\c\né😀\x7f"))
}
