package fakevllm

import (
	"bytes"
	"encoding/binary"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wav is a 16-bit mono PCM WAV file of frames samples at rate Hz.
func wav(rate, frames int) []byte {
	var b bytes.Buffer
	data := frames * 2
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

// form posts a multipart request with fields and the file to path.
func form(t *testing.T, s *Server, path string, file []byte, fields map[string]string, header map[string]string) *flushRecorder {
	t.Helper()
	var body bytes.Buffer
	mw := multipart.NewWriter(&body)
	for k, v := range fields {
		require.NoError(t, mw.WriteField(k, v))
	}
	if file != nil {
		fw, err := mw.CreateFormFile("file", "a.wav")
		require.NoError(t, err)
		_, _ = fw.Write(file)
	}
	require.NoError(t, mw.Close())
	req := httptest.NewRequest(http.MethodPost, path, &body)
	req.Header.Set("Content-Type", mw.FormDataContentType())
	for k, v := range header {
		req.Header.Set(k, v)
	}
	rec := &flushRecorder{ResponseRecorder: httptest.NewRecorder()}
	s.ServeHTTP(rec, req)
	return rec
}

func TestWAVSecondsRoundUp(t *testing.T) {
	tests := []struct {
		rate, frames, want int
	}{
		{16000, 16000, 1}, {16000, 16001, 2}, {16000, 1, 1}, {44100, 44100 * 3, 3}, {8000, 8000*2 + 1, 3}, {16000, 0, 0},
	}
	for _, tt := range tests {
		got, err := wavSeconds(wav(tt.rate, tt.frames))
		require.NoError(t, err)
		assert.Equal(t, tt.want, got, "%d frames at %d Hz", tt.frames, tt.rate)
	}
	_, err := wavSeconds([]byte("ID3 not a wav"))
	assert.ErrorIs(t, err, errBadAudio)
}

func TestTranscriptions(t *testing.T) {
	s := New(Config{ServedModelName: "whisper"})
	rec := form(t, s, "/v1/audio/transcriptions", wav(16000, 16000*2+5), map[string]string{"model": "w", "max_completion_tokens": "2"}, nil)
	require.Equal(t, http.StatusOK, rec.Code, rec.Body.String())
	assert.Equal(t, `{"text":"Once fox","usage":{"type":"duration","seconds":3}}`, rec.Body.String())

	tr := form(t, s, "/v1/audio/translations", wav(16000, 16000), map[string]string{"max_completion_tokens": "2"}, nil)
	require.Equal(t, http.StatusOK, tr.Code, tr.Body.String())
	assert.Equal(t, `{"text":"Once fox"}`, tr.Body.String(), "vLLM sends no usage for translations")

	stream := form(t, s, "/v1/audio/transcriptions", wav(16000, 16000*4),
		map[string]string{"stream": "true", "stream_include_usage": "true", "max_completion_tokens": "2"}, nil)
	data := sseData(t, stream.Body.String())
	assert.Equal(t, []string{
		`{"id":_,"object":"transcription.chunk","created":_,"model":"whisper","choices":[{"delta":{"content":"Once"}}]}`,
		`{"id":_,"object":"transcription.chunk","created":_,"model":"whisper","choices":[{"delta":{"content":" fox"},"finish_reason":"length","stop_reason":null}]}`,
		`{"id":_,"object":"transcription.chunk","created":_,"model":"whisper","choices":[],"usage":{"prompt_tokens":4,"total_tokens":6,"completion_tokens":2}}`,
		`[DONE]`,
	}, []string{blank(data[0]), blank(data[1]), blank(data[2]), data[3]})

	bad := form(t, s, "/v1/audio/transcriptions", wav(16000, 10), map[string]string{"stream_include_usage": "true"}, nil)
	assert.Equal(t, http.StatusBadRequest, bad.Code)
	assert.Contains(t, bad.Body.String(), `"param":"stream_include_usage"`)
	notAudio := form(t, s, "/v1/audio/transcriptions", []byte("hello"), nil, nil)
	assert.Equal(t, http.StatusBadRequest, notAudio.Code)
	assert.Contains(t, notAudio.Body.String(), "Invalid or unsupported audio file.")
	noFile := form(t, s, "/v1/audio/transcriptions", nil, map[string]string{"model": "w"}, nil)
	assert.Equal(t, http.StatusBadRequest, noFile.Code)
	status := form(t, s, "/v1/audio/transcriptions", wav(16000, 10), nil, map[string]string{HeaderStatus: "500"})
	assert.Equal(t, http.StatusInternalServerError, status.Code)
}
