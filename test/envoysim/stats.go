package envoysim

import "sync/atomic"

// Stats is a snapshot of a Proxy's counters since New. Each counter only grows.
type Stats struct {
	// Requests counts HTTP requests that reached ServeHTTP.
	Requests int64
	// Streams counts ext_proc streams opened (at most one per request).
	Streams int64
	// MessagesSent and MessagesReceived count ProcessingRequests sent and
	// ProcessingResponses received.
	MessagesSent     int64
	MessagesReceived int64
	// ImmediateResponses counts ImmediateResponse answers acted on.
	ImmediateResponses int64
	// LocalReplies counts responses envoysim generated itself instead of
	// forwarding the upstream's: ImmediateResponse, processor errors, 413, 503, 500.
	LocalReplies int64
	// SpuriousMessages counts answers of the wrong kind or with no oneof set.
	SpuriousMessages int64
	// Timeouts counts message timeouts.
	Timeouts int64
	// GRPCErrors counts streams that failed with a non-OK gRPC status
	// (including failure to open).
	GRPCErrors int64
	// StreamsClosedByProcessor counts streams the processor ended with OK
	// before envoysim was done with them.
	StreamsClosedByProcessor int64
	// FailOpen counts failures that FailureModeAllow let through unmodified.
	FailOpen int64
	// RejectedMutations counts header mutations ignored by the mutation rules.
	RejectedMutations int64
	// UpstreamRequests counts requests sent to the upstream.
	UpstreamRequests int64
	// UpstreamFailures counts upstream requests that failed before or during
	// the response.
	UpstreamFailures int64
	// ClientAborts counts requests whose client went away before the end.
	ClientAborts int64
	// ResetResponses counts responses cut off after their headers had been
	// sent to the client (the client sees a truncated body).
	ResetResponses int64
	// EndedEarly counts FULL_DUPLEX_STREAMED responses the processor ended
	// (streamed_response end_of_stream) before the upstream's body ended;
	// their upstream request was cancelled.
	EndedEarly int64
}

// counters holds the live values behind Stats.
type counters struct {
	requests, streams, sent, received, immediate, local, spurious, timeouts,
	grpcErrors, closedByProc, failOpen, rejected, upstream, upstreamFail,
	clientAborts, resets, endedEarly atomic.Int64
}

func (c *counters) snapshot() Stats {
	return Stats{
		Requests:                 c.requests.Load(),
		Streams:                  c.streams.Load(),
		MessagesSent:             c.sent.Load(),
		MessagesReceived:         c.received.Load(),
		ImmediateResponses:       c.immediate.Load(),
		LocalReplies:             c.local.Load(),
		SpuriousMessages:         c.spurious.Load(),
		Timeouts:                 c.timeouts.Load(),
		GRPCErrors:               c.grpcErrors.Load(),
		StreamsClosedByProcessor: c.closedByProc.Load(),
		FailOpen:                 c.failOpen.Load(),
		RejectedMutations:        c.rejected.Load(),
		UpstreamRequests:         c.upstream.Load(),
		UpstreamFailures:         c.upstreamFail.Load(),
		ClientAborts:             c.clientAborts.Load(),
		ResetResponses:           c.resets.Load(),
		EndedEarly:               c.endedEarly.Load(),
	}
}
