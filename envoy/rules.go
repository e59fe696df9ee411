package envoy

import (
	"fmt"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"google.golang.org/protobuf/proto"
)

// routerType is the typed_config type of envoy.filters.http.router.
var routerType = proto.MessageName(&routerv3.Router{})

// clusterRef is a place that names a cluster Envoy must know.
type clusterRef struct {
	path, name string
}

// checker applies, to the messages reached by the walk, the rules Envoy only
// enforces when it loads a config, and spendguard's ext_proc requirements.
type checker struct {
	// cdsDynamic: clusters may come from CDS, so references to clusters not
	// in static_resources cannot be judged offline.
	cdsDynamic bool
	clusters   map[string]string // name -> path of its definition
	refs       []clusterRef
	extProcs   int
	errs       []error
}

func newChecker(b *bootstrapv3.Bootstrap) *checker {
	return &checker{
		cdsDynamic: b.GetDynamicResources().GetCdsConfig() != nil ||
			b.GetDynamicResources().GetCdsResourcesLocator() != "",
		clusters: map[string]string{},
	}
}

func (c *checker) fail(path string, class error, format string, args ...any) {
	c.errs = append(c.errs, fmt.Errorf("%s: %w: %s", displayPath(path), class, fmt.Sprintf(format, args...)))
}

func (c *checker) ref(path, name string) {
	if name != "" {
		c.refs = append(c.refs, clusterRef{path: path, name: name})
	}
}

// visit dispatches on the message types the rules are about.
func (c *checker) visit(path string, m proto.Message) {
	switch m := m.(type) {
	case *clusterv3.Cluster:
		if prev, ok := c.clusters[m.GetName()]; ok {
			c.fail(path, ErrCluster, "%q is already defined at %s", m.GetName(), prev)
			return
		}
		c.clusters[m.GetName()] = path
	case *routev3.RouteAction:
		c.ref(joinPath(path, "cluster"), m.GetCluster())
		for i, wc := range m.GetWeightedClusters().GetClusters() {
			c.ref(fmt.Sprintf("%s.weighted_clusters.clusters[%d].name", path, i), wc.GetName())
		}
		for i, mp := range m.GetRequestMirrorPolicies() {
			c.ref(fmt.Sprintf("%s.request_mirror_policies[%d].cluster", path, i), mp.GetCluster())
		}
	case *corev3.GrpcService_EnvoyGrpc:
		c.ref(joinPath(path, "cluster_name"), m.GetClusterName())
	case *corev3.HttpUri:
		c.ref(joinPath(path, "cluster"), m.GetCluster())
	case *hcmv3.HttpConnectionManager:
		c.filterChain(path, m.GetHttpFilters())
	case *extprocv3.ExternalProcessor:
		c.extProcs++
		c.extProcessor(path, m)
	case *extprocv3.ExtProcPerRoute:
		c.extProcPerRoute(path, m)
	}
}

// finish runs the rules that need the whole bootstrap and returns every
// problem found.
func (c *checker) finish() []error {
	if !c.cdsDynamic {
		for _, r := range c.refs {
			if _, ok := c.clusters[r.name]; !ok {
				c.fail(r.path, ErrCluster, "%q is not defined", r.name)
			}
		}
	}
	if c.extProcs == 0 {
		c.fail("", ErrSpendguard, "no envoy.filters.http.ext_proc filter: requests would not be metered")
	}
	return c.errs
}

// filterChain checks that the router is the last HTTP filter, and the only
// one: Envoy refuses a chain whose terminal filter is not last.
func (c *checker) filterChain(path string, filters []*hcmv3.HttpFilter) {
	path = joinPath(path, "http_filters")
	if len(filters) == 0 {
		c.fail(path, ErrFilterChain, "empty: %s must be the last filter", routerType)
		return
	}
	routers := 0
	for i, f := range filters {
		if !isRouter(f) {
			continue
		}
		routers++
		if i != len(filters)-1 {
			c.fail(fmt.Sprintf("%s[%d]", path, i), ErrFilterChain,
				"router %q is followed by %d filter(s); the router must be last", f.GetName(), len(filters)-1-i)
		}
	}
	if routers == 0 {
		c.fail(path, ErrFilterChain, "no router: %s must be the last filter", routerType)
	}
}

func isRouter(f *hcmv3.HttpFilter) bool {
	if tc := f.GetTypedConfig(); tc != nil {
		return tc.MessageName() == routerType
	}
	return f.GetName() == "envoy.filters.http.router"
}

// extProcessor checks one ext_proc filter config: Envoy's consistency rules
// first, then what spendguard needs.
func (c *checker) extProcessor(path string, p *extprocv3.ExternalProcessor) {
	hasGRPC, hasHTTP := p.GetGrpcService() != nil, p.GetHttpService() != nil
	if hasGRPC == hasHTTP {
		c.fail(path, ErrExtProc, "exactly one of grpc_service and http_service must be set")
	}
	mode := EffectiveProcessingMode(p.GetProcessingMode())
	c.modeConsistency(joinPath(path, "processing_mode"), mode)
	if hasHTTP && sendsBodyOrTrailers(mode) {
		c.fail(joinPath(path, "processing_mode"), ErrExtProc,
			"http_service can only send headers, not bodies or trailers")
	}
	for i, o := range p.GetAllowedOverrideModes() {
		c.modeConsistency(fmt.Sprintf("%s.allowed_override_modes[%d]", path, i), overlay(mode, o))
	}

	if !hasGRPC {
		c.fail(path, ErrSpendguard, "grpc_service must be set: spendguard is a gRPC processor that reads bodies")
	}
	c.spendguardMode(joinPath(path, "processing_mode"), mode)
	if !p.GetAllowModeOverride() {
		c.fail(joinPath(path, "allow_mode_override"), ErrSpendguard,
			"must be true: spendguard turns body processing off on paths that cost nothing")
	}
	if p.GetFailureModeAllow() {
		c.fail(joinPath(path, "failure_mode_allow"), ErrSpendguard,
			"must be false: if spendguard fails, requests must fail instead of going unmetered")
	}
	if p.GetObservabilityMode() {
		c.fail(joinPath(path, "observability_mode"), ErrSpendguard,
			"must be false: Envoy would ignore spendguard's answers")
	}
	if p.GetDisableImmediateResponse() {
		c.fail(joinPath(path, "disable_immediate_response"), ErrSpendguard,
			"must be false: spendguard rejects over-budget requests with an immediate 402")
	}
}

// extProcPerRoute checks a per-route ext_proc override.
func (c *checker) extProcPerRoute(path string, r *extprocv3.ExtProcPerRoute) {
	o := r.GetOverrides()
	if pm := o.GetProcessingMode(); pm != nil {
		c.modeConsistency(joinPath(path, "overrides.processing_mode"), EffectiveProcessingMode(pm))
	}
	if o.GetFailureModeAllow().GetValue() {
		c.fail(joinPath(path, "overrides.failure_mode_allow"), ErrSpendguard,
			"must not be true: if spendguard fails, requests must fail instead of going unmetered")
	}
}

// modeConsistency applies Envoy's rules on a processing mode, whatever the
// processor: FULL_DUPLEX_STREAMED needs the trailers of the same direction
// sent, since the processor learns from them (or end_of_stream) that the body
// is complete.
func (c *checker) modeConsistency(path string, m *extprocv3.ProcessingMode) {
	const fullDuplex = extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
	if m.GetRequestBodyMode() == fullDuplex && m.GetRequestTrailerMode() != extprocv3.ProcessingMode_SEND {
		c.fail(path, ErrExtProc, "request_body_mode FULL_DUPLEX_STREAMED needs request_trailer_mode SEND, not %s",
			m.GetRequestTrailerMode())
	}
	if m.GetResponseBodyMode() == fullDuplex && m.GetResponseTrailerMode() != extprocv3.ProcessingMode_SEND {
		c.fail(path, ErrExtProc, "response_body_mode FULL_DUPLEX_STREAMED needs response_trailer_mode SEND, not %s",
			m.GetResponseTrailerMode())
	}
}

// spendguardMode reports every field of m that differs from
// RequiredProcessingMode.
func (c *checker) spendguardMode(path string, m *extprocv3.ProcessingMode) {
	want := RequiredProcessingMode()
	type field struct {
		name      string
		got, want fmt.Stringer
	}
	for _, f := range []field{
		{"request_header_mode", m.GetRequestHeaderMode(), want.GetRequestHeaderMode()},
		{"request_body_mode", m.GetRequestBodyMode(), want.GetRequestBodyMode()},
		{"response_header_mode", m.GetResponseHeaderMode(), want.GetResponseHeaderMode()},
		{"response_body_mode", m.GetResponseBodyMode(), want.GetResponseBodyMode()},
		{"request_trailer_mode", m.GetRequestTrailerMode(), want.GetRequestTrailerMode()},
		{"response_trailer_mode", m.GetResponseTrailerMode(), want.GetResponseTrailerMode()},
	} {
		if f.got.String() != f.want.String() {
			c.fail(joinPath(path, f.name), ErrSpendguard, "is %s, spendguard needs %s", f.got, f.want)
		}
	}
}

// RequiredProcessingMode returns the ext_proc processing mode spendguard is
// written for (the spec, "Envoy processing mode"), with every field explicit.
// Each call returns a new message the caller may modify.
func RequiredProcessingMode() *extprocv3.ProcessingMode {
	return &extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
		ResponseBodyMode:    extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocv3.ProcessingMode_SEND,
	}
}

// EffectiveProcessingMode returns the mode Envoy applies for a filter's
// processing_mode m (nil allowed): DEFAULT header modes become SEND, DEFAULT
// trailer modes SKIP; body modes default to NONE already. m is not modified.
func EffectiveProcessingMode(m *extprocv3.ProcessingMode) *extprocv3.ProcessingMode {
	out := &extprocv3.ProcessingMode{}
	if m != nil {
		out = proto.Clone(m).(*extprocv3.ProcessingMode)
	}
	orDefault := func(v *extprocv3.ProcessingMode_HeaderSendMode, def extprocv3.ProcessingMode_HeaderSendMode) {
		if *v == extprocv3.ProcessingMode_DEFAULT {
			*v = def
		}
	}
	orDefault(&out.RequestHeaderMode, extprocv3.ProcessingMode_SEND)
	orDefault(&out.ResponseHeaderMode, extprocv3.ProcessingMode_SEND)
	orDefault(&out.RequestTrailerMode, extprocv3.ProcessingMode_SKIP)
	orDefault(&out.ResponseTrailerMode, extprocv3.ProcessingMode_SKIP)
	return out
}

// overlay applies an allowed_override_modes entry to the filter's effective
// mode: there, a DEFAULT header or trailer mode means "unchanged". Body modes
// have no "unchanged" value and replace the base.
func overlay(base, o *extprocv3.ProcessingMode) *extprocv3.ProcessingMode {
	out := proto.Clone(base).(*extprocv3.ProcessingMode)
	pick := func(dst *extprocv3.ProcessingMode_HeaderSendMode, v extprocv3.ProcessingMode_HeaderSendMode) {
		if v != extprocv3.ProcessingMode_DEFAULT {
			*dst = v
		}
	}
	pick(&out.ResponseHeaderMode, o.GetResponseHeaderMode())
	pick(&out.RequestTrailerMode, o.GetRequestTrailerMode())
	pick(&out.ResponseTrailerMode, o.GetResponseTrailerMode())
	out.RequestBodyMode = o.GetRequestBodyMode()
	out.ResponseBodyMode = o.GetResponseBodyMode()
	return out
}

func sendsBodyOrTrailers(m *extprocv3.ProcessingMode) bool {
	return m.GetRequestBodyMode() != extprocv3.ProcessingMode_NONE ||
		m.GetResponseBodyMode() != extprocv3.ProcessingMode_NONE ||
		m.GetRequestTrailerMode() == extprocv3.ProcessingMode_SEND ||
		m.GetResponseTrailerMode() == extprocv3.ProcessingMode_SEND
}
