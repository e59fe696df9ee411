package pricing

import "github.com/spendguard/spendguard/internal/jsonscan"

// Span is the byte range [Start, End) of a JSON value in a request body.
// The zero Span stands for a member the body does not have (a value is
// never empty, and never starts at 0 inside an object).
type Span struct{ Start, End int }

// Found reports whether the span is that of a value in the body.
func (s Span) Found() bool { return s.End > 0 }

// Layout is where ParseBody found the members that the steps after
// pricing rewrite, as offsets into the body it read. Of duplicate keys the
// last one counts, as for Request.
type Layout struct {
	// Model is the value of "model" (always found after a successful
	// parse).
	Model Span
	// StreamOptions is the value of "stream_options", whatever its type.
	StreamOptions Span
	// IncludeUsage is the value of stream_options.include_usage, found
	// only when stream_options is an object on an endpoint that streams
	// (chat, completions, responses).
	IncludeUsage Span
	// SamplingParams is the value of "sampling_params", whatever its type
	// (read as an object or null on /inference/v1/generate only).
	SamplingParams Span
	// limits are the values of the members that state an output limit
	// (OutputLimit), as offsets of 4 bytes: the Layout lives in every
	// request in flight.
	limits [nLimitMembers]fieldSpan
	// StreamOptionsMembers counts the members of that object.
	StreamOptionsMembers int
	// Members counts the top-level members, duplicates included.
	Members int
	// End is the offset of the top-level object's closing brace.
	End int
}

// LimitMember is a member in which a request states its output limit.
type LimitMember int

// The members that state an output limit.
const (
	// LimitMaxTokens is the top-level max_tokens.
	LimitMaxTokens LimitMember = iota
	// LimitMaxCompletionTokens is the top-level max_completion_tokens.
	LimitMaxCompletionTokens
	// LimitMaxOutputTokens is the top-level max_output_tokens.
	LimitMaxOutputTokens
	// LimitSamplingMaxTokens is sampling_params.max_tokens, found only on
	// /inference/v1/generate when sampling_params is an object.
	LimitSamplingMaxTokens
	nLimitMembers
)

// OutputLimit is the value of member m, whatever its type (the last of
// duplicate keys); the zero Span when the body does not have it. Where a
// stated output limit is (see Request.OutputLimitStated).
func (l *Layout) OutputLimit(m LimitMember) Span {
	if m < 0 || m >= nLimitMembers {
		return Span{}
	}
	s := l.limits[m]
	return Span{int(s.start), int(s.end)}
}

// setLimit records body[start:end] as the value of member m.
func (l *Layout) setLimit(m LimitMember, start, end int) {
	l.limits[m] = fieldSpan{uint32(start), uint32(end)}
}

// inlineOther is how many top-level members that ParseRequest does not
// read a Body keeps without allocating.
const inlineOther = 8

// Body is a request body read once by ParseBody: what it asks (Request),
// where the members that later steps rewrite are (Layout), and its
// top-level fields (Field). Nothing after ParseBody reads the body again
// to find a member. A Body refers to the body it was parsed from, which
// must not change while the Body is used.
type Body struct {
	Request Request
	Layout  Layout

	// fields are the values of the members ParseRequest reads; other
	// (then more) those of every other top-level member, in order.
	fields fields
	other  [inlineOther]jsonscan.Member
	nOther int
	more   []jsonscan.Member
}

// ParseBody is ParseRequestInto into b.Request that also fills b's Layout
// and fields from the same pass; it overwrites b, and after an error b
// holds nothing useful. It allocates only for a body with more than eight
// top-level members that ParseRequest does not read.
func ParseBody(b *Body, e Endpoint, body []byte) error {
	b.Layout, b.nOther, b.more = Layout{}, 0, b.more[:0]
	return parse(&b.Request, b, e, body)
}

// Field returns the top-level string field name of the body, "" when it is
// absent or not a string (the last of duplicate keys counts, and keys are
// compared decoded): what identity's body_field sources read.
func (b *Body) Field(name string) string {
	var raw []byte
	if k := fieldNamed(name); k != noField {
		raw = b.fields.get(k)
	} else {
		raw = b.otherValue(name)
	}
	s, _ := jsonscan.String(raw)
	return s
}

// member records the top-level member key whose value (field k) is
// body[start:end].
func (b *Body) member(k field, key []byte, body []byte, start, end int) {
	b.Layout.Members++
	switch k {
	case fModel:
		b.Layout.Model = Span{start, end}
	case fStreamOptions:
		b.Layout.StreamOptions = Span{start, end}
	case fSamplingParams:
		b.Layout.SamplingParams = Span{start, end}
	case fMaxTokens:
		b.Layout.setLimit(LimitMaxTokens, start, end)
	case fMaxCompletionTokens:
		b.Layout.setLimit(LimitMaxCompletionTokens, start, end)
	case fMaxOutputTokens:
		b.Layout.setLimit(LimitMaxOutputTokens, start, end)
	case noField:
		if b.nOther < inlineOther {
			m := &b.other[b.nOther]
			m.Key, m.Value = key, body[start:end]
			b.nOther++
			return
		}
		if b.more == nil {
			b.more = make([]jsonscan.Member, 0, 4*inlineOther)
		}
		b.more = append(b.more, jsonscan.Member{Key: key, Value: body[start:end]})
	}
}

// streamOptions records the members of the stream_options object opts
// (read from the value at Layout.StreamOptions).
func (b *Body) streamOptions(opts jsonscan.Object) {
	b.Layout.StreamOptionsMembers = len(opts)
	if m, ok := opts.Lookup("include_usage"); ok {
		start := b.Layout.StreamOptions.Start + m.Offset
		b.Layout.IncludeUsage = Span{start, start + len(m.Value)}
	}
}

// samplingParams records where max_tokens is in the sampling_params
// object sp (read from the value at Layout.SamplingParams).
func (b *Body) samplingParams(sp jsonscan.Object) {
	if m, ok := sp.Lookup("max_tokens"); ok {
		start := b.Layout.SamplingParams.Start + m.Offset
		b.Layout.setLimit(LimitSamplingMaxTokens, start, start+len(m.Value))
	}
}

// otherValue is the value of the last member named name among those
// ParseRequest does not read, nil when none.
func (b *Body) otherValue(name string) []byte {
	for i := len(b.more) - 1; i >= 0; i-- {
		if jsonscan.KeyIs(b.more[i].Key, name) {
			return b.more[i].Value
		}
	}
	for i := b.nOther - 1; i >= 0; i-- {
		if jsonscan.KeyIs(b.other[i].Key, name) {
			return b.other[i].Value
		}
	}
	return nil
}

// fieldNamed is the field called name, noField when none.
func fieldNamed(name string) field {
	for k, n := range fieldNames {
		if n == name {
			return field(k)
		}
	}
	return noField
}

// Forget drops what b holds of the body it was parsed from (the member
// values Field reads), keeping Request and Layout, so that a request in
// flight does not keep its whole body alive once the body phase is over.
// Field answers "" after it.
func (b *Body) Forget() {
	b.fields = fields{}
	clear(b.other[:])
	clear(b.more)
	b.nOther, b.more = 0, b.more[:0]
}
