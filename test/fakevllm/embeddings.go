package fakevllm

import (
	"cmp"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"net/http"
	"slices"
	"time"
)

// POST /v1/embeddings: vectors as floats, base64, or bytes (bytesenc.go).

type embeddingRequest struct {
	Model          string          `json:"model"`
	Input          json.RawMessage `json:"input"`
	Dimensions     *int            `json:"dimensions"`
	EncodingFormat string          `json:"encoding_format"`
	EmbedDType     string          `json:"embed_dtype"`
	Endianness     string          `json:"endianness"`
}

// serveEmbeddings answers one vector per input. Usage has no cached tokens:
// vLLM reports prompt_tokens_details null for embeddings. encoding_format
// "bytes" answers the raw vectors (application/octet-stream) with the ids,
// offsets and usage in a "metadata" response header; "bytes_only" the same
// without the header, so with no usage anywhere.
func serveEmbeddings(w http.ResponseWriter, body []byte, p params) {
	var req embeddingRequest
	model, ok := decode(w, body, p, &req, &req.Model)
	if !ok {
		return
	}
	dims, ok := embeddingDims(w, p, req.Dimensions)
	if !ok || !checkEncoding(w, req) {
		return
	}
	inputs := estimatePrompts(req.Input)
	prompt := sum(inputs)
	if p.prompt != derive {
		prompt = p.prompt
	}
	p.tokens.add(model, prompt, 0)
	id, created := newID("embd-", 16), time.Now().Unix()
	switch req.EncodingFormat {
	case "bytes", "bytes_only":
		writeEmbeddingBytes(w, p, embeddingBytes{
			id: id, created: created, model: model, inputs: len(inputs), dims: dims, prompt: prompt,
			endianness: cmp.Or(req.Endianness, "native"), header: req.EncodingFormat == "bytes",
		})
		return
	}
	resp := embeddingList{ID: id, Object: "list", Created: created, Model: model, Usage: newUsage(prompt, 0, 0)}
	for i := range inputs {
		resp.Data = append(resp.Data, embeddingData{
			Index: i, Object: "embedding", Embedding: embedding(i, dims, req.EncodingFormat == "base64"),
		})
	}
	writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
}

// embeddingDims is the vector length: the configured one, else the
// request's dimensions, else the default.
func embeddingDims(w http.ResponseWriter, p params, requested *int) (int, bool) {
	dims := p.dims
	if d := requested; dims == 0 && d != nil {
		if *d < 1 || *d > maxRequestDims {
			writeError(w, http.StatusBadRequest, fmt.Sprintf("fakevllm: dimensions=%d, want 1 to %d", *d, maxRequestDims), "dimensions")
			return 0, false
		}
		dims = *d
	}
	if dims == 0 {
		dims = defaultEmbeddingDims
	}
	return dims, true
}

// checkEncoding answers 400 for an encoding vLLM does not know, and for an
// embed_dtype this fake does not write (it writes float32 only).
func checkEncoding(w http.ResponseWriter, req embeddingRequest) bool {
	switch {
	case !slices.Contains([]string{"", "float", "base64", "bytes", "bytes_only"}, req.EncodingFormat):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("encoding_format must be one of float, base64, bytes, bytes_only, got %q", req.EncodingFormat), "encoding_format")
	case req.EmbedDType != "" && req.EmbedDType != "float32":
		writeError(w, http.StatusBadRequest, fmt.Sprintf("fakevllm: embed_dtype=%q, this fake writes float32 only", req.EmbedDType), "embed_dtype")
	case !slices.Contains([]string{"", "native", "little", "big"}, req.Endianness):
		writeError(w, http.StatusBadRequest, fmt.Sprintf("endianness must be one of native, little, big, got %q", req.Endianness), "endianness")
	default:
		return true
	}
	return false
}

// vector is a deterministic vector of dims values in (-0.1, 0.1).
func vector(input, dims int) []float64 {
	x := uint64(input) << 32
	out := make([]float64, dims)
	for i := range out { // splitmix64
		x += 0x9e3779b97f4a7c15
		z := (x ^ x>>30) * 0xbf58476d1ce4e5b9
		z = (z ^ z>>27) * 0x94d049bb133111eb
		z ^= z >> 31
		out[i] = float64(z>>11)/(1<<53)*0.2 - 0.1
	}
	return out
}

// float32Bytes is v as float32s in the byte order order.
func float32Bytes(v []float64, order binary.ByteOrder) []byte {
	raw := make([]byte, 4*len(v))
	for i, f := range v {
		order.PutUint32(raw[4*i:], math.Float32bits(float32(f)))
	}
	return raw
}

// embedding is vector(input, dims) as a JSON array of floats or, when
// asBase64, a base64 string of little-endian float32s (what the OpenAI SDKs
// ask for by default).
func embedding(input, dims int, asBase64 bool) json.RawMessage {
	v := vector(input, dims)
	if asBase64 {
		return marshal(base64.StdEncoding.EncodeToString(float32Bytes(v, binary.LittleEndian)))
	}
	out := make([]byte, 0, 22*dims+2)
	out = append(out, '[')
	for i, f := range v {
		if i > 0 {
			out = append(out, ',')
		}
		out = append(out, formatPyFloat(f)...)
	}
	return append(out, ']')
}
