package envoy

import (
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	"google.golang.org/protobuf/types/known/durationpb"
	"google.golang.org/protobuf/types/known/wrapperspb"
)

// withHCM unpacks the HCM of envoy.yaml's listener, lets f change it and
// packs it back.
func withHCM(t *testing.T, b *bootstrapv3.Bootstrap, f func(*hcmv3.HttpConnectionManager)) {
	t.Helper()
	filter := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, filter.GetTypedConfig().UnmarshalTo(&hcm))
	f(&hcm)
	packed, err := anypb.New(&hcm)
	require.NoError(t, err)
	filter.ConfigType = &listenerv3.Filter_TypedConfig{TypedConfig: packed}
}

// withExtProc does the same for the ext_proc filter config.
func withExtProc(t *testing.T, b *bootstrapv3.Bootstrap, f func(*extprocv3.ExternalProcessor)) {
	t.Helper()
	withHCM(t, b, func(hcm *hcmv3.HttpConnectionManager) {
		filter := hcm.GetHttpFilters()[0]
		var ep extprocv3.ExternalProcessor
		require.NoError(t, filter.GetTypedConfig().UnmarshalTo(&ep))
		f(&ep)
		packed, err := anypb.New(&ep)
		require.NoError(t, err)
		filter.ConfigType = &hcmv3.HttpFilter_TypedConfig{TypedConfig: packed}
	})
}

func withRoute(t *testing.T, b *bootstrapv3.Bootstrap, f func(*routev3.Route)) {
	t.Helper()
	withHCM(t, b, func(hcm *hcmv3.HttpConnectionManager) {
		f(hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()[0])
	})
}

func mustAny(t *testing.T, m proto.Message) *anypb.Any {
	t.Helper()
	a, err := anypb.New(m)
	require.NoError(t, err)
	return a
}

func TestRules(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*testing.T, *bootstrapv3.Bootstrap)
		want   []error  // problem classes, as classes() lists them; nil = valid
		count  int      // number of problems, when want is not nil
		substr []string // each must appear in the error text
	}{
		{
			name: "route to a missing cluster",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withRoute(t, b, func(r *routev3.Route) {
					r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "vlm"}
				})
			},
			want: []error{ErrCluster}, count: 1,
			substr: []string{`routes[0].route.cluster: clusters: "vlm" is not defined`},
		},
		{
			name: "weighted cluster missing",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withRoute(t, b, func(r *routev3.Route) {
					r.GetRoute().ClusterSpecifier = &routev3.RouteAction_WeightedClusters{WeightedClusters: &routev3.WeightedCluster{
						Clusters: []*routev3.WeightedCluster_ClusterWeight{
							{Name: "vllm", Weight: wrapperspb.UInt32(90)},
							{Name: "vllm-canary", Weight: wrapperspb.UInt32(10)},
						},
					}}
				})
			},
			want: []error{ErrCluster}, count: 1,
			substr: []string{`weighted_clusters.clusters[1].name: clusters: "vllm-canary" is not defined`},
		},
		{
			name: "ext_proc on a missing cluster",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.GetGrpcService().GetEnvoyGrpc().ClusterName = "spendgaurd"
				})
			},
			want: []error{ErrCluster}, count: 1,
			substr: []string{`grpc_service.envoy_grpc.cluster_name: clusters: "spendgaurd" is not defined`},
		},
		{
			name: "cluster defined twice",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				sr := b.GetStaticResources()
				sr.Clusters = append(sr.Clusters, proto.Clone(sr.Clusters[0]).(*clusterv3.Cluster))
			},
			want: []error{ErrCluster}, count: 1,
			substr: []string{`static_resources.clusters[2]: clusters: "vllm" is already defined at static_resources.clusters[0]`},
		},
		{
			name: "clusters from CDS are not judged",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				b.DynamicResources = &bootstrapv3.Bootstrap_DynamicResources{CdsConfig: &corev3.ConfigSource{
					ConfigSourceSpecifier: &corev3.ConfigSource_Ads{Ads: &corev3.AggregatedConfigSource{}},
					ResourceApiVersion:    corev3.ApiVersion_V3,
				}}
				withRoute(t, b, func(r *routev3.Route) {
					r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "from-cds"}
				})
			},
		},
		{
			name: "router not last",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withHCM(t, b, func(hcm *hcmv3.HttpConnectionManager) {
					f := hcm.HttpFilters
					f[0], f[1] = f[1], f[0]
				})
			},
			want: []error{ErrFilterChain}, count: 1,
			substr: []string{"http_filters[0]: http filter chain: router \"envoy.filters.http.router\" is followed by 1 filter(s)"},
		},
		{
			name: "no router",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withHCM(t, b, func(hcm *hcmv3.HttpConnectionManager) { hcm.HttpFilters = hcm.HttpFilters[:1] })
			},
			want: []error{ErrFilterChain}, count: 1, substr: []string{"no router"},
		},
		{
			name: "router recognised by its type, whatever its name",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withHCM(t, b, func(hcm *hcmv3.HttpConnectionManager) { hcm.HttpFilters[1].Name = "terminal" })
			},
		},
		{
			name: "no ext_proc at all",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withHCM(t, b, func(hcm *hcmv3.HttpConnectionManager) { hcm.HttpFilters = hcm.HttpFilters[1:] })
			},
			want: []error{ErrSpendguard}, count: 1,
			substr: []string{"no envoy.filters.http.ext_proc filter"},
		},
		{
			name: "request body STREAMED",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.ProcessingMode.RequestBodyMode = extprocv3.ProcessingMode_STREAMED
				})
			},
			want: []error{ErrSpendguard}, count: 1,
			substr: []string{"processing_mode.request_body_mode: spendguard ext_proc requirement: is STREAMED, spendguard needs BUFFERED"},
		},
		{
			name: "every mode field wrong",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.ProcessingMode = &extprocv3.ProcessingMode{
						RequestHeaderMode: extprocv3.ProcessingMode_SKIP, ResponseHeaderMode: extprocv3.ProcessingMode_SKIP,
						RequestTrailerMode: extprocv3.ProcessingMode_SEND, ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
					}
				})
			},
			want: []error{ErrSpendguard}, count: 6,
		},
		{
			name: "DEFAULT modes count as what Envoy applies",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.ProcessingMode = &extprocv3.ProcessingMode{
						RequestBodyMode:     extprocv3.ProcessingMode_BUFFERED,
						ResponseBodyMode:    extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED,
						ResponseTrailerMode: extprocv3.ProcessingMode_SEND,
					}
				})
			},
		},
		{
			name: "fail open, no mode override, observability, no immediate response",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.FailureModeAllow = true
					ep.AllowModeOverride = false
					ep.ObservabilityMode = true
					ep.DisableImmediateResponse = true
				})
			},
			want: []error{ErrSpendguard}, count: 4,
			substr: []string{"failure_mode_allow: spendguard", "allow_mode_override: spendguard", "observability_mode", "disable_immediate_response"},
		},
		{
			name: "http_service cannot carry bodies",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.GrpcService = nil
					ep.HttpService = &extprocv3.ExtProcHttpService{HttpService: &corev3.HttpService{HttpUri: &corev3.HttpUri{
						Uri:              "http://127.0.0.1:50052/process",
						HttpUpstreamType: &corev3.HttpUri_Cluster{Cluster: "spendguard-http"},
						Timeout:          durationpb.New(0),
					}}}
				})
			},
			want: []error{ErrCluster, ErrExtProc, ErrSpendguard}, count: 3,
			substr: []string{`http_uri.cluster: clusters: "spendguard-http" is not defined`, "http_service can only send headers"},
		},
		{
			name: "FULL_DUPLEX_STREAMED without trailers",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.ProcessingMode.ResponseTrailerMode = extprocv3.ProcessingMode_SKIP
				})
			},
			want: []error{ErrExtProc, ErrSpendguard}, count: 2,
			substr: []string{"response_body_mode FULL_DUPLEX_STREAMED needs response_trailer_mode SEND, not SKIP"},
		},
		{
			name: "FULL_DUPLEX_STREAMED with trailers is fine for Envoy",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.ProcessingMode.RequestBodyMode = extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED
					ep.ProcessingMode.RequestTrailerMode = extprocv3.ProcessingMode_SEND
				})
			},
			want: []error{ErrSpendguard}, count: 2, // body and trailer modes differ from spendguard's
		},
		{
			name: "allowed override FULL_DUPLEX_STREAMED with trailer SKIP",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) {
					ep.AllowedOverrideModes = []*extprocv3.ProcessingMode{
						{RequestBodyMode: extprocv3.ProcessingMode_BUFFERED, ResponseBodyMode: extprocv3.ProcessingMode_NONE},
						{ResponseBodyMode: extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED, ResponseTrailerMode: extprocv3.ProcessingMode_SKIP},
						{ResponseBodyMode: extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED}, // inherits the filter's SEND
					}
				})
			},
			want: []error{ErrExtProc}, count: 1,
			substr: []string{"allowed_override_modes[1]: ext_proc config"},
		},
		{
			name: "per-route override: FULL_DUPLEX_STREAMED and fail open",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withRoute(t, b, func(r *routev3.Route) {
					r.TypedPerFilterConfig = map[string]*anypb.Any{
						"envoy.filters.http.ext_proc": mustAny(t, &extprocv3.ExtProcPerRoute{
							Override: &extprocv3.ExtProcPerRoute_Overrides{Overrides: &extprocv3.ExtProcOverrides{
								ProcessingMode:   &extprocv3.ProcessingMode{RequestBodyMode: extprocv3.ProcessingMode_FULL_DUPLEX_STREAMED},
								FailureModeAllow: wrapperspb.Bool(true),
							}},
						}),
					}
				})
			},
			want: []error{ErrExtProc, ErrSpendguard}, count: 2,
			substr: []string{
				"typed_per_filter_config[envoy.filters.http.ext_proc]<ExtProcPerRoute>.overrides.processing_mode: ext_proc config",
				"overrides.failure_mode_allow: spendguard",
			},
		},
		{
			name: "several problems are all reported",
			mutate: func(t *testing.T, b *bootstrapv3.Bootstrap) {
				withHCM(t, b, func(hcm *hcmv3.HttpConnectionManager) {
					hcm.HttpFilters = append(hcm.HttpFilters, &hcmv3.HttpFilter{
						Name:       "envoy.filters.http.router",
						ConfigType: &hcmv3.HttpFilter_TypedConfig{TypedConfig: mustAny(t, &routerv3.Router{})},
					})
				})
				withRoute(t, b, func(r *routev3.Route) {
					r.GetRoute().ClusterSpecifier = &routev3.RouteAction_Cluster{Cluster: "nope"}
				})
				withExtProc(t, b, func(ep *extprocv3.ExternalProcessor) { ep.FailureModeAllow = true })
			},
			want: []error{ErrCluster, ErrFilterChain, ErrSpendguard}, count: 3,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b, err := ParseBootstrapYAML(readEnvoyYAML(t))
			require.NoError(t, err)
			tt.mutate(t, b)
			// Back to text: the YAML entry point is what deployments use.
			js, err := protojson.Marshal(b)
			require.NoError(t, err)
			err = ValidateBootstrapYAML(js)
			if tt.want == nil {
				assert.NoError(t, err)
				return
			}
			require.Error(t, err)
			assert.Equal(t, tt.want, classes(err), "%v", err)
			assert.Len(t, problems(err), tt.count, "%v", err)
			for _, s := range tt.substr {
				assert.Contains(t, err.Error(), s)
			}
		})
	}
}

func TestEffectiveProcessingMode(t *testing.T) {
	got := EffectiveProcessingMode(nil)
	assert.True(t, proto.Equal(&extprocv3.ProcessingMode{
		RequestHeaderMode:   extprocv3.ProcessingMode_SEND,
		ResponseHeaderMode:  extprocv3.ProcessingMode_SEND,
		RequestTrailerMode:  extprocv3.ProcessingMode_SKIP,
		ResponseTrailerMode: extprocv3.ProcessingMode_SKIP,
	}, got), "%v", got)

	in := &extprocv3.ProcessingMode{RequestBodyMode: extprocv3.ProcessingMode_BUFFERED}
	got = EffectiveProcessingMode(in)
	assert.Equal(t, extprocv3.ProcessingMode_DEFAULT, in.GetRequestHeaderMode(), "input must not be modified")
	assert.Equal(t, extprocv3.ProcessingMode_BUFFERED, got.GetRequestBodyMode())

	assert.True(t, proto.Equal(RequiredProcessingMode(), EffectiveProcessingMode(RequiredProcessingMode())))
	RequiredProcessingMode().RequestBodyMode = extprocv3.ProcessingMode_NONE
	assert.Equal(t, extprocv3.ProcessingMode_BUFFERED, RequiredProcessingMode().GetRequestBodyMode(), "each call returns a fresh message")
}
