package pricing

import (
	"fmt"

	"github.com/spendguard/spendguard/internal/jsonscan"
)

// The request kinds beyond the OpenAI four: the Anthropic Messages API,
// token-in/token-out generation, the scoring and pooling endpoints, and
// /invocations, which picks one of them by the body's shape.

// audioTokensPerSecond bounds the prompt tokens a second of audio becomes
// (Whisper's encoder makes 1500 frames of 30 s; the audio language models
// vLLM serves make fewer).
const audioTokensPerSecond = 50

// nTextSlots is the number of scoring fields (textSlot).
const nTextSlots = 8

// textSlot is where scan keeps the tally of a scoring field (rerank's
// query and documents, score's pairs), -1 for every other field.
func textSlot(k field) int {
	switch k {
	case fQuery:
		return 0
	case fQueries:
		return 1
	case fDocuments:
		return 2
	case fItems:
		return 3
	case fData1:
		return 4
	case fData2:
		return 5
	case fText1:
		return 6
	case fText2:
		return 7
	}
	return -1
}

// present reports whether the body has field k with a value other than
// null.
func (s *scan) present(k field) bool {
	v := s.fields.get(k)
	return v != nil && !isNull(v)
}

// scorePairs are the pairs of fields /score takes, in the order vLLM's
// request union tries them.
var scorePairs = [...][2]field{{fQueries, fDocuments}, {fQueries, fItems}, {fData1, fData2}, {fText1, fText2}}

// invocation is the kind an /invocations body is served as, decided as
// vLLM's SageMaker route decides it: the first request type, in vLLM's
// order (chat, completions, embeddings, classify, rerank, score, pooling),
// whose required fields the body has. Classify and pooling take the same
// shapes as embeddings (input) and chat (messages) and are reached only on
// a server without those tasks; the usage they report is read the same
// way, so the body's first match is what spendguard reserves for.
func (s *scan) invocation() (Endpoint, error) {
	switch {
	case first(s.fields.get(fMessages)) == '[':
		return ChatCompletions, nil
	case s.present(fPrompt) || s.present(fPromptEmbeds):
		return Completions, nil
	case s.present(fInput):
		return Embeddings, nil
	case s.present(fQuery) && s.present(fDocuments):
		return Rerank, nil
	}
	for _, p := range scorePairs {
		if s.present(p[0]) && s.present(p[1]) {
			return Score, nil
		}
	}
	return 0, fmt.Errorf("%w: /invocations: no endpoint takes this body: want messages (chat), prompt (completions), "+
		"input (embeddings, classify, pooling), query and documents (rerank), or queries and documents, "+
		"queries and items, data_1 and data_2, text_1 and text_2 (score)", ErrInvalidRequest)
}

// readMessages reads an Anthropic Messages API request: max_tokens is
// required (the API has no default) and is the output's worst case; the
// system prompt (a string or text blocks) counts as one more message.
func (r *Request) readMessages(s *scan, c *tally) error {
	f := &s.fields
	if !s.present(fMaxTokens) {
		return invalid("max_tokens", "missing: the Messages API requires it")
	}
	if err := countField(&r.MaxOutputTokens, "max_tokens", f.get(fMaxTokens), 1); err != nil {
		return err
	}
	r.OutputLimitStated = stated(f.get(fMaxTokens))
	if !s.present(fMessages) {
		return invalid("messages", "missing")
	}
	if err := c.add(&s.messages); err != nil {
		return err
	}
	if s.present(fSystem) {
		if err := c.add(&s.system); err != nil {
			return err
		}
		c.messages++
	}
	c.rawFields(f, fTools)
	return nil
}

// readGenerate reads a /inference/v1/generate request: the prompt as
// token_ids, and the output limit and sequence count in sampling_params.
func (r *Request) readGenerate(s *scan, c *tally) error {
	f := &s.fields
	if !s.present(fTokenIDs) {
		return invalid("token_ids", "missing: the prompt as token ids")
	}
	if err := c.add(&s.prompt); err != nil {
		return err
	}
	raw := f.get(fSamplingParams)
	if raw == nil || isNull(raw) {
		return nil
	}
	var buf [8]jsonscan.Member
	sp, ok := asObject(raw, buf[:0])
	if !ok {
		return invalid("sampling_params", "must be an object")
	}
	if err := countField(&r.MaxOutputTokens, "sampling_params.max_tokens", sp.Get("max_tokens"), 0); err != nil {
		return err
	}
	r.OutputLimitStated = stated(sp.Get("max_tokens"))
	if s.out != nil {
		s.out.samplingParams(sp)
	}
	return countField(&r.N, "sampling_params.n", sp.Get("n"), 1)
}

// readRerank reads a rerank request: the query is scored with each
// document, so it is counted once per document.
func (r *Request) readRerank(s *scan, c *tally) error {
	q, d := &s.texts[textSlot(fQuery)], &s.texts[textSlot(fDocuments)]
	switch {
	case !s.present(fQuery):
		return invalid("query", "missing")
	case q.err != nil:
		return q.err
	case !s.present(fDocuments):
		return invalid("documents", "missing")
	case d.err != nil:
		return d.err
	}
	n := int64(max(d.prompts, 1))
	c.bytes = satAdd(satMul(q.bytes, n), d.bytes)
	c.nonText = q.nonText + d.nonText
	c.prompts = int(n)
	return nil
}

// readScore reads a score request: the first pair of fields the body has,
// in vLLM's order. One text against a list is scored with each element
// (and counted once per element); two lists are scored element by
// element.
func (r *Request) readScore(s *scan, c *tally) error {
	for _, p := range scorePairs {
		if !s.present(p[0]) || !s.present(p[1]) {
			continue
		}
		a, b := &s.texts[textSlot(p[0])], &s.texts[textSlot(p[1])]
		if a.err != nil {
			return a.err
		}
		if b.err != nil {
			return b.err
		}
		na, nb := int64(max(a.prompts, 1)), int64(max(b.prompts, 1))
		switch {
		case na == 1:
			c.bytes = satAdd(satMul(a.bytes, nb), b.bytes)
		case nb == 1:
			c.bytes = satAdd(a.bytes, satMul(b.bytes, na))
		default:
			c.bytes = satAdd(a.bytes, b.bytes)
		}
		c.nonText = a.nonText + b.nonText
		c.prompts = int(max(na, nb))
		return nil
	}
	return invalid("queries", "missing: %v takes queries and documents (or queries and items, data_1 and data_2, text_1 and text_2)", s.e)
}

// readPooling reads a pooling or classify request: input, or a chat
// conversation as messages.
func (r *Request) readPooling(s *scan, c *tally) error {
	if !s.present(fInput) && !s.present(fMessages) {
		return invalid("input", "missing: %v takes input or messages", s.e)
	}
	if err := c.add(&s.input); err != nil {
		return err
	}
	if err := c.add(&s.messages); err != nil {
		return err
	}
	c.rawFields(&s.fields, fTools, fChatTemplate)
	return nil
}

// tokenList counts an array of token ids (generate's token_ids) as one
// prompt.
func (s *scan) tokenList(field string, i, depth int, t *tally) int {
	if at(s.b, i) != '[' {
		if t.err == nil && at(s.b, i) != 'n' {
			t.err = invalid(field, "must be an array of token ids")
		}
		return jsonscan.ValidValue(s.b, i, depth)
	}
	var ids walker
	ids.open(s.b, i, depth)
	for k := 0; ; k++ {
		_, v, ok := ids.next()
		if !ok {
			break
		}
		if c := at(s.b, v); c != '-' && !isDigit(c) && t.err == nil {
			t.err = invalid(fmt.Sprintf("%s[%d]", field, k), "must be a token id")
		}
		t.tokens++
		ids.after(jsonscan.ValidValue(s.b, v, ids.depth))
	}
	t.prompts++
	return ids.end()
}

// scoreInputs counts a scoring input: a string, an object (one
// multimodal input, by its JSON length), or an array of them, each one
// text of the batch.
func (s *scan) scoreInputs(field string, i, depth int, t *tally) int {
	b := s.b
	switch at(b, i) {
	case 'n':
		return jsonscan.ValidValue(b, i, depth)
	case '"', '{':
		return s.scoreInput(field, -1, i, depth, t)
	case '[':
	default:
		if t.err == nil {
			t.err = invalid(field, "must be a string, an object or an array of them")
		}
		return jsonscan.ValidValue(b, i, depth)
	}
	var list walker
	list.open(b, i, depth)
	for j := 0; ; j++ {
		_, v, ok := list.next()
		if !ok {
			return list.end()
		}
		list.after(s.scoreInput(field, j, v, list.depth, t))
	}
}

// scoreInput counts one text of a scoring input (element j of field, or
// the field itself when j < 0): a string by its bytes, an object (content
// parts, a multimodal document) by its JSON length.
func (s *scan) scoreInput(field string, j, i, depth int, t *tally) int {
	b := s.b
	switch at(b, i) {
	case '"':
		end, n := jsonscan.ValidStringLen(b, i)
		t.bytes += int64(n)
		t.prompts++
		return end
	case '{':
		end := jsonscan.ValidValue(b, i, depth)
		if end >= 0 {
			t.bytes += int64(end - i)
			t.nonText++
			t.prompts++
		}
		return end
	}
	if t.err == nil {
		t.err = invalid(where{list: field, i: j}.String(), "must be a string or an object")
	}
	return jsonscan.ValidValue(b, i, depth)
}
