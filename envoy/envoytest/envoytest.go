// Package envoytest holds the checks that every Envoy bootstrap shipped with
// spendguard (envoy/envoy.yaml, the Kubernetes and compose copies) must pass
// beyond envoy.ValidateBootstrap: that it meters exactly as the reference
// envoy/envoy.yaml does, that no route switches ext_proc off for a cost
// endpoint, that spendguard's gRPC limit takes the largest body it buffers,
// and that the Envoy image stays in step with the go-control-plane API it is
// validated against. It is used by tests only.
package envoytest

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/envoy"
)

// CostPaths are the endpoints spendguard charges for (behaviour.md, "Which
// requests cost money"): ext_proc may never be switched off for them.
var CostPaths = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}

// ExtProcFilter is the HTTP filter name of ext_proc.
const ExtProcFilter = "envoy.filters.http.ext_proc"

// Root walks up from the working directory to the module root (go.mod).
func Root(t testing.TB) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	for ; dir != "/"; dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
	}
	t.Fatal("go.mod not found above the working directory")
	return ""
}

// Reference parses envoy/envoy.yaml.
func Reference(t testing.TB) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile(filepath.Join(Root(t), "envoy", "envoy.yaml"))
	require.NoError(t, err)
	b, err := envoy.ParseBootstrapYAML(data)
	require.NoError(t, err)
	return b
}

// HCM returns the HTTP connection manager of a listener.
func HCM(t testing.TB, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	require.NotNil(t, l)
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().MessageIs(&hcm) {
				require.NoError(t, f.GetTypedConfig().UnmarshalTo(&hcm))
				return &hcm
			}
		}
	}
	t.Fatalf("listener %q has no HTTP connection manager", l.GetName())
	return nil
}

// ExtProc returns the ext_proc filter of a connection manager.
func ExtProc(t testing.TB, hcm *hcmv3.HttpConnectionManager) *extprocv3.ExternalProcessor {
	t.Helper()
	for _, f := range hcm.GetHttpFilters() {
		var ep extprocv3.ExternalProcessor
		if f.GetTypedConfig().MessageIs(&ep) {
			require.NoError(t, f.GetTypedConfig().UnmarshalTo(&ep))
			return &ep
		}
	}
	t.Fatal("no ext_proc filter")
	return nil
}

// Listener returns the listener bound to port, or nil.
func Listener(b *bootstrapv3.Bootstrap, port uint32) *listenerv3.Listener {
	for _, l := range b.GetStaticResources().GetListeners() {
		if l.GetAddress().GetSocketAddress().GetPortValue() == port {
			return l
		}
	}
	return nil
}

// Cluster returns the static cluster with that name, or nil.
func Cluster(b *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// Endpoint is one static endpoint of a cluster.
type Endpoint struct {
	Host     string
	Port     uint32
	Priority uint32
}

// Endpoints lists a cluster's static endpoints in order.
func Endpoints(c *clusterv3.Cluster) []Endpoint {
	var out []Endpoint
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, Endpoint{sa.GetAddress(), sa.GetPortValue(), le.GetPriority()})
		}
	}
	return out
}

// AssertMetersLikeReference checks that the listener of b on port meters
// requests exactly as envoy/envoy.yaml's does: the same ext_proc filter,
// connection manager settings (routes aside) and buffer limit. It returns
// the listener's connection manager, routes included.
func AssertMetersLikeReference(t testing.TB, b *bootstrapv3.Bootstrap, port uint32) *hcmv3.HttpConnectionManager {
	t.Helper()
	refL := Reference(t).GetStaticResources().GetListeners()[0]
	l := Listener(b, port)
	require.NotNil(t, l, "no listener on port %d", port)
	assert.True(t, proto.Equal(refL.GetPerConnectionBufferLimitBytes(), l.GetPerConnectionBufferLimitBytes()),
		"per_connection_buffer_limit_bytes differs from envoy/envoy.yaml")
	refHCM, hcm := HCM(t, refL), HCM(t, l)
	assert.True(t, proto.Equal(ExtProc(t, refHCM), ExtProc(t, hcm)),
		"the ext_proc filter differs from envoy/envoy.yaml's:\n%v", ExtProc(t, hcm))
	routes := hcm.RouteSpecifier
	refHCM.RouteSpecifier, hcm.RouteSpecifier = nil, nil
	assert.True(t, proto.Equal(refHCM, hcm), "the connection manager differs from envoy/envoy.yaml's (routes aside)")
	hcm.RouteSpecifier = routes
	return hcm
}

// FreeRoutes returns the exact paths of the routes that switch ext_proc off,
// and fails for any such route that matches more than one exact path or a
// cost endpoint: no request that costs money may reach vLLM unmetered.
func FreeRoutes(t testing.TB, hcm *hcmv3.HttpConnectionManager) []string {
	t.Helper()
	var free []string
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			cfg, ok := r.GetTypedPerFilterConfig()[ExtProcFilter]
			if !ok {
				continue
			}
			var per extprocv3.ExtProcPerRoute
			require.NoError(t, cfg.UnmarshalTo(&per), "route %q", r.GetName())
			if !per.GetDisabled() {
				continue
			}
			path := r.GetMatch().GetPath()
			if path == "" {
				t.Errorf("route %q disables ext_proc for more than one exact path (%v)", r.GetName(), r.GetMatch())
				continue
			}
			if slices.Contains(CostPaths, path) {
				t.Errorf("route %q disables ext_proc for the cost endpoint %s", r.GetName(), path)
			}
			free = append(free, path)
		}
	}
	return free
}

var (
	imageRE = regexp.MustCompile(`envoyproxy/envoy:(v\d+\.\d+)\.\d+`)
	apiRE   = regexp.MustCompile(`github\.com/envoyproxy/go-control-plane/envoy (v\d+\.\d+)\.\d+`)
)

// AssertImageInStepWithAPI checks that an envoyproxy/envoy:vX.Y.Z image
// reference has the minor version of go-control-plane/envoy in go.mod, the
// API every bootstrap is validated against.
func AssertImageInStepWithAPI(t testing.TB, image string) {
	t.Helper()
	m := imageRE.FindStringSubmatch(image)
	require.NotNil(t, m, "%q must pin envoyproxy/envoy:vX.Y.Z", image)
	gomod, err := os.ReadFile(filepath.Join(Root(t), "go.mod"))
	require.NoError(t, err)
	api := apiRE.FindSubmatch(gomod)
	require.NotNil(t, api, "go.mod must require go-control-plane/envoy")
	assert.Equal(t, string(api[1]), m[1], "Envoy image and go-control-plane/envoy minor versions differ")
}

// RequestBufferLimit is the largest request body Envoy buffers for ext_proc
// on listener l (whose connection manager is hcm):
// per_connection_buffer_limit_bytes (Envoy's default 1 MiB when unset), or
// a larger limit a virtual host or route sets for itself.
func RequestBufferLimit(l *listenerv3.Listener, hcm *hcmv3.HttpConnectionManager) int {
	limit := 1 << 20
	if v := l.GetPerConnectionBufferLimitBytes(); v != nil {
		limit = int(v.GetValue())
	}
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		if v := vh.GetPerRequestBufferLimitBytes(); v != nil {
			limit = max(limit, int(v.GetValue()))
		}
		for _, r := range vh.GetRoutes() {
			if v := r.GetPerRequestBufferLimitBytes(); v != nil {
				limit = max(limit, int(v.GetValue()))
			}
			if v := r.GetRequestBodyBufferLimit(); v != nil {
				limit = max(limit, int(v.GetValue()))
			}
		}
	}
	return limit
}

// AssertSpendguardTakesBufferedBodies checks that spendguard, run with
// --grpc-max-message-bytes grpcMax, accepts the largest request body the
// listener of b on port buffers, with app.GRPCHeadroom for the rest of the
// ext_proc message (docs/deployment.md, "The two limits move together").
func AssertSpendguardTakesBufferedBodies(t testing.TB, b *bootstrapv3.Bootstrap, port uint32, grpcMax int) {
	t.Helper()
	l := Listener(b, port)
	require.NotNil(t, l, "no listener on port %d", port)
	limit := RequestBufferLimit(l, HCM(t, l))
	assert.LessOrEqual(t, limit+app.GRPCHeadroom, grpcMax,
		"Envoy buffers request bodies up to %d bytes but spendguard's --grpc-max-message-bytes is %d: raise them together", limit, grpcMax)
}
