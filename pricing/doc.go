// Package pricing turns tokens into money and requests into worst-case token
// counts.
//
// The `pricing:` section of the configuration file is decoded into a Config
// and compiled into an immutable Table, which answers what a model costs
// (Table.Lookup) in integer nano-USD per million tokens. Price.Cost prices a
// Usage exactly, rounding each component up once, so spendguard never
// charges less than the true cost and never uses floating point for money.
//
// Table.Route decides from a request's method and path whether it costs
// money and as which kind (Endpoint), is free, or is refused (a POST to a
// path nobody priced). Before a request reaches the model server,
// ParseRequest reads the buffered body of an endpoint that costs money
// (ParseForm the multipart body of the audio endpoints) and
// Request.WorstCase bounds the tokens it can use, so that its cost can be
// reserved against budgets up front. The bound rests on one fact and a few
// assumptions: a token covers at least one byte of text, so the UTF-8 bytes
// of the prompt bound its prompt tokens; the fixed text a chat template adds
// is assumed to fit in a few tokens per message; and the output is bounded by
// the request's max_tokens (or the configured default) times the number of
// sequences generated.
//
// ParseBody is that parse for the processor, which reads the body once:
// besides the Request, the same pass records every top-level field
// (Body.Field, for identity's body_field sources) and where the members a
// rewrite changes are (Layout: the model, stream_options, include_usage,
// the members that state an output limit, the closing brace).
package pricing
