package pricing

import (
	"encoding/json"
	"errors"
	"fmt"
	"github.com/spendguard/spendguard/internal/jsonscan"
	"math"
)

// ErrInvalidRequest is wrapped by every error of ParseRequest: the body is
// not one the endpoint can serve, and the client should get a 400.
var ErrInvalidRequest = errors.New("invalid request body")

// Worst-case overheads, in tokens: our assumption of the fixed text a chat
// template or tokenizer adds around what the client sent (role headers,
// separators, BOS/EOS). They are not measured per model.
const (
	perMessageTokens = 4 // per chat message or Responses input item
	perPromptTokens  = 8 // per prompt (one for a chat; one per batch entry)
)

// Request is what spendguard reads from the body of a request to one of the
// endpoints that cost money. Fields the endpoint does not have stay zero.
type Request struct {
	Endpoint Endpoint
	// Model is the requested model, never empty.
	Model string
	// Stream is the "stream" field.
	Stream bool
	// StreamOptionsPresent is true when "stream_options" is an object.
	StreamOptionsPresent bool
	// IncludeUsage is true when stream_options.include_usage is true.
	// (vLLM also streams usage when stream_options is present without
	// include_usage; OpenAI does not. This field reports only what the
	// client wrote.)
	IncludeUsage bool
	// MaxOutputTokens is the client's output limit per sequence, 0 when
	// unset: max_tokens or max_completion_tokens, the larger when a chat
	// request sets both; max_output_tokens for /v1/responses.
	MaxOutputTokens int64
	// OutputLimitStated is true when the body states an output limit: a
	// member that sets MaxOutputTokens is present and not null (even when
	// it is 0). A request that states none is the one whose forwarded body
	// gets the limit its reservation covers.
	OutputLimitStated bool
	// N is the number of sequences generated per prompt, at least 1: n, or
	// best_of on /v1/completions when larger (vLLM generates best_of
	// sequences and returns n).
	N int64
	// User is the "user" field, "" when absent.
	User string
	// PromptBytes is the UTF-8 length of the prompt text the server will
	// tokenize: message contents (strings, or the text of text parts), the
	// JSON length of every other message field (role, name, tool_calls, ...)
	// and of non-text parts, tool and function definitions, documents,
	// chat_template, Responses instructions; completion and embedding
	// prompts given as strings.
	PromptBytes int64
	// PromptTokensKnown counts prompt tokens given as token ids.
	PromptTokensKnown int64
	// Messages counts chat messages, or Responses input items plus one for
	// non-empty instructions (rendered as a system message).
	Messages int
	// Prompts is the number of independent prompts, at least 1: the batch
	// size when /v1/completions or /v1/embeddings gets a list of prompts.
	Prompts int
	// NonTextParts counts content parts that are not text (images, audio,
	// files, ...). They are included in PromptBytes by their JSON length,
	// which bounds the tokens of inline base64 data but NOT of media the
	// server fetches by URL.
	NonTextParts int
	// AudioSeconds is the length of an uploaded audio file, rounded up
	// (transcriptions and translations): read from its header where that
	// is cheap (WAV), else the configured ceiling (AudioLengthKnown false).
	AudioSeconds int64
	// AudioLengthKnown reports whether AudioSeconds was read from the file.
	AudioLengthKnown bool
}

// ParseRequest reads the buffered body of a request to e. Its errors wrap
// ErrInvalidRequest: invalid JSON, a top level that is not an object, a
// missing, empty or non-string "model", and a field spendguard reads that has
// the wrong type or an impossible value (a negative max_tokens, n < 1).
//
// Keys are matched exactly and the last of duplicate keys wins, as in the
// model server's own (Python) JSON parser; so no spelling of a field can be
// read one way here and another way upstream.
//
// The body is read in one pass (scan): the pass that validates it also
// finds the fields and counts the prompt, measuring each text in the same
// scan that validates it, so a long prompt is read once. The errors of
// the prompt fields wait until the pass ends: invalid JSON anywhere in
// the body is reported first, as encoding/json reports it (notAnObject).
func ParseRequest(e Endpoint, body []byte) (*Request, error) {
	r := new(Request)
	if err := ParseRequestInto(r, e, body); err != nil {
		return nil, err
	}
	return r, nil
}

// ParseRequestInto is ParseRequest into r, which it overwrites, so that a
// caller that keeps a Request per stream parses without allocating one.
// After an error r holds nothing useful.
func ParseRequestInto(r *Request, e Endpoint, body []byte) error {
	return parse(r, nil, e, body)
}

// parse is ParseRequestInto that also fills out's layout and fields when
// out is not nil (ParseBody).
func parse(r *Request, out *Body, e Endpoint, body []byte) error {
	if e < ChatCompletions || e > Invocations || e.Multipart() {
		return fmt.Errorf("%w: %v has no JSON request to parse", ErrInvalidRequest, e)
	}
	if uint64(len(body)) > maxBodyLen {
		return fmt.Errorf("%w: a body of %d bytes is longer than spendguard reads (%d)", ErrInvalidRequest, len(body), uint64(maxBodyLen))
	}
	s := scan{out: out}
	if !s.body(e, body) {
		return notAnObject(body)
	}
	f := &s.fields
	if out != nil {
		out.fields = s.fields
	}
	if e == Invocations {
		var err error
		if e, err = s.invocation(); err != nil {
			return err
		}
		s.e = e
	}
	*r = Request{Endpoint: e, N: 1, Prompts: 1}
	model := f.get(fModel)
	if model == nil {
		return invalid("model", "missing")
	}
	var ok bool
	if r.Model, ok = asString(model); !ok {
		return invalid("model", "must be a string")
	}
	if r.Model == "" {
		return invalid("model", "must not be empty")
	}
	if err := stringField(&r.User, "user", f.get(fUser)); err != nil {
		return err
	}
	switch e {
	case ChatCompletions, Completions, Responses, Generate:
		if err := r.readStream(f, out); err != nil {
			return err
		}
	case Messages:
		if err := boolField(&r.Stream, "stream", f.get(fStream)); err != nil {
			return err
		}
	}

	var c tally
	var err error
	switch e {
	case ChatCompletions:
		err = r.readChat(&s, &c)
	case Completions:
		err = r.readCompletions(&s, &c)
	case Embeddings:
		err = r.readEmbeddings(&s, &c)
	case Responses:
		err = r.readResponses(&s, &c)
	case Messages:
		err = r.readMessages(&s, &c)
	case Generate:
		err = r.readGenerate(&s, &c)
	case Rerank:
		err = r.readRerank(&s, &c)
	case Score:
		err = r.readScore(&s, &c)
	case Pooling, Classify:
		err = r.readPooling(&s, &c)
	}
	if err != nil {
		return err
	}
	r.PromptBytes, r.PromptTokensKnown = c.bytes, c.tokens
	r.Messages, r.NonTextParts = c.messages, c.nonText
	r.Prompts = max(c.prompts, 1)
	return nil
}

// notAnObject is the error for a body that is not valid JSON or not an
// object, worded as encoding/json reports it.
func notAnObject(body []byte) error {
	var top map[string]json.RawMessage
	err := json.Unmarshal(body, &top)
	var syn *json.SyntaxError
	switch {
	case errors.As(err, &syn):
		return fmt.Errorf("%w: not valid JSON: %v (at byte %d)", ErrInvalidRequest, syn, syn.Offset)
	case err == nil && top == nil:
		return fmt.Errorf("%w: the body must be a JSON object, not null", ErrInvalidRequest)
	}
	return fmt.Errorf("%w: the body must be a JSON object", ErrInvalidRequest)
}

// WorstCase bounds the tokens the request can use, for the reservation made
// before it is served:
//
//	Prompt     = PromptBytes + PromptTokensKnown + 4*Messages + 8*Prompts
//	             + 50*AudioSeconds
//	Completion = (MaxOutputTokens, or defaultMaxOutput when unset) * N * Prompts
//	             (0 for the kinds that generate nothing: embeddings, rerank,
//	             score, pooling, classify)
//	Seconds    = AudioSeconds
//	CachedPrompt = 0 (no cache hits: Compile guarantees they never cost more)
//
// Every tokenizer the server can use turns at least one byte of text into
// each token, so PromptBytes bounds the tokens of the text. The 4 per
// message and 8 per prompt are our assumption of the fixed text a chat
// template and tokenizer add (role headers, separators, BOS/EOS); a template
// that adds more (a long built-in system prompt) is not covered, nor are
// media fetched by URL (see NonTextParts), nor conversation state the
// server keeps itself (Responses previous_response_id). All sums saturate.
func (r *Request) WorstCase(defaultMaxOutput int64) Usage {
	prompts := int64(max(r.Prompts, 1))
	prompt := satAdd(satAdd(max(r.PromptBytes, 0), max(r.PromptTokensKnown, 0)),
		satAdd(satMul(perMessageTokens, int64(max(r.Messages, 0))), satMul(perPromptTokens, prompts)))
	seconds := max(r.AudioSeconds, 0)
	prompt = satAdd(prompt, satMul(audioTokensPerSecond, seconds))
	if !r.Endpoint.Generates() {
		return Usage{Prompt: prompt}
	}
	out := r.MaxOutputTokens
	if out <= 0 {
		out = max(defaultMaxOutput, 0)
	}
	return Usage{Prompt: prompt, Completion: satMul(satMul(out, max(r.N, 1)), prompts), Seconds: seconds}
}

// readStream reads stream and stream_options, recording the members of
// stream_options in out when it is not nil.
func (r *Request) readStream(f *fields, out *Body) error {
	if err := boolField(&r.Stream, "stream", f.get(fStream)); err != nil {
		return err
	}
	raw := f.get(fStreamOptions)
	if raw == nil || isNull(raw) {
		return nil
	}
	var buf [4]jsonscan.Member
	opts, ok := asObject(raw, buf[:0])
	if !ok {
		return invalid("stream_options", "must be an object or null")
	}
	r.StreamOptionsPresent = true
	if out != nil {
		out.streamOptions(opts)
	}
	return boolField(&r.IncludeUsage, "stream_options.include_usage", opts.Get("include_usage"))
}

func (r *Request) readChat(s *scan, c *tally) error {
	f := &s.fields
	var maxTokens, maxCompletion int64
	if err := countField(&maxTokens, "max_tokens", f.get(fMaxTokens), 0); err != nil {
		return err
	}
	if err := countField(&maxCompletion, "max_completion_tokens", f.get(fMaxCompletionTokens), 0); err != nil {
		return err
	}
	r.MaxOutputTokens = max(maxTokens, maxCompletion)
	r.OutputLimitStated = stated(f.get(fMaxTokens)) || stated(f.get(fMaxCompletionTokens))
	if err := countField(&r.N, "n", f.get(fN), 1); err != nil {
		return err
	}
	if err := c.add(&s.messages); err != nil {
		return err
	}
	c.rawFields(f, fTools, fFunctions, fDocuments, fChatTemplate)
	return nil
}

func (r *Request) readCompletions(s *scan, c *tally) error {
	f := &s.fields
	if err := countField(&r.MaxOutputTokens, "max_tokens", f.get(fMaxTokens), 0); err != nil {
		return err
	}
	r.OutputLimitStated = stated(f.get(fMaxTokens))
	if err := countField(&r.N, "n", f.get(fN), 1); err != nil {
		return err
	}
	var bestOf int64 = 1
	if err := countField(&bestOf, "best_of", f.get(fBestOf), 1); err != nil {
		return err
	}
	r.N = max(r.N, bestOf)
	if err := c.add(&s.prompt); err != nil {
		return err
	}
	c.rawFields(f, fPromptEmbeds)
	return nil
}

func (r *Request) readEmbeddings(s *scan, c *tally) error {
	f := &s.fields
	if err := c.add(&s.input); err != nil {
		return err
	}
	// vLLM also embeds a chat conversation given as "messages".
	if err := c.add(&s.messages); err != nil {
		return err
	}
	c.rawFields(f, fTools, fChatTemplate)
	return nil
}

func (r *Request) readResponses(s *scan, c *tally) error {
	f := &s.fields
	if err := countField(&r.MaxOutputTokens, "max_output_tokens", f.get(fMaxOutputTokens), 0); err != nil {
		return err
	}
	r.OutputLimitStated = stated(f.get(fMaxOutputTokens))
	var instructions string
	if err := stringField(&instructions, "instructions", f.get(fInstructions)); err != nil {
		return err
	}
	if instructions != "" {
		c.bytes += int64(len(instructions))
		c.messages++
	}
	if err := c.add(&s.input); err != nil {
		return err
	}
	c.rawFields(f, fTools)
	return nil
}

func satAdd(a, b int64) int64 {
	if a > math.MaxInt64-b {
		return math.MaxInt64
	}
	return a + b
}

func satMul(a, b int64) int64 {
	if a == 0 || b == 0 {
		return 0
	}
	if a > math.MaxInt64/b {
		return math.MaxInt64
	}
	return a * b
}

// scan is ParseRequest's single pass over a body. It validates the body
// as encoding/json would, finds the top-level fields, and counts the
// prompt fields of the endpoint (messages, prompt, input) in the same
// pass, so that each byte of prompt text is read once: a content string
// is validated and measured by one jsonscan.ValidStringLen. When the body
// is not valid JSON, ParseRequest only needs to know that (notAnObject
// words the error).
type scan struct {
	b []byte
	e Endpoint
	// fields are the top-level fields ParseRequest reads.
	fields fields
	// messages, prompt and input are what the last member of that name
	// adds to the prompt, when it is one the endpoint reads; its error
	// waits until the fields before it in ParseRequest's order have been
	// checked.
	messages, prompt, input tally
	// system is what Anthropic's "system" adds; texts what each of the
	// scoring fields adds (textSlot).
	system tally
	texts  [nTextSlots]tally
	// itemBuf holds the members of each message or input item.
	itemBuf [8]jsonscan.Member
	// out, when not nil, records the top-level members (ParseBody).
	out *Body
}

// body walks the top-level object of the body, setting s.fields (the
// last of duplicate keys wins) and counting the prompt fields of e. It
// reports whether the body is valid JSON and an object.
func (s *scan) body(e Endpoint, body []byte) bool {
	s.b, s.e = body, e
	i := jsonscan.SkipSpace(body, 0)
	if i == len(body) || body[i] != '{' {
		return false
	}
	var top walker
	top.open(body, i, 0)
	for {
		key, v, ok := top.next()
		if !ok {
			break
		}
		k := fieldOf(key)
		end := s.value(k, v, top.depth)
		if end >= 0 && k != noField {
			s.fields.set(body, k, v, end)
		}
		if end >= 0 && s.out != nil {
			s.out.member(k, key, body, v, end)
		}
		top.after(end)
	}
	end := top.end()
	if end >= 0 && s.out != nil {
		s.out.Layout.End = end - 1
	}
	return end >= 0 && jsonscan.SkipSpace(body, end) == len(body)
}

// value validates the value of top-level field k, which starts at s.b[i],
// and counts it when it is a prompt field of the endpoint; it returns the
// value's end, -1 when it is not valid.
func (s *scan) value(k field, i, depth int) int {
	switch {
	case k == fMessages && s.e != Completions && s.e != Responses && s.e != Generate && s.e != Rerank && s.e != Score:
		s.messages = tally{}
		return s.messageList(i, depth, &s.messages)
	case k == fPrompt && (s.e == Completions || s.e == Invocations):
		s.prompt = tally{}
		return s.promptList("prompt", i, depth, &s.prompt)
	case k == fInput && (s.e == Embeddings || s.e == Pooling || s.e == Classify || s.e == Invocations):
		s.input = tally{}
		return s.promptList("input", i, depth, &s.input)
	case k == fSystem && s.e == Messages:
		s.system = tally{}
		return s.content(where{list: "system", i: -1}, i, depth, &s.system)
	case k == fTokenIDs && s.e == Generate:
		s.prompt = tally{}
		return s.tokenList("token_ids", i, depth, &s.prompt)
	case textSlot(k) >= 0 && (s.e == Rerank || s.e == Score || s.e == Invocations):
		t := &s.texts[textSlot(k)]
		*t = tally{}
		return s.scoreInputs(fieldNames[k], i, depth, t)
	case k == fInput && s.e == Responses:
		s.input = tally{}
		return s.responsesInput(i, depth, &s.input)
	}
	return jsonscan.ValidValue(s.b, i, depth)
}
