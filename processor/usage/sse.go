package usage

import (
	"github.com/spendguard/spendguard/internal/jsonscan"
	"github.com/spendguard/spendguard/pricing"
)

// SSEKind says which API a stream comes from, and so where its events carry
// usage.
type SSEKind uint8

const (
	// SSEChat is a /v1/chat/completions or /v1/completions stream
	// (chat.completion.chunk or text_completion events): the usage is the
	// top-level "usage" member of an event's JSON.
	SSEChat SSEKind = iota
	// SSEResponses is a /v1/responses stream: the usage is the
	// response.usage member of an event's JSON (in practice of the
	// response.completed, response.incomplete and response.failed events).
	SSEResponses
	// SSEAnthropic is a /v1/messages stream (Anthropic Messages API):
	// event/data frames whose usage is in message_start's message.usage
	// (the prompt) and message_delta's top-level usage (the whole
	// request's).
	SSEAnthropic
)

// MaxSSEEventBytes bounds what SSEScanner keeps of one event: the bytes of
// the event held back to be able to drop it, and the data bytes buffered to
// look at it. A larger event is never dropped, and past this many data bytes
// its usage is still found (streamed through a JSONScanner) but the other
// checks see only its first MaxSSEEventBytes data bytes.
const MaxSSEEventBytes = 64 << 10

// maxEventType bounds the event field value kept (event type names are
// short; a longer one is cut).
const maxEventType = 64

// SSEScanner reads a text/event-stream response body fed to it in chunks
// split at any byte: it finds the usage, counts content events and can
// remove the usage-only event, and hide each chunk's continuous usage,
// from what the client receives. It is not safe for concurrent use. The
// zero value is ready for a SSEChat stream without dropping; NewSSEScanner
// and Reset choose. It takes about 1.5 KiB plus buffers that grow to the
// largest event seen, at most about MaxSSEEventBytes each for the event's
// data and held-back bytes, plus what one Write returns. See the package
// documentation for exactly what it reports.
type SSEScanner struct {
	kind    SSEKind
	drop    bool      // remove the usage-only event (SSEChat only)
	strip   StripMode // hide each choice chunk's usage (SSEChat only, sse_strip.go)
	holding bool      // drop or strip: events are held back whole
	limit   int       // MaxSSEEventBytes; tests lower it

	// Line framing.
	line    lineState
	field   fieldKind
	name    [5]byte // the field name so far ("event" is the longest known)
	nameLen int     // bytes of the name so far, counting those not kept
	skipLF  bool    // the last line ended with '\r': a '\n' next belongs to it
	lf      int     // index of the next '\n' in the current chunk, -1: unknown

	// The open event: its block of lines up to the blank line ending it.
	inBlock  bool
	blockLen int // bytes of the block in earlier chunks
	data     []byte
	big      bool // data outgrew limit: the rest is streamed through js
	typ      [maxEventType]byte
	typLen   int
	js       JSONScanner
	// dataLines counts the block's data lines; dataOff is where the first
	// one's value starts in the block, -1 when unknown (sse_strip.go).
	dataLines int
	dataOff   int
	// edits: what strip changes in the event just dispatched, offsets in
	// its data (sse_strip.go).
	edits []stripEdit
	// tail is the output of Finish when it strips the last event.
	tail []byte
	// top: the top-level members of the event being dispatched, parsed
	// once for the checks that need them (topMembers, sse_strip.go);
	// valid only during dispatch.
	top                  jsonscan.Object
	topParsed, topObject bool

	// Output when dropping; p, emitFrom, blockStart and changed are only
	// meaningful during Write.
	p          []byte
	emitFrom   int  // bytes of p before it are in out or dropped
	blockStart int  // index in p where the open block starts; -1: earlier
	changed    bool // out differs from p
	hold       []byte
	passing    bool // the open block outgrew limit and is forwarded as it comes
	dropLF     bool // a dropped block ended with '\r': a '\n' next goes too
	out        []byte
	finished   bool

	// Findings.
	events   int // data events dispatched
	occ      occurrence
	usage    pricing.Usage
	details  Details
	usageErr error
	content  int

	modelRaw   []byte // the model's raw JSON string (model.go)
	modelFound bool

	// Per-choice running counts (SSEChat, sse_kinds.go): running[i] is
	// choice i's last completion count, -1 when none came; final: the
	// request's own usage came.
	running []int64
	final   bool
	// Per-prompt counts (SSEChat with several prompts, sse_kinds.go):
	// perPrompt is the number of choices of one prompt (0: every choice
	// shares one prompt); prompts[p] is prompt p's prompt_tokens, -1 when
	// no event of its choices came.
	perPrompt int
	prompts   []int64

	// SSEAnthropic: message_start's usage object, raw and decoded.
	startRaw   []byte
	startUsage pricing.Usage
	startFound bool

	// Delivered text (capture.go): kept up to textLimit bytes, off at 0.
	textLimit int
	text      []byte

	// SSEResponses: the response's id (sse_hold.go).
	respID    [maxResponseID]byte
	respIDLen int
}

// NewSSEScanner returns a scanner for one stream of the given kind. With
// dropUsageEvent, the usage-only event of a SSEChat stream is removed from
// the output; it is ignored for SSEResponses.
func NewSSEScanner(kind SSEKind, dropUsageEvent bool) *SSEScanner {
	s := &SSEScanner{}
	s.Reset(kind, dropUsageEvent)
	return s
}

// Reset forgets the previous stream and makes the scanner ready for a new
// one, keeping its buffers.
func (s *SSEScanner) Reset(kind SSEKind, dropUsageEvent bool) {
	keep := func(b []byte) []byte {
		if cap(b) > 2*MaxSSEEventBytes {
			return nil
		}
		return b[:0]
	}
	data, hold, out, modelRaw, tail := keep(s.data), keep(s.hold), keep(s.out), s.modelRaw[:0], keep(s.tail)
	edits, top := s.edits[:0], s.top[:0]
	if cap(edits) > 64 {
		edits = nil
	}
	if cap(top) > 64 {
		top = nil
	}
	running, prompts, startRaw, text := s.running[:0], s.prompts[:0], s.startRaw[:0], keep(s.text)
	if cap(running) > 64 {
		running = nil
	}
	if cap(prompts) > 64 {
		prompts = nil
	}
	if cap(startRaw) > 4<<10 {
		startRaw = nil
	}
	jsBuf, jsModel := s.js.buf, s.js.model.raw
	// Zeroed in place and then set, field by field: a composite literal
	// (or a copy of the embedded JSONScanner) would be built in a
	// temporary on the stack first, kilobytes on every stream's response
	// path, enough to make the goroutine's stack grow past its 8 KiB.
	*s = SSEScanner{}
	s.js.buf, s.js.model.raw = jsBuf, jsModel
	s.js.Reset()
	s.kind, s.drop, s.limit = kind, dropUsageEvent && kind == SSEChat, MaxSSEEventBytes
	s.holding = s.drop
	s.lf, s.blockStart, s.dataOff = -1, -1, -1
	s.data, s.hold, s.out, s.modelRaw, s.tail, s.edits, s.top = data, hold, out, modelRaw, tail, edits, top
	s.running, s.prompts, s.startRaw, s.text = running, prompts, startRaw, text
}

// Write consumes the next chunk of the body and returns what to forward to
// the client in its place. When nothing changes it returns chunk itself and
// changed=false: always without dropUsageEvent and SetStripChunkUsage, and
// with them whenever the chunk ends on an event boundary, holds no event
// to remove or rewrite and no bytes were held back before. Otherwise
// changed is true and out (possibly empty) is owned by the scanner,
// read-only and valid until the next call: the bytes of an incomplete last
// event are held back and forwarded by a later call, so that the usage-only
// event can be removed, and a chunk's usage hidden, whole. Write never
// retains chunk. After Finish, chunks are forwarded unread. Result reports
// the usage found up to the end of the last event complete so far.
func (s *SSEScanner) Write(chunk []byte) (out []byte, changed bool) {
	if s.finished {
		return chunk, false
	}
	if s.limit == 0 {
		s.limit = MaxSSEEventBytes // the zero value
	}
	s.p, s.emitFrom, s.changed, s.lf = chunk, 0, false, -1
	s.out = s.out[:0]
	s.scan(chunk)
	if s.holding {
		s.endChunk()
	} else if s.inBlock {
		s.blockLen += len(chunk) - max(s.blockStart, 0)
	}
	if s.changed {
		s.emit(len(chunk))
	}
	s.p, s.blockStart = nil, -1
	if !s.changed {
		return chunk, false
	}
	return s.out, true
}

// Finish ends the stream. It returns the bytes still held back (an
// unterminated last event, forwarded as it is: never dropped). The last
// event, terminated or not, is looked at as if a blank line followed it, so
// its usage counts when its JSON is complete. Call Reset before reusing the
// scanner.
func (s *SSEScanner) Finish() (out []byte) {
	if s.finished {
		return nil
	}
	s.finished = true
	if s.line != lineStart {
		s.endLine(0)
	}
	if s.inBlock {
		s.dispatch()
	}
	out = s.hold
	if len(s.edits) > 0 && !s.passing && len(out) <= s.limit {
		s.tail = s.appendEdited(s.tail[:0], out, nil)
		out = s.tail
	}
	s.hold, s.edits = s.hold[:0], s.edits[:0]
	return out
}

// Result reports the usage of the stream so far: that of the last event
// carrying a non-null usage, with these exceptions (see the package
// documentation). SSEChat: an event of one choice under
// continuous_usage_stats carries that choice's running count, so until
// an event with the request's usage comes (the usage-only event), the
// completion is the sum over choices of each one's last count.
// SSEAnthropic: the usage is message_delta's (laid over message_start's);
// message_start alone is reported by PromptOnly, not here. When the
// winning usage cannot be decoded, err wraps ErrUsage and u is zero; an
// earlier event's usage is not used then.
func (s *SSEScanner) Result() (u pricing.Usage, found bool, err error) {
	switch s.occ {
	case occFound:
		return s.runningUsage(), true, nil
	case occFailed:
		return pricing.Usage{}, false, s.usageErr
	}
	return pricing.Usage{}, false, nil
}

// Details reports the informational counts of the usage Result reports;
// zero when Result does not report found.
func (s *SSEScanner) Details() Details {
	if s.occ != occFound {
		return Details{}
	}
	return s.details
}

// ContentEvents counts the events that carry generated content (see the
// package documentation for the heuristic): about one token each, to
// estimate the completion of a stream that ends without usage.
func (s *SSEScanner) ContentEvents() int { return s.content }

// blankLine ends the open block, if any, at the blank line's terminator
// p[i].
func (s *SSEScanner) blankLine(i int) {
	s.skipLF = s.p[i] == '\r'
	if !s.inBlock {
		return
	}
	usageOnly := s.dispatch()
	start := max(s.blockStart, 0)
	total := s.blockLen + i + 1 - start
	switch {
	case !s.holding:
	case usageOnly && total <= s.limit:
		if s.blockStart >= 0 {
			s.emit(s.blockStart)
		}
		s.hold = s.hold[:0]
		s.emitFrom, s.changed = i+1, true
		s.dropLF = s.skipLF
	case len(s.edits) > 0 && total <= s.limit:
		if s.blockStart >= 0 {
			s.emit(s.blockStart)
		}
		s.out = s.appendEdited(s.out, s.hold, s.p[start:i+1])
		s.hold = s.hold[:0]
		s.emitFrom, s.changed = i+1, true
	case s.blockStart < 0 && len(s.hold) > 0:
		// The block began in an earlier chunk: its held bytes go first.
		s.out = append(s.out, s.hold...)
		s.hold = s.hold[:0]
		s.changed = true
	}
	s.inBlock, s.passing, s.blockLen, s.blockStart = false, false, 0, -1
	s.edits = s.edits[:0]
}

// endChunk holds back the open block at the end of a chunk, or forwards it
// from now on once it outgrows limit.
func (s *SSEScanner) endChunk() {
	if !s.inBlock || s.passing {
		if s.inBlock {
			s.blockLen += len(s.p) - max(s.blockStart, 0)
		}
		return
	}
	start := max(s.blockStart, 0)
	s.blockLen += len(s.p) - start
	if s.blockLen <= s.limit {
		s.emit(start)
		s.hold = append(s.hold, s.p[start:]...)
		s.emitFrom, s.changed = len(s.p), true
		return
	}
	s.passing = true
	if len(s.hold) > 0 {
		// Only the open block is held, so it began in an earlier chunk
		// and nothing of this chunk is in out yet.
		s.out = append(s.out, s.hold...)
		s.hold = s.hold[:0]
		s.changed = true
	}
}

// emit copies p[emitFrom:upto] to out.
func (s *SSEScanner) emit(upto int) {
	s.out = append(s.out, s.p[s.emitFrom:upto]...)
	s.emitFrom = upto
}

// cut drops p[i], the '\n' ending a dropped block.
func (s *SSEScanner) cut(i int) {
	s.emit(i)
	s.emitFrom, s.changed = i+1, true
}
