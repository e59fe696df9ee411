package envoysim

import (
	"errors"
	"fmt"
	"net/url"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	extprocfilterv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
)

// Config describes one simulated Envoy listener: the ext_proc filter settings
// and the single upstream cluster the router forwards to.
type Config struct {
	// ProcessorAddr is the gRPC target of the ext_proc server (plaintext).
	ProcessorAddr string
	// Upstream is the base URL of the HTTP upstream, e.g. "http://127.0.0.1:8000".
	// A path in it is prefixed to every request path.
	Upstream string
	// ProcessingMode is the filter's processing_mode; nil means spendguard's
	// mode (see SpendguardMode).
	ProcessingMode *extprocfilterv3.ProcessingMode
	// AllowModeOverride honours mode_override in headers answers.
	// DefaultConfig sets it to true, as spendguard's envoy.yaml does. As in
	// Envoy, it has no effect when a configured body mode is
	// FULL_DUPLEX_STREAMED: every mode_override is then ignored.
	AllowModeOverride bool
	// MessageTimeout bounds the wait for each answer; 0 means 200ms (Envoy's default).
	MessageTimeout time.Duration
	// StatusOnError is the local reply status for gRPC errors and spurious
	// answers; 0 means 500.
	StatusOnError int
	// FailureModeAllow lets a request continue unmodified when the processor
	// fails (gRPC error, timeout, spurious answer).
	FailureModeAllow bool
	// BufferLimit is per_connection_buffer_limit_bytes; 0 means 1 MiB.
	BufferLimit int
	// LocalReply is the connection manager's local_reply_config, applied
	// to every reply envoysim makes itself (see localreply.go for the part
	// of the API it reproduces; New refuses the rest). nil: none.
	LocalReply *hcmv3.LocalReplyConfig
	// ResponseChunker, when set, makes response bodies deterministic for tests:
	// the whole upstream body is read first and the pieces it returns become the
	// data callbacks, in order, each sent to the processor as it would be by
	// Envoy. The last piece carries end_of_stream; return an empty last piece to
	// get a separate empty end_of_stream message; returning no pieces sends one
	// empty end_of_stream message. Pieces are never coalesced. When nil, each
	// upstream Read is one data callback and data that arrived while the headers
	// answer was awaited is coalesced, as Envoy does.
	ResponseChunker func(body []byte) [][]byte
	// MetadataContext is attached to every ProcessingRequest (this is how Envoy
	// forwards jwt_authn's payload via forwarding_namespaces).
	MetadataContext *corev3.Metadata
	// RouteName, when set, is sent as
	// attributes["envoy.filters.http.ext_proc"]["xds.route_name"] on the first
	// request-direction message.
	RouteName string
	// CloseGrace bounds how long a half-closed stream is left for the
	// processor to read io.EOF before it is reset; 0 means 50ms. The reset
	// comes earlier when the processor ends the stream itself.
	CloseGrace time.Duration
	// Logf, when set, receives debug logs.
	Logf func(format string, args ...any)
}

// Defaults applied by New for zero Config fields.
const (
	DefaultMessageTimeout = 200 * time.Millisecond
	DefaultStatusOnError  = 500
	DefaultBufferLimit    = 1 << 20
	DefaultCloseGrace     = 50 * time.Millisecond
)

// SpendguardMode returns a fresh copy of spendguard's processing mode, as
// envoy/envoy.yaml sets it: request headers SEND, request body BUFFERED,
// response headers SEND, response body FULL_DUPLEX_STREAMED, request
// trailers SKIP, response trailers SEND (which Envoy requires with
// FULL_DUPLEX_STREAMED).
func SpendguardMode() *extprocfilterv3.ProcessingMode {
	return &extprocfilterv3.ProcessingMode{
		RequestHeaderMode:   extprocfilterv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocfilterv3.ProcessingMode_BUFFERED,
		ResponseHeaderMode:  extprocfilterv3.ProcessingMode_SEND,
		ResponseBodyMode:    extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED,
		RequestTrailerMode:  extprocfilterv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocfilterv3.ProcessingMode_SEND,
	}
}

// StreamedMode returns a fresh copy of spendguard's former processing mode:
// SpendguardMode with a STREAMED response body and response trailers SKIP.
func StreamedMode() *extprocfilterv3.ProcessingMode {
	m := SpendguardMode()
	m.ResponseBodyMode = extprocfilterv3.ProcessingMode_STREAMED
	m.ResponseTrailerMode = extprocfilterv3.ProcessingMode_SKIP
	return m
}

// DefaultConfig returns the configuration spendguard's envoy.yaml describes:
// spendguard's processing mode with allow_mode_override, and Envoy's defaults
// for everything else.
func DefaultConfig(processorAddr, upstream string) Config {
	return Config{
		ProcessorAddr:     processorAddr,
		Upstream:          upstream,
		AllowModeOverride: true,
	}
}

// modes is the part of a ProcessingMode envoysim acts on. It changes during a
// stream when the processor sends mode_override.
type modes struct {
	reqHeaders  bool
	respHeaders bool
	reqBody     extprocfilterv3.ProcessingMode_BodySendMode
	respBody    extprocfilterv3.ProcessingMode_BodySendMode
	// respTrailers is response_trailer_mode SEND (only with a
	// FULL_DUPLEX_STREAMED response body).
	respTrailers bool
}

// modesOf applies Envoy's defaults: headers are sent unless SKIP.
func modesOf(m *extprocfilterv3.ProcessingMode) modes {
	return modes{
		reqHeaders:   m.GetRequestHeaderMode() != extprocfilterv3.ProcessingMode_SKIP,
		respHeaders:  m.GetResponseHeaderMode() != extprocfilterv3.ProcessingMode_SKIP,
		reqBody:      m.GetRequestBodyMode(),
		respBody:     m.GetResponseBodyMode(),
		respTrailers: m.GetResponseTrailerMode() == extprocfilterv3.ProcessingMode_SEND,
	}
}

// supportedBodyMode reports whether envoysim reproduces a body mode in both
// directions and as a mode_override (FULL_DUPLEX_STREAMED is reproduced only
// as the configured response body mode).
func supportedBodyMode(m extprocfilterv3.ProcessingMode_BodySendMode) bool {
	switch m {
	case extprocfilterv3.ProcessingMode_NONE, extprocfilterv3.ProcessingMode_STREAMED,
		extprocfilterv3.ProcessingMode_BUFFERED, extprocfilterv3.ProcessingMode_BUFFERED_PARTIAL:
		return true
	}
	return false
}

// settings is a validated Config with every default applied.
type settings struct {
	Config
	upstream   *url.URL
	mode       modes
	localReply *localReplyRules
	// overrides is whether mode_override is honoured: AllowModeOverride,
	// and no configured body mode is FULL_DUPLEX_STREAMED.
	overrides bool
}

// resolve validates c and applies defaults; it reports every problem at once.
func (c Config) resolve() (settings, error) {
	var errs []error
	s := settings{Config: c}
	if c.ProcessorAddr == "" {
		errs = append(errs, errors.New("envoysim: ProcessorAddr is empty"))
	}
	u, err := url.Parse(c.Upstream)
	switch {
	case err != nil:
		errs = append(errs, fmt.Errorf("envoysim: Upstream: %w", err))
	case u.Scheme != "http" && u.Scheme != "https", u.Host == "":
		errs = append(errs, fmt.Errorf("envoysim: Upstream %q is not an http(s) base URL", c.Upstream))
	default:
		s.upstream = u
	}
	pm := c.ProcessingMode
	if pm == nil {
		pm = SpendguardMode()
	}
	if b := pm.GetRequestBodyMode(); !supportedBodyMode(b) {
		errs = append(errs, fmt.Errorf("envoysim: request body mode %s is not supported by envoysim", b))
	}
	duplex := pm.GetResponseBodyMode() == extprocfilterv3.ProcessingMode_FULL_DUPLEX_STREAMED
	if b := pm.GetResponseBodyMode(); !duplex && !supportedBodyMode(b) {
		errs = append(errs, fmt.Errorf("envoysim: response body mode %s is not supported by envoysim", b))
	}
	if pm.GetRequestTrailerMode() == extprocfilterv3.ProcessingMode_SEND {
		errs = append(errs, errors.New("envoysim: request trailer mode SEND is not supported by envoysim"))
	}
	respTrailers := pm.GetResponseTrailerMode() == extprocfilterv3.ProcessingMode_SEND
	switch {
	case duplex && !respTrailers:
		// Envoy refuses this configuration when it loads it.
		errs = append(errs, errors.New("envoysim: response_body_mode FULL_DUPLEX_STREAMED needs response_trailer_mode SEND"))
	case respTrailers && !duplex:
		errs = append(errs, errors.New("envoysim: response trailer mode SEND is supported only with response_body_mode FULL_DUPLEX_STREAMED"))
	}
	s.mode = modesOf(pm)
	s.overrides = c.AllowModeOverride && !duplex
	if s.localReply, err = compileLocalReply(c.LocalReply); err != nil {
		errs = append(errs, err)
	}
	if c.MessageTimeout < 0 || c.CloseGrace < 0 || c.BufferLimit < 0 {
		errs = append(errs, errors.New("envoysim: MessageTimeout, CloseGrace and BufferLimit must not be negative"))
	}
	if c.StatusOnError != 0 && (c.StatusOnError < 200 || c.StatusOnError > 599) {
		errs = append(errs, fmt.Errorf("envoysim: StatusOnError %d is not a 2xx-5xx status", c.StatusOnError))
	}
	if s.MessageTimeout == 0 {
		s.MessageTimeout = DefaultMessageTimeout
	}
	if s.StatusOnError == 0 {
		s.StatusOnError = DefaultStatusOnError
	}
	if s.BufferLimit == 0 {
		s.BufferLimit = DefaultBufferLimit
	}
	if s.CloseGrace == 0 {
		s.CloseGrace = DefaultCloseGrace
	}
	if s.Logf == nil {
		s.Logf = func(string, ...any) {}
	}
	return s, errors.Join(errs...)
}
