package loadgen

import (
	"errors"
	"io"

	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// Noop is the floor every ext_proc processor pays: it answers CONTINUE, of
// the kind Envoy awaits, to every message, and reads nothing.
type Noop struct {
	extprocv3.UnimplementedExternalProcessorServer
}

// The answers are immutable and shared by every stream: gRPC marshals an
// answer before Send returns.
var (
	continueRequestHeaders   = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestHeaders{RequestHeaders: &extprocv3.HeadersResponse{}}}
	continueRequestBody      = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestBody{RequestBody: &extprocv3.BodyResponse{}}}
	continueResponseHeaders  = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseHeaders{ResponseHeaders: &extprocv3.HeadersResponse{}}}
	continueResponseBody     = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{}}}
	continueRequestTrailers  = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_RequestTrailers{RequestTrailers: &extprocv3.TrailersResponse{}}}
	continueResponseTrailers = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseTrailers{ResponseTrailers: &extprocv3.TrailersResponse{}}}
)

// Process answers every message of the stream until Envoy closes it.
func (Noop) Process(stream extprocv3.ExternalProcessor_ProcessServer) error {
	duplex := false
	for {
		req, err := stream.Recv()
		if errors.Is(err, io.EOF) || status.Code(err) == codes.Canceled {
			return nil
		}
		if err != nil {
			return err
		}
		if pc := req.GetProtocolConfig(); pc != nil {
			duplex = pc.GetResponseBodyMode() == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
		}
		var resp *extprocv3.ProcessingResponse
		switch req.GetRequest().(type) {
		case *extprocv3.ProcessingRequest_RequestHeaders:
			resp = continueRequestHeaders
		case *extprocv3.ProcessingRequest_RequestBody:
			resp = continueRequestBody
		case *extprocv3.ProcessingRequest_ResponseHeaders:
			resp = continueResponseHeaders
		case *extprocv3.ProcessingRequest_ResponseBody:
			resp = continueResponseBody
			if duplex {
				// FULL_DUPLEX_STREAMED: Envoy forwards only what the
				// answer carries, so the floor echoes every chunk.
				b := req.GetResponseBody()
				resp = &extprocv3.ProcessingResponse{Response: &extprocv3.ProcessingResponse_ResponseBody{ResponseBody: &extprocv3.BodyResponse{
					Response: &extprocv3.CommonResponse{BodyMutation: &extprocv3.BodyMutation{Mutation: &extprocv3.BodyMutation_StreamedResponse{
						StreamedResponse: &extprocv3.StreamedBodyResponse{Body: b.GetBody(), EndOfStream: b.GetEndOfStream()}}}}}}}
			}
		case *extprocv3.ProcessingRequest_RequestTrailers:
			resp = continueRequestTrailers
		case *extprocv3.ProcessingRequest_ResponseTrailers:
			resp = continueResponseTrailers
		default:
			return status.Error(codes.InvalidArgument, "noop: unexpected ext_proc message")
		}
		if err := stream.Send(resp); err != nil {
			return err
		}
	}
}
