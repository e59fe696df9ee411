package fakevllm

// POST /v1/audio/transcriptions and /v1/audio/translations: multipart
// requests with an audio file, answered as vLLM's speech-to-text serving
// does.

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"strings"
	"time"
)

// audioSampleRate is the rate vLLM resamples audio to (Whisper's) before
// it measures the duration.
const audioSampleRate = 16000

// maxFormValue bounds a non-file form field.
const maxFormValue = 1 << 16

// errBadAudio is vLLM's message for a file it cannot decode.
var errBadAudio = errors.New("Invalid or unsupported audio file.")

type audioRequest struct {
	model          string
	file           []byte
	hasFile        bool
	responseFormat string
	stream, usage  bool
	continuous     bool
	maxTokens      *int
}

// parseAudioForm reads the multipart fields vLLM's transcription and
// translation requests take; unknown fields are ignored.
func parseAudioForm(contentType string, body []byte) (audioRequest, error) {
	req := audioRequest{responseFormat: "json"}
	mt, ps, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" || ps["boundary"] == "" {
		return req, errors.New("fakevllm: want a multipart/form-data body with a boundary")
	}
	mr := multipart.NewReader(bytes.NewReader(body), ps["boundary"])
	for {
		part, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return req, nil
		}
		if err != nil {
			return req, fmt.Errorf("fakevllm: reading the multipart body: %w", err)
		}
		name := part.FormName()
		if name == "file" {
			req.file, err = io.ReadAll(part)
			req.hasFile = true
			if err != nil {
				return req, fmt.Errorf("fakevllm: reading the file: %w", err)
			}
			continue
		}
		raw, err := io.ReadAll(io.LimitReader(part, maxFormValue))
		if err != nil {
			return req, fmt.Errorf("fakevllm: reading field %s: %w", name, err)
		}
		if err := req.set(name, string(raw)); err != nil {
			return req, err
		}
	}
}

func (req *audioRequest) set(name, v string) error {
	var err error
	switch name {
	case "model":
		req.model = v
	case "response_format":
		req.responseFormat = v
	case "stream":
		req.stream, err = formBool(name, v)
	case "stream_include_usage":
		req.usage, err = formBool(name, v)
	case "stream_continuous_usage_stats":
		req.continuous, err = formBool(name, v)
	case "max_completion_tokens":
		var n int
		if _, err = fmt.Sscanf(v, "%d", &n); err != nil {
			return fmt.Errorf("fakevllm: field %s=%q: want an integer", name, v)
		}
		req.maxTokens = &n
	}
	return err
}

// formBool parses a form boolean as pydantic does.
func formBool(name, v string) (bool, error) {
	switch strings.ToLower(v) {
	case "true", "1", "yes", "on", "t", "y":
		return true, nil
	case "false", "0", "no", "off", "f", "n":
		return false, nil
	}
	return false, fmt.Errorf("fakevllm: field %s=%q: want a boolean", name, v)
}

// wavSeconds is the length of a PCM WAV file as vLLM reports it: the
// samples resampled to 16 kHz, divided by 16000, rounded up to whole
// seconds (OpenAI's rule).
func wavSeconds(b []byte) (int, error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return 0, errBadAudio
	}
	var rate, blockAlign uint32
	for rest := b[12:]; len(rest) >= 8; {
		id, size := string(rest[:4]), binary.LittleEndian.Uint32(rest[4:8])
		rest = rest[8:]
		switch {
		case id == "fmt " && size >= 16 && len(rest) >= 16:
			rate = binary.LittleEndian.Uint32(rest[4:8])
			blockAlign = uint32(binary.LittleEndian.Uint16(rest[12:14]))
		case id == "data":
			if rate == 0 || blockAlign == 0 {
				return 0, errBadAudio
			}
			size = min(size, uint32(len(rest))) // a truncated file has what it has
			frames := uint64(size / blockAlign)
			resampled := (frames*audioSampleRate + uint64(rate) - 1) / uint64(rate)
			return int((resampled + audioSampleRate - 1) / audioSampleRate), nil
		}
		if uint64(size)+uint64(size&1) > uint64(len(rest)) {
			break
		}
		rest = rest[size+size&1:]
	}
	return 0, errBadAudio
}

// transcriptionChunk is vLLM's TranscriptionStreamResponse (and the
// translation one), dumped with exclude_unset.
type transcriptionChunk struct {
	ID      string               `json:"id"`
	Object  string               `json:"object"`
	Created int64                `json:"created"`
	Model   string               `json:"model"`
	Choices []transcriptionDelta `json:"choices"`
	Usage   *streamUsage         `json:"usage,omitempty"`
}

type transcriptionDelta struct {
	Delta        deltaContent `json:"delta"`
	FinishReason *string      `json:"finish_reason,omitempty"`
	StopReason   *null        `json:"stop_reason,omitempty"`
}

type deltaContent struct {
	Content string `json:"content"`
}

type transcriptionResponse struct {
	Text  string         `json:"text"`
	Usage *durationUsage `json:"usage,omitempty"`
}

type durationUsage struct {
	Type    string `json:"type"`
	Seconds int    `json:"seconds"`
}

func serveTranscriptions(w http.ResponseWriter, body []byte, p params) {
	serveAudio(w, body, p, "transcribe")
}

func serveTranslations(w http.ResponseWriter, body []byte, p params) {
	serveAudio(w, body, p, "translate")
}

// serveAudio answers filler text. A transcription's JSON carries
// usage {"type":"duration","seconds":N}; a translation's has no usage, as in
// vLLM. Streams end, with stream_include_usage (or force-include-usage), in
// a chunk with token usage: prompt tokens are the audio's seconds (or the
// configured count), completion tokens one per word.
func serveAudio(w http.ResponseWriter, body []byte, p params, task string) {
	req, err := parseAudioForm(p.contentType, body)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	model, ok := p.modelFor(req.model)
	switch {
	case !ok:
		writeError(w, http.StatusNotFound, fmt.Sprintf("The model `%s` does not exist.", req.model), "model")
		return
	case !req.hasFile:
		writeTypedError(w, http.StatusBadRequest, "Bad Request", "1 validation error:\n  {'type': 'missing', 'loc': ('body', 'file'), 'msg': 'Field required'}", "body.file")
		return
	case (req.usage || req.continuous) && !req.stream:
		param := "stream_include_usage"
		if !req.usage {
			param = "stream_continuous_usage_stats"
		}
		writeError(w, http.StatusBadRequest, "Stream options can only be defined when `stream=True`.", param)
		return
	case req.responseFormat == "verbose_json":
		writeError(w, http.StatusBadRequest, fmt.Sprintf("Currently do not support verbose_json for %s", model), "")
		return
	case req.responseFormat != "json" && req.responseFormat != "text":
		writeError(w, http.StatusBadRequest, "Currently only support response_format: `text`, `json` or `verbose_json`", "")
		return
	}
	seconds, err := wavSeconds(req.file)
	if err != nil {
		writeError(w, http.StatusBadRequest, err.Error(), "")
		return
	}
	if _, ok := validate(w, nil, req.maxTokens); !ok {
		return
	}
	pl := newPlan(p, model, []int{max(seconds, 1)}, req.maxTokens, 1)
	p.tokens.add(model, pl.prompt, pl.perChoice)
	switch {
	case req.stream:
		streamAudio(w, p, pl, task, req.usage || p.forceUsage, req.continuous && (req.usage || p.forceUsage))
	case req.responseFormat == "text":
		writeBody(w, p.okStatus(), "text/plain; charset=utf-8", []byte(filler(pl.words)), p.chunkSize)
	default:
		resp := transcriptionResponse{Text: filler(pl.words)}
		if task == "transcribe" {
			resp.Usage = &durationUsage{Type: "duration", Seconds: seconds}
		}
		writeBody(w, p.okStatus(), contentTypeJSON, marshal(resp), p.chunkSize)
	}
}

func streamAudio(w http.ResponseWriter, p params, pl plan, task string, includeUsage, continuous bool) {
	s := newSSEWriter(w, p)
	object := map[string]string{"transcribe": "transcription.chunk", "translate": "translation.chunk"}[task]
	base := transcriptionChunk{ID: task + "-" + newID("", 32), Object: object, Created: time.Now().Unix(), Model: pl.model}
	sent := 0
	for k := range pl.words {
		if s.failNow() {
			return
		}
		c := transcriptionDelta{Delta: deltaContent{Content: fillerWord(k)}}
		sent++
		if k == pl.words-1 {
			c.FinishReason, c.StopReason = &pl.finish, &null{}
			sent = pl.perChoice
		}
		chunk := base
		chunk.Choices = []transcriptionDelta{c}
		if continuous {
			u := streamUsage(pl.usageFor(0, sent))
			chunk.Usage = &u
		}
		s.data(chunk)
	}
	if includeUsage {
		chunk := base
		chunk.Choices = []transcriptionDelta{}
		chunk.Usage = pl.streamUsage()
		s.data(chunk)
	}
	s.done()
}
