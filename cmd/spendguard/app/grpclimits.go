package app

import (
	"fmt"
	"math"
	"strings"

	"go.uber.org/zap"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// The largest ext_proc message spendguard accepts is tied to the largest
// request body Envoy buffers for it (docs/deployment.md, "The two limits
// move together"): in BUFFERED mode the whole body arrives as one
// request_body message, so a receive limit below Envoy's buffer limit turns
// a request Envoy accepted into a gRPC RESOURCE_EXHAUSTED and the client
// into a 500. envoy/limits_test.go reads every Envoy bootstrap shipped
// with spendguard and fails when its buffer limit plus GRPCHeadroom
// exceeds DefaultGRPCMaxMessageBytes.
const (
	// EnvoyBufferLimit is per_connection_buffer_limit_bytes of the
	// shipped envoy/envoy.yaml (8 MiB): the largest request body Envoy
	// buffers before it answers 413 itself.
	EnvoyBufferLimit = 8 << 20
	// GRPCHeadroom is what an ext_proc message may carry beside the body:
	// protobuf framing, the forwarded metadata (JWT claims, which came in
	// a header) and attributes, and, for a request_headers message, the
	// headers themselves (Envoy's max_request_headers_kb, 60 KiB by
	// default, counted twice for names, values and framing, stays far
	// below it).
	GRPCHeadroom = 1 << 20
	// DefaultGRPCMaxMessageBytes is the default of --grpc-max-message-bytes:
	// Envoy's buffer limit plus the headroom (9 MiB).
	DefaultGRPCMaxMessageBytes = EnvoyBufferLimit + GRPCHeadroom
	// minGRPCMaxMessageBytes guards against a unit mistake ("9" meant as
	// MiB): below 64 KiB even a large header block no longer fits.
	minGRPCMaxMessageBytes = 64 << 10
)

// checkGRPCMaxMessageBytes says what is wrong with a --grpc-max-message-bytes value.
func checkGRPCMaxMessageBytes(n int) error {
	if n < minGRPCMaxMessageBytes || n > math.MaxInt32 {
		return fmt.Errorf("--grpc-max-message-bytes: %d is not between %d (64 KiB) and %d; it must be at least Envoy's per_connection_buffer_limit_bytes plus %d bytes of headroom",
			n, minGRPCMaxMessageBytes, math.MaxInt32, GRPCHeadroom)
	}
	return nil
}

// grpcServerOptions are the ext_proc server's message limits and the
// interceptor that explains an over-limit message.
//
// Receiving is bounded by maxRecv. Sending is not bounded (gRPC-Go's own
// default, stated here on purpose): an answer can be larger than the
// message it answers (a rewritten model, an injected stream_options), and
// it is spendguard's own output. Envoy's gRPC client does not bound what it
// receives unless envoy_grpc.max_receive_message_length is set, which
// envoy/limits_test.go forbids below DefaultGRPCMaxMessageBytes.
func grpcServerOptions(maxRecv int, log *zap.Logger) []grpc.ServerOption {
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(maxRecv),
		grpc.MaxSendMsgSize(math.MaxInt32),
		grpc.ChainStreamInterceptor(oversizeLogger(maxRecv, log)),
	}
}

// oversizeLogger logs, once per stream that ends with it, the
// RESOURCE_EXHAUSTED gRPC-Go reports for a message over the receive limit:
// without it the only trace is Envoy's 500 (status_on_error) to the client.
// It looks at the error the stream ends with, so it costs nothing per
// message. gRPC-Go words that error "received message larger than max"
// (test/e2e's TestMessageOverSpendguardLimit notices if that changes);
// other RESOURCE_EXHAUSTED errors are not this one.
func oversizeLogger(maxRecv int, log *zap.Logger) grpc.StreamServerInterceptor {
	return func(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
		err := handler(srv, ss)
		if st, ok := status.FromError(err); ok && st.Code() == codes.ResourceExhausted && strings.Contains(st.Message(), "larger than max") {
			log.Error("an ext_proc message was larger than --grpc-max-message-bytes: Envoy answered the client with its status_on_error (500); "+
				"raise --grpc-max-message-bytes to Envoy's per_connection_buffer_limit_bytes plus 1 MiB (docs/deployment.md)",
				zap.Int("grpc_max_message_bytes", maxRecv), zap.String("method", info.FullMethod), zap.Error(err))
		}
		return err
	}
}
