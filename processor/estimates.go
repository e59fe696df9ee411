package processor

// OutputEstimates is the learned output of completed responses: how many
// completion tokens a model has really produced on an endpoint recently
// (limits.streams.estimate). A streamed response can reserve Estimate
// (bounded by its own output limit) instead of its whole limit and grow
// from there.
//
// Estimate returns the estimate for model on endpoint (the endpoint as
// pricing.Endpoint.String names it); ok is false until enough samples
// exist, and the caller then uses pricing.default_max_output_tokens.
// Observe records the completion tokens of a completed response whose
// usage the upstream reported; cut or aborted responses must not be
// observed, or the estimate would learn the cut. Both are called on the
// request path: they must be cheap, never wait for I/O, and be safe for
// concurrent use.
type OutputEstimates interface {
	Estimate(model, endpoint string) (tokens int64, ok bool)
	Observe(model, endpoint string, completion int64)
}
