package envoy

import (
	"errors"
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	routerv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	upstreamhttpv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
)

// allClasses lists every problem class, in the order classes() reports them.
var allClasses = []error{
	ErrSyntax, ErrConstraint, ErrDeprecated, ErrCluster, ErrFilterChain, ErrExtProc, ErrSpendguard,
}

// problems flattens the joined error returned by the validators.
func problems(err error) []error {
	if err == nil {
		return nil
	}
	if j, ok := err.(interface{ Unwrap() []error }); ok {
		return j.Unwrap()
	}
	return []error{err}
}

// classes returns the distinct problem classes err wraps.
func classes(err error) []error {
	var out []error
	for _, c := range allClasses {
		if errors.Is(err, c) {
			out = append(out, c)
		}
	}
	return out
}

func readEnvoyYAML(t *testing.T) []byte {
	t.Helper()
	data, err := os.ReadFile("envoy.yaml")
	require.NoError(t, err)
	return data
}

func TestEnvoyYAMLIsValid(t *testing.T) {
	err := ValidateBootstrapYAML(readEnvoyYAML(t))
	for _, p := range problems(err) {
		t.Error(p)
	}
}

// TestEnvoyYAMLSettings pins the choices the operator comments in envoy.yaml
// explain, so a change to one of them is a deliberate edit of this test too.
func TestEnvoyYAMLSettings(t *testing.T) {
	b, err := ParseBootstrapYAML(readEnvoyYAML(t))
	require.NoError(t, err)

	admin := b.GetAdmin().GetAddress().GetSocketAddress()
	assert.Equal(t, "127.0.0.1", admin.GetAddress())
	assert.EqualValues(t, 9901, admin.GetPortValue())

	listeners := b.GetStaticResources().GetListeners()
	require.Len(t, listeners, 1)
	l := listeners[0]
	assert.EqualValues(t, 8080, l.GetAddress().GetSocketAddress().GetPortValue())
	assert.EqualValues(t, 8<<20, l.GetPerConnectionBufferLimitBytes().GetValue())

	require.Len(t, l.GetFilterChains(), 1)
	require.Len(t, l.GetFilterChains()[0].GetFilters(), 1)
	var hcm hcmv3.HttpConnectionManager
	require.NoError(t, l.GetFilterChains()[0].GetFilters()[0].GetTypedConfig().UnmarshalTo(&hcm))
	assert.True(t, hcm.GetNormalizePath().GetValue())
	assert.True(t, hcm.GetMergeSlashes())

	routes := hcm.GetRouteConfig().GetVirtualHosts()[0].GetRoutes()
	require.Len(t, routes, 1)
	ra := routes[0].GetRoute()
	assert.Equal(t, "vllm", ra.GetCluster())
	require.NotNil(t, ra.GetTimeout(), "route timeout must be set explicitly (default 15s)")
	assert.Zero(t, ra.GetTimeout().AsDuration(), "no overall deadline for LLM streams")
	assert.Nil(t, ra.GetRetryPolicy(), "an LLM call must not be retried")

	filters := hcm.GetHttpFilters()
	require.Len(t, filters, 2)
	assert.Equal(t, "envoy.filters.http.ext_proc", filters[0].GetName())
	assert.Equal(t, "envoy.filters.http.router", filters[1].GetName())
	assert.Equal(t, proto.MessageName(&routerv3.Router{}), filters[1].GetTypedConfig().MessageName())

	var ep extprocv3.ExternalProcessor
	require.NoError(t, filters[0].GetTypedConfig().UnmarshalTo(&ep))
	// Spelled out field by field in the file, not left to DEFAULT.
	assert.True(t, proto.Equal(RequiredProcessingMode(), ep.GetProcessingMode()), "processing_mode: %v", ep.GetProcessingMode())
	assert.True(t, ep.GetAllowModeOverride())
	assert.False(t, ep.GetFailureModeAllow())
	assert.Equal(t, "spendguard", ep.GetGrpcService().GetEnvoyGrpc().GetClusterName())
	assert.Equal(t, 500*time.Millisecond, ep.GetMessageTimeout().AsDuration())
	assert.Equal(t, 2*time.Second, ep.GetMaxMessageTimeout().AsDuration())

	clusters := map[string]*clusterv3.Cluster{}
	for _, c := range b.GetStaticResources().GetClusters() {
		clusters[c.GetName()] = c
	}
	require.Contains(t, clusters, "vllm")
	require.Contains(t, clusters, "spendguard")
	assert.Equal(t, clusterv3.Cluster_STRICT_DNS, clusters["vllm"].GetType())
	vllm := clusters["vllm"].GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	assert.Equal(t, "vllm", vllm.GetAddress())
	assert.EqualValues(t, 8000, vllm.GetPortValue())

	sg := clusters["spendguard"]
	addr := sg.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	assert.Equal(t, "127.0.0.1", addr.GetAddress())
	assert.EqualValues(t, 50051, addr.GetPortValue())
	opts := sg.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
	require.NotNil(t, opts, "the spendguard cluster must speak HTTP/2 for gRPC")
	var hpo upstreamhttpv3.HttpProtocolOptions
	require.NoError(t, opts.UnmarshalTo(&hpo))
	assert.NotNil(t, hpo.GetExplicitHttpConfig().GetHttp2ProtocolOptions())
}

// TestEnvoyImageMatchesAPIVersion keeps the image pinned in envoy.yaml in step
// with the go-control-plane version the file is validated against.
func TestEnvoyImageMatchesAPIVersion(t *testing.T) {
	image := regexp.MustCompile(`envoyproxy/envoy:(v\d+\.\d+)\.\d+`).FindSubmatch(readEnvoyYAML(t))
	require.NotNil(t, image, "envoy.yaml must name the image envoyproxy/envoy:vX.Y.Z")

	gomod, err := os.ReadFile("../go.mod")
	require.NoError(t, err)
	api := regexp.MustCompile(`github\.com/envoyproxy/go-control-plane/envoy (v\d+\.\d+)\.\d+`).FindSubmatch(gomod)
	require.NotNil(t, api, "go.mod must require go-control-plane/envoy")

	assert.Equal(t, string(api[1]), string(image[1]), "Envoy image and go-control-plane/envoy minor versions differ")
}

// TestWalkUnpacksNestedAny checks the walk reaches messages packed in Any
// fields, including an Any inside an Any (ext_proc inside the HCM) and Anys in
// map values (cluster protocol options).
func TestWalkUnpacksNestedAny(t *testing.T) {
	b, err := ParseBootstrapYAML(readEnvoyYAML(t))
	require.NoError(t, err)
	w := &walker{}
	w.walk("", b.ProtoReflect())
	require.Empty(t, w.errs)

	seen := map[string]string{}
	for _, n := range w.nodes {
		seen[string(proto.MessageName(n.msg))] = n.path
	}
	for _, m := range []proto.Message{
		&hcmv3.HttpConnectionManager{}, &extprocv3.ExternalProcessor{}, &extprocv3.ProcessingMode{},
		&routerv3.Router{}, &upstreamhttpv3.HttpProtocolOptions{},
	} {
		assert.Contains(t, seen, string(proto.MessageName(m)))
	}
	assert.Equal(t,
		"static_resources.listeners[0].filter_chains[0].filters[0].typed_config<HttpConnectionManager>"+
			".http_filters[0].typed_config<ExternalProcessor>",
		seen[string(proto.MessageName(&extprocv3.ExternalProcessor{}))])
}

// TestParseRejects covers problems found before any rule runs.
func TestParseRejects(t *testing.T) {
	base := string(readEnvoyYAML(t))
	tests := []struct {
		name string
		yaml string
		want string
	}{
		{"not yaml", "admin: [", "yaml"},
		{"unknown top-level field", base + "\nbogus_field: 1\n", "bogus_field"},
		{
			"unknown field inside a typed_config",
			replaceOnce(t, base, "allow_mode_override: true", "allow_mode_override: true\n              allow_everything: true"),
			"allow_everything",
		},
		{
			"duplicate key",
			replaceOnce(t, base, "failure_mode_allow: false", "failure_mode_allow: false\n              failure_mode_allow: true"),
			"failure_mode_allow",
		},
		{
			"unregistered extension type",
			replaceOnce(t, base, "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
				"type.googleapis.com/envoy.extensions.filters.http.no_such_filter.v3.Config"),
			"extensions.go",
		},
		{"wrong value type", replaceOnce(t, base, "port_value: 8080", "port_value: eighty"), "portValue"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateBootstrapYAML([]byte(tt.yaml))
			require.Error(t, err)
			assert.ErrorIs(t, err, ErrSyntax)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

// TestConstraintsInsideAny covers protoc-gen-validate rules that ValidateAll
// on the bootstrap alone would miss, because the message sits in an Any.
func TestConstraintsInsideAny(t *testing.T) {
	base := string(readEnvoyYAML(t))
	tests := []struct {
		name, yaml, want string
	}{
		{
			"top level (no Any)",
			replaceOnce(t, base, "connect_timeout: 1s", "connect_timeout: -1s"),
			"bootstrap: constraint violated: invalid Bootstrap.StaticResources",
		},
		{
			"Any inside Any: ext_proc in the HCM",
			replaceOnce(t, base, "message_timeout: 0.5s", "message_timeout: 7200s"),
			"typed_config<ExternalProcessor>: constraint violated",
		},
		{
			"Any inside Any: router in the HCM",
			replaceOnce(t, base, "\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router",
				"\"@type\": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router\n"+
					"              strict_check_headers: [x-not-a-retry-header]"),
			"typed_config<Router>: constraint violated",
		},
		{
			"Any in a map value",
			replaceOnce(t, base, "http2_protocol_options: {}", "http2_protocol_options: {max_concurrent_streams: 0}"),
			"typed_extension_protocol_options[envoy.extensions.upstreams.http.v3.HttpProtocolOptions]<HttpProtocolOptions>",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := ValidateBootstrapYAML([]byte(tt.yaml))
			require.Error(t, err)
			assert.Equal(t, []error{ErrConstraint}, classes(err), "%v", err)
			assert.Contains(t, err.Error(), tt.want)
		})
	}
}

func TestDeprecatedFieldIsReported(t *testing.T) {
	yaml := replaceOnce(t, string(readEnvoyYAML(t)), "    type: STATIC\n", "    type: STATIC\n    http2_protocol_options: {}\n")
	err := ValidateBootstrapYAML([]byte(yaml))
	require.Error(t, err)
	assert.Equal(t, []error{ErrDeprecated}, classes(err), "%v", err)
	assert.Contains(t, err.Error(), "static_resources.clusters[1].http2_protocol_options")
}

// replaceOnce replaces old, which must occur exactly once in s, so that a
// test cannot silently stop testing anything when envoy.yaml changes.
func replaceOnce(t *testing.T, s, old, new string) string {
	t.Helper()
	require.Equal(t, 1, strings.Count(s, old), "%q must occur once in envoy.yaml", old)
	return strings.Replace(s, old, new, 1)
}
