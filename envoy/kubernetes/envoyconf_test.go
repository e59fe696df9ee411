package kubernetes

import (
	"fmt"
	"net"
	"os"
	"regexp"
	"slices"
	"strconv"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	listenerv3 "github.com/envoyproxy/go-control-plane/envoy/config/listener/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/spendguard/spendguard/envoy"
)

const extProcFilter = "envoy.filters.http.ext_proc"

// costPaths are the endpoints spendguard charges for (the spec, "Which
// requests cost money"): ext_proc may never be switched off for them.
var costPaths = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}

// hcmOf returns the HTTP connection manager of a listener's only filter
// chain, or nil when it has none.
func hcmOf(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
	t.Helper()
	for _, fc := range l.GetFilterChains() {
		for _, f := range fc.GetFilters() {
			var hcm hcmv3.HttpConnectionManager
			if f.GetTypedConfig().MessageIs(&hcm) {
				require.NoError(t, f.GetTypedConfig().UnmarshalTo(&hcm))
				return &hcm
			}
		}
	}
	return nil
}

// extProcOf returns the ext_proc filter of a connection manager, or nil.
func extProcOf(t *testing.T, hcm *hcmv3.HttpConnectionManager) *extprocv3.ExternalProcessor {
	t.Helper()
	for _, f := range hcm.GetHttpFilters() {
		var ep extprocv3.ExternalProcessor
		if f.GetTypedConfig().MessageIs(&ep) {
			require.NoError(t, f.GetTypedConfig().UnmarshalTo(&ep))
			return &ep
		}
	}
	return nil
}

// listenerOnPort returns the listener bound to port, or nil.
func listenerOnPort(b *bootstrapv3.Bootstrap, port int32) *listenerv3.Listener {
	for _, l := range b.GetStaticResources().GetListeners() {
		if int32(l.GetAddress().GetSocketAddress().GetPortValue()) == port {
			return l
		}
	}
	return nil
}

func clusterNamed(b *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	return nil
}

// endpoints lists the host:port of every static endpoint of a cluster.
func endpoints(c *clusterv3.Cluster) []string {
	var out []string
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, net.JoinHostPort(sa.GetAddress(), strconv.Itoa(int(sa.GetPortValue()))))
		}
	}
	return out
}

// referenceBootstrap is envoy/envoy.yaml, the documented bootstrap the
// Kubernetes one must stay in step with.
func referenceBootstrap(t *testing.T) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile("../envoy.yaml")
	require.NoError(t, err)
	b, err := envoy.ParseBootstrapYAML(data)
	require.NoError(t, err)
	return b
}

// assertSameAsReference checks that the traffic listener of b meters as
// envoy/envoy.yaml does: the same ext_proc filter, connection manager
// settings (routes aside), buffer limit, and vllm and spendguard clusters.
func assertSameAsReference(t *testing.T, b *bootstrapv3.Bootstrap, port int32) {
	ref := referenceBootstrap(t)
	refL := ref.GetStaticResources().GetListeners()[0]
	l := listenerOnPort(b, port)
	require.NotNil(t, l, "no listener on the traffic port %d", port)
	assert.True(t, proto.Equal(refL.GetPerConnectionBufferLimitBytes(), l.GetPerConnectionBufferLimitBytes()),
		"per_connection_buffer_limit_bytes differs from envoy/envoy.yaml")

	refHCM, hcm := hcmOf(t, refL), hcmOf(t, l)
	require.NotNil(t, hcm)
	assert.True(t, proto.Equal(extProcOf(t, refHCM), extProcOf(t, hcm)),
		"the ext_proc filter differs from envoy/envoy.yaml's:\n%v", extProcOf(t, hcm))
	refHCM.RouteSpecifier, hcm.RouteSpecifier = nil, nil
	assert.True(t, proto.Equal(refHCM, hcm), "the connection manager differs from envoy/envoy.yaml's (routes aside)")

	for _, name := range []string{"vllm", "spendguard"} {
		c := clusterNamed(b, name)
		require.NotNil(t, c, "cluster %q", name)
		assert.True(t, proto.Equal(clusterNamed(ref, name), c), "cluster %q differs from envoy/envoy.yaml's", name)
	}
}

// checkFreeRoutes checks every route that switches ext_proc off: it must
// match one exact path (no prefix, no regex) that is not a cost endpoint,
// so no request that costs money can reach vLLM unmetered.
func checkFreeRoutes(t *testing.T, hcm *hcmv3.HttpConnectionManager) (free []string) {
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			cfg, ok := r.GetTypedPerFilterConfig()[extProcFilter]
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
			if slices.Contains(costPaths, path) {
				t.Errorf("route %q disables ext_proc for the cost endpoint %s", r.GetName(), path)
			}
			free = append(free, path)
		}
	}
	return free
}

// readyRouteTarget returns the upstream "host:port" that GET path on the
// listener's port is routed to, or an error naming why there is none.
func readyRouteTarget(t *testing.T, b *bootstrapv3.Bootstrap, port int32, path string) (string, error) {
	l := listenerOnPort(b, port)
	if l == nil {
		return "", fmt.Errorf("no listener on port %d", port)
	}
	hcm := hcmOf(t, l)
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetMatch().GetPath() != path && r.GetMatch().GetPrefix() != "/" {
				continue
			}
			c := clusterNamed(b, r.GetRoute().GetCluster())
			if c == nil {
				return "", fmt.Errorf("route %q of the listener on %d does not lead to a cluster", r.GetName(), port)
			}
			eps := endpoints(c)
			if len(eps) != 1 {
				return "", fmt.Errorf("cluster %q has %d endpoints, want 1", c.GetName(), len(eps))
			}
			return eps[0], nil
		}
	}
	return "", fmt.Errorf("no route for %s on the listener on port %d", path, port)
}

// TestEnvoyImageInStepWithAPI keeps the Envoy image of the Deployment at
// the minor version of the go-control-plane API the bootstrap is validated
// against.
func TestEnvoyImageInStepWithAPI(t *testing.T) {
	data, err := os.ReadFile("base/deployment.yaml")
	require.NoError(t, err)
	image := regexp.MustCompile(`image: envoyproxy/envoy:(v\d+\.\d+)\.\d+\n`).FindSubmatch(data)
	require.NotNil(t, image, "base/deployment.yaml must pin envoyproxy/envoy:vX.Y.Z")
	gomod, err := os.ReadFile("../../go.mod")
	require.NoError(t, err)
	api := regexp.MustCompile(`github\.com/envoyproxy/go-control-plane/envoy (v\d+\.\d+)\.\d+`).FindSubmatch(gomod)
	require.NotNil(t, api, "go.mod must require go-control-plane/envoy")
	assert.Equal(t, string(api[1]), string(image[1]), "Envoy image and go-control-plane/envoy minor versions differ")
}
