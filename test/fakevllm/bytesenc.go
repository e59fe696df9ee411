package fakevllm

// Embeddings as bytes: vLLM's encoding_format "bytes" and "bytes_only".

import (
	"encoding/binary"
	"fmt"
	"net/http"
	"strings"
	"unicode/utf16"
)

// HeaderEmbeddingMetadata is the response header in which vLLM sends the
// ids, offsets and usage of a "bytes" embeddings answer.
const HeaderEmbeddingMetadata = "metadata"

type embeddingBytes struct {
	id         string
	created    int64
	model      string
	inputs     int
	dims       int
	prompt     int
	endianness string // native, little or big
	header     bool   // "bytes": send the metadata header; "bytes_only": none
}

// writeEmbeddingBytes answers the vectors back to back as float32s, as
// vLLM's StreamingResponse does (application/octet-stream, no
// Content-Length). The metadata header is Python's json.dumps of
// {"id","created","model","data":[{"index","embed_dtype","endianness",
// "start","end","shape"}],"usage":{"prompt_tokens","total_tokens"}}.
func writeEmbeddingBytes(w http.ResponseWriter, p params, e embeddingBytes) {
	var order binary.ByteOrder = binary.LittleEndian // native on the machines vLLM runs on
	if e.endianness == "big" {
		order = binary.BigEndian
	}
	var body []byte
	var items []string
	for i := range e.inputs {
		start := len(body)
		body = append(body, float32Bytes(vector(i, e.dims), order)...)
		items = append(items, fmt.Sprintf(`{"index": %d, "embed_dtype": "float32", "endianness": %s, "start": %d, "end": %d, "shape": [%d]}`,
			i, pyString(e.endianness), start, len(body), e.dims))
	}
	h := w.Header()
	h.Set("Content-Type", "application/octet-stream")
	if e.header {
		h.Set(HeaderEmbeddingMetadata, fmt.Sprintf(`{"id": %s, "created": %d, "model": %s, "data": [%s], "usage": {"prompt_tokens": %d, "total_tokens": %d}}`,
			pyString(e.id), e.created, pyString(e.model), strings.Join(items, ", "), e.prompt, e.prompt))
	}
	w.WriteHeader(p.okStatus())
	rc := http.NewResponseController(w)
	for len(body) > 0 {
		n := min(p.chunkSize, len(body))
		if _, err := w.Write(body[:n]); err != nil {
			return
		}
		_ = rc.Flush()
		body = body[n:]
	}
}

// pyString is s as Python's json.dumps writes it (ensure_ascii): every
// character outside ASCII as \uXXXX, astral ones as a surrogate pair.
func pyString(s string) string {
	var b strings.Builder
	b.WriteByte('"')
	for _, r := range s {
		switch {
		case r == '"':
			b.WriteString(`\"`)
		case r == '\\':
			b.WriteString(`\\`)
		case r == '\n':
			b.WriteString(`\n`)
		case r == '\r':
			b.WriteString(`\r`)
		case r == '\t':
			b.WriteString(`\t`)
		case r == '\b':
			b.WriteString(`\b`)
		case r == '\f':
			b.WriteString(`\f`)
		case r < 0x20 || (r >= 0x7f && r < 0x10000):
			fmt.Fprintf(&b, `\u%04x`, r)
		case r >= 0x10000:
			hi, lo := utf16.EncodeRune(r)
			fmt.Fprintf(&b, `\u%04x\u%04x`, hi, lo)
		default:
			b.WriteRune(r)
		}
	}
	b.WriteByte('"')
	return b.String()
}
