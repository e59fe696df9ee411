package pricing

import (
	"bytes"
	"encoding/binary"
	"errors"
	"mime/multipart"
	"net/textproto"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

// wav is a PCM WAV file of the given length: rate frames per second of
// channels 16-bit samples, with a LIST chunk before the data.
func wav(seconds float64, rate, channels int) []byte {
	block := 2 * channels
	data := make([]byte, int(seconds*float64(rate))*block)
	var b bytes.Buffer
	le := func(v any) { _ = binary.Write(&b, binary.LittleEndian, v) }
	b.WriteString("RIFF")
	le(uint32(4 + 8 + 16 + 8 + 4 + 8 + len(data)))
	b.WriteString("WAVEfmt ")
	le(uint32(16))
	le(uint16(1))
	le(uint16(channels))
	le(uint32(rate))
	le(uint32(rate * block))
	le(uint16(block))
	le(uint16(16))
	b.WriteString("LIST")
	le(uint32(3)) // odd: padded to 4
	b.WriteString("abc\x00")
	b.WriteString("data")
	le(uint32(len(data)))
	b.Write(data)
	return b.Bytes()
}

// form builds a multipart body as Go's client does, fields in order and
// the file last.
func form(t testing.TB, fields [][2]string, file []byte) (body []byte, contentType string) {
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		require.NoError(t, w.WriteField(f[0], f[1]))
	}
	if file != nil {
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="a.wav"`)
		h.Set("Content-Type", "audio/wav")
		p, err := w.CreatePart(h)
		require.NoError(t, err)
		_, _ = p.Write(file)
	}
	require.NoError(t, w.Close())
	return b.Bytes(), w.FormDataContentType()
}

func TestParseFormWAV(t *testing.T) {
	body, ct := form(t, [][2]string{{"model", "whisper"}, {"stream", "True"}, {"stream_include_usage", "1"},
		{"max_completion_tokens", "200"}, {"prompt", "names: Ada"}, {"language", "en"}}, wav(12.25, 16000, 2))
	var b Body
	require.NoError(t, ParseForm(&b, Transcriptions, ct, body, 1800))
	assert.Equal(t, Request{Endpoint: Transcriptions, Model: "whisper", Stream: true, IncludeUsage: true,
		MaxOutputTokens: 200, N: 1, PromptBytes: 10, Prompts: 1, AudioSeconds: 13, AudioLengthKnown: true}, b.Request)
	assert.Equal(t, "whisper", string(body[b.Layout.Model.Start:b.Layout.Model.End]))
	wc := b.Request.WorstCase(1024)
	assert.Equal(t, Usage{Prompt: 10 + 8 + 50*13, Completion: 200, Seconds: 13}, wc)
}

func TestParseFormUnknownLength(t *testing.T) {
	body, ct := form(t, [][2]string{{"model", "m"}, {"model", "last"}}, []byte("ID3\x04 an mp3"))
	var b Body
	require.NoError(t, ParseForm(&b, Translations, ct, body, 600))
	assert.Equal(t, "last", b.Request.Model)
	assert.False(t, b.Request.AudioLengthKnown)
	assert.Equal(t, int64(600), b.Request.AudioSeconds)
	assert.Equal(t, int64(1024), b.Request.WorstCase(1024).Completion)
}

func TestWAVSeconds(t *testing.T) {
	for _, tt := range []struct {
		name string
		data []byte
		want int64
		ok   bool
	}{
		{"exact", wav(3, 8000, 1), 3, true},
		{"rounded up", wav(3.01, 8000, 1), 4, true},
		{"truncated: what is present", wav(10, 8000, 1)[:44+8000*2*2], 2, true},
		{"empty", wav(0, 8000, 1), 0, true},
		{"not riff", []byte("RIFX....WAVE"), 0, false},
		{"short", []byte("RIFF"), 0, false},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := wavSeconds(tt.data)
			assert.Equal(t, tt.ok, ok)
			assert.Equal(t, tt.want, got)
		})
	}
	// A lying byte rate does not shorten the audio: the frames and the
	// sample rate do (what a decoder plays).
	w := wav(5, 8000, 1)
	binary.LittleEndian.PutUint32(w[28:], 8000*2*100)
	got, ok := wavSeconds(w)
	assert.True(t, ok)
	assert.Equal(t, int64(5), got)
	// A compressed format is not read.
	binary.LittleEndian.PutUint16(w[20:], 0x55)
	_, ok = wavSeconds(w)
	assert.False(t, ok)
}

func TestParseFormRejects(t *testing.T) {
	good, ct := form(t, [][2]string{{"model", "m"}}, wav(1, 8000, 1))
	noFile, ct1 := form(t, [][2]string{{"model", "m"}}, nil)
	noModel, ct2 := form(t, nil, wav(1, 8000, 1))
	badStream, ct3 := form(t, [][2]string{{"model", "m"}, {"stream", "maybe"}}, wav(1, 8000, 1))
	badMax, ct4 := form(t, [][2]string{{"model", "m"}, {"max_completion_tokens", "-3"}}, wav(1, 8000, 1))
	for _, tt := range []struct {
		name, ct string
		body     []byte
		msg      string
	}{
		{"json content-type", "application/json", good, "takes multipart/form-data with a boundary"},
		{"no boundary", "multipart/form-data", good, "with a boundary"},
		{"another boundary", "multipart/form-data; boundary=zzz", good, "no part with the content-type's boundary"},
		{"no closing delimiter", ct, good[:len(good)-10], "has no closing delimiter"},
		{"no file", ct1, noFile, "file: missing"},
		{"no model", ct2, noModel, "model: missing"},
		{"bad stream", ct3, badStream, "stream: must be true or false"},
		{"bad max", ct4, badMax, "max_completion_tokens: must be a non-negative integer"},
		{"no disposition", "multipart/form-data; boundary=b", []byte("--b\r\nX-A: 1\r\n\r\nv\r\n--b--"), "has no Content-Disposition"},
		{"header without colon", "multipart/form-data; boundary=b", []byte("--b\r\nbad\r\n\r\nv\r\n--b--"), "without a colon"},
		{"delimiter line", "multipart/form-data; boundary=b", []byte("--bx\r\n\r\nv\r\n--b--"), "does not end in CRLF"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			var b Body
			err := ParseForm(&b, Transcriptions, tt.ct, tt.body, 60)
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrInvalidRequest)
			assert.Contains(t, err.Error(), tt.msg)
		})
	}
	var b Body
	assert.ErrorIs(t, ParseForm(&b, ChatCompletions, ct, good, 60), ErrInvalidRequest)
}

// TestParseFormPreambleAndPadding: a preamble, transport padding after a
// delimiter and an epilogue are allowed.
func TestParseFormPreambleAndPadding(t *testing.T) {
	body := "preamble\r\n--b \t\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b\r\n" +
		"content-disposition: form-data; name=file; filename=x\r\n\r\n\x00\x01\r\n--b--\r\nepilogue"
	var b Body
	require.NoError(t, ParseForm(&b, Transcriptions, "multipart/form-data; boundary=b", []byte(body), 60))
	assert.Equal(t, "m", b.Request.Model)
	assert.Equal(t, int64(60), b.Request.AudioSeconds)
}

func FuzzParseForm(f *testing.F) {
	body, ct := form(f, [][2]string{{"model", "whisper"}, {"stream", "true"}, {"max_completion_tokens", "5"}}, wav(2, 8000, 1))
	f.Add(ct, body)
	f.Add("multipart/form-data; boundary=b", []byte("--b\r\nContent-Disposition: form-data; name=\"model\"\r\n\r\nm\r\n--b\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nRIFF\x00\x00\x00\x00WAVEdata\xff\xff\xff\xff\r\n--b--"))
	f.Add("multipart/form-data; boundary=b", []byte("--b\r\n\r\n\r\n--b--"))
	f.Add("multipart/form-data; boundary=\"a b\"", []byte("x\r\n--a b\r\nContent-Disposition: form-data; name=file\r\nContent-Transfer-Encoding: base64\r\n\r\nUklGRg==\r\n--a b--"))
	f.Fuzz(func(t *testing.T, ct string, body []byte) {
		var b Body
		err := ParseForm(&b, Transcriptions, ct, body, 77)
		if err != nil {
			if !errors.Is(err, ErrInvalidRequest) {
				t.Fatalf("error %v does not wrap ErrInvalidRequest", err)
			}
			return
		}
		r := b.Request
		if r.Model == "" || r.AudioSeconds < 0 || r.MaxOutputTokens < 0 || r.PromptBytes > int64(len(body)) {
			t.Fatalf("impossible request %+v", r)
		}
		if !r.AudioLengthKnown && r.AudioSeconds != 77 {
			t.Fatalf("unknown length but %d seconds", r.AudioSeconds)
		}
		if m := b.Layout.Model; m.Found() && string(body[m.Start:m.End]) != r.Model {
			t.Fatalf("model span %v holds %q, not %q", m, body[m.Start:m.End], r.Model)
		}
	})
}
