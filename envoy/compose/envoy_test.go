package compose

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
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

	"github.com/spendguard/spendguard/envoy"
)

// costPaths are the endpoints spendguard charges for (the spec, "Which
// requests cost money"): ext_proc may never be switched off for them.
var costPaths = []string{"/v1/chat/completions", "/v1/completions", "/v1/embeddings", "/v1/responses"}

func hcmOf(t *testing.T, l *listenerv3.Listener) *hcmv3.HttpConnectionManager {
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

func extProcOf(t *testing.T, hcm *hcmv3.HttpConnectionManager) *extprocv3.ExternalProcessor {
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

func listenerOnPort(b *bootstrapv3.Bootstrap, port uint32) *listenerv3.Listener {
	for _, l := range b.GetStaticResources().GetListeners() {
		if l.GetAddress().GetSocketAddress().GetPortValue() == port {
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

type endpoint struct {
	host     string
	port     uint32
	priority uint32
}

func endpoints(c *clusterv3.Cluster) []endpoint {
	var out []endpoint
	for _, le := range c.GetLoadAssignment().GetEndpoints() {
		for _, lb := range le.GetLbEndpoints() {
			sa := lb.GetEndpoint().GetAddress().GetSocketAddress()
			out = append(out, endpoint{sa.GetAddress(), sa.GetPortValue(), le.GetPriority()})
		}
	}
	return out
}

// assertMetersLikeReference checks that the listener on port meters
// requests exactly as envoy/envoy.yaml's does: the same ext_proc filter,
// connection manager settings (routes aside) and buffer limit. It returns
// the listener's connection manager.
func assertMetersLikeReference(t *testing.T, b *bootstrapv3.Bootstrap, port uint32) *hcmv3.HttpConnectionManager {
	t.Helper()
	data, err := os.ReadFile("../envoy.yaml")
	require.NoError(t, err)
	ref, err := envoy.ParseBootstrapYAML(data)
	require.NoError(t, err)
	refL := ref.GetStaticResources().GetListeners()[0]
	l := listenerOnPort(b, port)
	require.NotNil(t, l, "no listener on port %d", port)
	assert.True(t, proto.Equal(refL.GetPerConnectionBufferLimitBytes(), l.GetPerConnectionBufferLimitBytes()),
		"per_connection_buffer_limit_bytes differs from envoy/envoy.yaml")

	refHCM, hcm := hcmOf(t, refL), hcmOf(t, l)
	assert.True(t, proto.Equal(extProcOf(t, refHCM), extProcOf(t, hcm)), "the ext_proc filter differs from envoy/envoy.yaml's")
	routes := hcm.RouteSpecifier
	refHCM.RouteSpecifier, hcm.RouteSpecifier = nil, nil
	assert.True(t, proto.Equal(refHCM, hcm), "the connection manager differs from envoy/envoy.yaml's (routes aside)")
	hcm.RouteSpecifier = routes
	return hcm
}

// freeRoutes returns the exact paths of the routes that switch ext_proc
// off, and fails for any such route that could let a cost endpoint through.
func freeRoutes(t *testing.T, hcm *hcmv3.HttpConnectionManager) []string {
	t.Helper()
	var free []string
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			cfg, ok := r.GetTypedPerFilterConfig()["envoy.filters.http.ext_proc"]
			if !ok {
				continue
			}
			var per extprocv3.ExtProcPerRoute
			require.NoError(t, cfg.UnmarshalTo(&per))
			if !per.GetDisabled() {
				continue
			}
			path := r.GetMatch().GetPath()
			assert.NotEmpty(t, path, "route %q disables ext_proc beyond one exact path", r.GetName())
			assert.False(t, slices.Contains(costPaths, path), "route %q disables ext_proc for a cost endpoint", r.GetName())
			free = append(free, path)
		}
	}
	return free
}

func sha256Hex(b []byte) string {
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:])
}
