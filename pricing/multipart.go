package pricing

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"mime"
	"strconv"
	"strings"
)

// The audio endpoints (/v1/audio/transcriptions and /translations) take
// multipart/form-data: the audio file and the request's fields as parts.
// ParseForm reads the body Envoy buffered in place, never copying the
// file: a part's content is a slice of the body.

// maxPartHeader bounds the header block of one part; a longer one is not
// a form any client sends.
const maxPartHeader = 8 << 10

// formPart is one part of a form: its name, filename and content (a slice
// of the body), and where the content starts.
type formPart struct {
	name, filename string
	content        []byte
	start          int
	encoded        bool // a Content-Transfer-Encoding other than identity
}

// ParseForm reads the buffered multipart/form-data body of a request to an
// audio endpoint e (Transcriptions or Translations) into b, overwriting
// it; contentType is the request's content-type header, which carries the
// boundary. It reads model (required), stream, stream_include_usage,
// max_completion_tokens, prompt (counted as prompt text) and file
// (required): the audio's length is read from a WAV header, else it is
// maxSeconds (Request.AudioLengthKnown false). Of parts with the same
// name the last counts, as in vLLM's form parser. Layout.Model is the
// model part's content, for a rewrite that swaps it byte for byte; Field
// answers "" (body_field sources read JSON bodies only).
//
// Its errors wrap ErrInvalidRequest: a content-type that is not
// multipart/form-data with a boundary, a body that is not a form with
// that boundary, a missing model or file, and fields of the wrong type.
func ParseForm(b *Body, e Endpoint, contentType string, body []byte, maxSeconds int64) error {
	*b = Body{more: b.more[:0]}
	r := &b.Request
	if !e.Multipart() {
		return fmt.Errorf("%w: %v takes no multipart body", ErrInvalidRequest, e)
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || params["boundary"] == "" {
		return fmt.Errorf("%w: %v takes multipart/form-data with a boundary, not content-type %q", ErrInvalidRequest, e, truncate(contentType, 100))
	}
	var model, stream, usage, maxTokens, prompt, file *formPart
	parts := 0
	err = eachPart(body, params["boundary"], func(p *formPart) {
		parts++
		b.Layout.Members++
		switch p.name {
		case "model":
			model = p
		case "stream":
			stream = p
		case "stream_include_usage":
			usage = p
		case "max_completion_tokens":
			maxTokens = p
		case "prompt":
			prompt = p
		case "file":
			file = p
		}
	})
	if err != nil {
		return err
	}
	*r = Request{Endpoint: e, N: 1, Prompts: 1}
	if model == nil || len(model.content) == 0 {
		return invalid("model", "missing")
	}
	r.Model = string(model.content)
	if !model.encoded {
		b.Layout.Model = Span{model.start, model.start + len(model.content)}
	}
	if r.Stream, err = formBool("stream", stream); err != nil {
		return err
	}
	if r.IncludeUsage, err = formBool("stream_include_usage", usage); err != nil {
		return err
	}
	if maxTokens != nil {
		n, err := strconv.ParseInt(strings.TrimSpace(string(maxTokens.content)), 10, 64)
		if err != nil || n < 0 {
			return invalid("max_completion_tokens", "must be a non-negative integer, got %q", truncate(string(maxTokens.content), 40))
		}
		r.MaxOutputTokens = n
	}
	if prompt != nil {
		r.PromptBytes = int64(len(prompt.content))
	}
	if file == nil {
		return invalid("file", "missing: the audio to transcribe")
	}
	if secs, ok := wavSeconds(file.content); ok && !file.encoded {
		r.AudioSeconds, r.AudioLengthKnown = secs, true
	} else {
		r.AudioSeconds = max(maxSeconds, 0)
	}
	return nil
}

// formBool reads a boolean form field as pydantic does (true/false,
// 1/0, yes/no, on/off, t/f, y/n, any case); absent is false.
func formBool(name string, p *formPart) (bool, error) {
	if p == nil {
		return false, nil
	}
	switch strings.ToLower(strings.TrimSpace(string(p.content))) {
	case "true", "1", "yes", "on", "t", "y":
		return true, nil
	case "false", "0", "no", "off", "f", "n":
		return false, nil
	}
	return false, invalid(name, "must be true or false, got %q", truncate(string(p.content), 40))
}

// eachPart calls fn with each part of a multipart body with boundary, in
// order, or returns why the body is not such a form. A preamble before
// the first delimiter and an epilogue after the last are ignored, as
// RFC 2046 says; the closing delimiter is required.
func eachPart(body []byte, boundary string, fn func(*formPart)) error {
	delim := []byte("--" + boundary)
	i := 0
	if !bytes.HasPrefix(body, delim) {
		j := bytes.Index(body, append([]byte("\r\n"), delim...))
		if j < 0 {
			return fmt.Errorf("%w: multipart body: no part with the content-type's boundary", ErrInvalidRequest)
		}
		i = j + 2
	}
	next := append([]byte("\r\n"), delim...)
	for n := 0; ; n++ {
		i += len(delim)
		if bytes.HasPrefix(body[i:], []byte("--")) {
			return nil // the closing delimiter
		}
		// Transport padding, then the line break that ends the delimiter.
		for i < len(body) && (body[i] == ' ' || body[i] == '\t') {
			i++
		}
		if !bytes.HasPrefix(body[i:], []byte("\r\n")) {
			return fmt.Errorf("%w: multipart body: part %d: the delimiter line does not end in CRLF", ErrInvalidRequest, n)
		}
		i += 2
		hdrEnd := bytes.Index(body[i:min(len(body), i+maxPartHeader)], []byte("\r\n\r\n"))
		var headers []byte
		switch {
		case bytes.HasPrefix(body[i:], []byte("\r\n")): // a part without headers
			i += 2
		case hdrEnd < 0:
			return fmt.Errorf("%w: multipart body: part %d: headers without an end (or over %d bytes)", ErrInvalidRequest, n, maxPartHeader)
		default:
			headers = body[i : i+hdrEnd]
			i += hdrEnd + 4
		}
		end := bytes.Index(body[i:], next)
		if end < 0 {
			return fmt.Errorf("%w: multipart body: part %d has no closing delimiter", ErrInvalidRequest, n)
		}
		p := formPart{content: body[i : i+end], start: i}
		if err := p.readHeaders(headers, n); err != nil {
			return err
		}
		fn(&p)
		i += end + 2
	}
}

// readHeaders reads a part's name and filename from its
// Content-Disposition and notes a transfer encoding.
func (p *formPart) readHeaders(headers []byte, n int) error {
	disposition := false
	for len(headers) > 0 {
		line := headers
		if j := bytes.Index(headers, []byte("\r\n")); j >= 0 {
			line, headers = headers[:j], headers[j+2:]
		} else {
			headers = nil
		}
		key, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			return fmt.Errorf("%w: multipart body: part %d: a header line without a colon", ErrInvalidRequest, n)
		}
		switch strings.ToLower(strings.TrimSpace(string(key))) {
		case "content-disposition":
			d, params, err := mime.ParseMediaType(string(value))
			if err != nil || d != "form-data" {
				return fmt.Errorf("%w: multipart body: part %d: Content-Disposition is not form-data with a name", ErrInvalidRequest, n)
			}
			p.name, p.filename, disposition = params["name"], params["filename"], true
		case "content-transfer-encoding":
			switch strings.ToLower(strings.TrimSpace(string(value))) {
			case "", "7bit", "8bit", "binary":
			default:
				p.encoded = true
			}
		}
	}
	if !disposition {
		return fmt.Errorf("%w: multipart body: part %d has no Content-Disposition", ErrInvalidRequest, n)
	}
	return nil
}

// wavSeconds is the length of a WAV file in whole seconds, rounded up:
// its frames (the data chunk's bytes present, over the block size) over
// its sample rate, which is what a decoder plays. False when data is not
// a PCM or float WAV whose fmt chunk comes before its data chunk.
func wavSeconds(data []byte) (int64, bool) {
	if len(data) < 12 || string(data[:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return 0, false
	}
	var rate, block uint64
	for i := 12; i+8 <= len(data); {
		id, size := string(data[i:i+4]), uint64(binary.LittleEndian.Uint32(data[i+4:i+8]))
		body := data[i+8:]
		switch id {
		case "fmt ":
			if size < 16 || len(body) < 16 {
				return 0, false
			}
			switch binary.LittleEndian.Uint16(body[0:2]) {
			case 1, 3, 0xFFFE: // PCM, IEEE float, extensible
			default:
				return 0, false
			}
			rate = uint64(binary.LittleEndian.Uint32(body[4:8]))
			block = uint64(binary.LittleEndian.Uint16(body[12:14]))
		case "data":
			if rate == 0 || block == 0 {
				return 0, false
			}
			present := min(size, uint64(len(body)))
			frames := present / block
			return int64((frames + rate - 1) / rate), true
		}
		next := uint64(i) + 8 + size + size&1 // chunks are padded to even sizes
		if next > uint64(len(data)) {
			return 0, false
		}
		i = int(next)
	}
	return 0, false
}

// truncate shortens s for an error message.
func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "..."
}
