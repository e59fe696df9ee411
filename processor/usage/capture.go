package usage

import (
	"bytes"
	"unicode/utf8"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// Capture of the text delivered to the client, for counting its tokens
// exactly when the upstream reports no usage (an aborted or failed
// stream). Off by default, and then it costs one comparison per content
// event.
//
// Only content events (see isContent) are read, once the heuristic has
// found them; the strings kept, decoded and appended in stream order:
//
//   - SSEChat: for every element of the top-level choices array, its
//     text (completions) and, in its delta object, content,
//     reasoning_content, reasoning, refusal and the function.arguments of
//     every element of tool_calls;
//   - SSEResponses: the top-level delta string of a *.delta event;
//   - SSEAnthropic: in a content_block_delta's delta object, text,
//     partial_json and thinking.
//
// An event whose data is larger than MaxSSEEventBytes is counted but its
// text is not kept.

// chatDeltaKeys are the strings of a chat delta that hold generated text.
var chatDeltaKeys = [...]string{"content", "reasoning_content", "reasoning", "refusal"}

// anthropicDeltaKeys are the strings of an Anthropic content delta.
var anthropicDeltaKeys = [...]string{"text", "partial_json", "thinking"}

// SetCaptureText makes the scanner keep the decoded text of the content it
// reads, the first limit bytes of it (cut at a character boundary); 0, the
// default, keeps none. Call it after Reset (which turns capture off) and
// before the first Write.
func (s *SSEScanner) SetCaptureText(limit int) { s.textLimit = max(limit, 0) }

// Text returns the text captured so far (see SetCaptureText): owned by the
// scanner, read-only, valid until the next Write, Finish or Reset.
func (s *SSEScanner) Text() []byte { return s.text }

// captureText appends the text of the content event data (of type typ) to
// s.text.
func (s *SSEScanner) captureText(data, typ []byte) {
	var buf [16]jsonscan.Member
	top, valid, object := jsonscan.ValidMembers(data, buf[:0])
	if !valid || !object {
		return
	}
	switch s.kind {
	case SSEResponses:
		if bytes.HasSuffix(typ, deltaSuffix) {
			s.keepString(top.Get("delta"))
		}
	case SSEAnthropic:
		if d := top.Get("delta"); len(d) > 0 && d[0] == '{' {
			members := jsonscan.Members(d, top[:0])
			for _, k := range anthropicDeltaKeys {
				s.keepString(members.Get(k))
			}
		}
	default:
		eachElement(top.Get("choices"), s.chatChoiceText)
	}
}

// chatChoiceText keeps the text of one element of a chat or completions
// chunk's choices.
func (s *SSEScanner) chatChoiceText(choice []byte) {
	if choice[0] != '{' {
		return
	}
	var buf [8]jsonscan.Member
	members := jsonscan.Members(choice, buf[:0])
	s.keepString(members.Get("text"))
	delta := members.Get("delta")
	if len(delta) == 0 || delta[0] != '{' {
		return
	}
	members = jsonscan.Members(delta, members[:0])
	for _, k := range chatDeltaKeys {
		s.keepString(members.Get(k))
	}
	eachElement(members.Get("tool_calls"), func(call []byte) {
		if call[0] != '{' {
			return
		}
		var buf [8]jsonscan.Member
		fn := jsonscan.Members(call, buf[:0]).Get("function")
		if len(fn) > 0 && fn[0] == '{' {
			s.keepString(jsonscan.Members(fn, buf[:0]).Get("arguments"))
		}
	})
}

// keepString appends the decoded JSON string raw (nil or another value:
// nothing) to the text, up to textLimit bytes.
func (s *SSEScanner) keepString(raw []byte) {
	room := s.textLimit - len(s.text)
	if room <= 0 || len(raw) < 3 || raw[0] != '"' {
		return
	}
	if bytes.IndexByte(raw, '\\') < 0 {
		s.appendText(raw[1 : len(raw)-1])
		return
	}
	str, _ := jsonscan.String(raw)
	s.appendText([]byte(str))
}

// appendText appends b to the text, cut to textLimit at the start of a
// character; after a cut nothing more is kept.
func (s *SSEScanner) appendText(b []byte) {
	if room := s.textLimit - len(s.text); len(b) > room {
		b = b[:room]
		for i := len(b) - 1; i >= 0 && i >= len(b)-utf8.UTFMax; i-- {
			if utf8.RuneStart(b[i]) {
				if !utf8.FullRune(b[i:]) {
					b = b[:i] // a character the cut left incomplete
				}
				break
			}
		}
		s.text = append(s.text, b...)
		s.textLimit = len(s.text)
		return
	}
	s.text = append(s.text, b...)
}

// eachElement calls fn with each element of the valid JSON array arr
// (nothing when arr is not an array).
func eachElement(arr []byte, fn func(elem []byte)) {
	if len(arr) == 0 || arr[0] != '[' {
		return
	}
	i := jsonscan.SkipSpace(arr, 1)
	for i < len(arr) && arr[i] != ']' {
		end := jsonscan.SkipValue(arr, i)
		fn(arr[i:end])
		i = jsonscan.SkipSpace(arr, end)
		if i < len(arr) && arr[i] == ',' {
			i = jsonscan.SkipSpace(arr, i+1)
		}
	}
}
