package kubernetes

import (
	"fmt"
	"net"
	"os"
	"strconv"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/spendguard/spendguard/envoy/envoytest"
)

// assertSameAsReference checks that the traffic listener of b meters as
// envoy/envoy.yaml does (envoytest.AssertMetersLikeReference) and that its
// vllm and spendguard clusters are the reference's.
func assertSameAsReference(t *testing.T, b *bootstrapv3.Bootstrap, port int32) {
	t.Helper()
	envoytest.AssertMetersLikeReference(t, b, uint32(port))
	ref := envoytest.Reference(t)
	for _, name := range []string{"vllm", "spendguard"} {
		c := envoytest.Cluster(b, name)
		require.NotNil(t, c, "cluster %q", name)
		assert.True(t, proto.Equal(envoytest.Cluster(ref, name), c), "cluster %q differs from envoy/envoy.yaml's", name)
	}
}

// readyRouteTarget returns the upstream "host:port" that GET path on the
// listener's port is routed to, or an error naming why there is none.
func readyRouteTarget(t *testing.T, b *bootstrapv3.Bootstrap, port int32, path string) (string, error) {
	l := envoytest.Listener(b, uint32(port))
	if l == nil {
		return "", fmt.Errorf("no listener on port %d", port)
	}
	hcm := envoytest.HCM(t, l)
	for _, vh := range hcm.GetRouteConfig().GetVirtualHosts() {
		for _, r := range vh.GetRoutes() {
			if r.GetMatch().GetPath() != path && r.GetMatch().GetPrefix() != "/" {
				continue
			}
			c := envoytest.Cluster(b, r.GetRoute().GetCluster())
			if c == nil {
				return "", fmt.Errorf("route %q of the listener on %d does not lead to a cluster", r.GetName(), port)
			}
			eps := envoytest.Endpoints(c)
			if len(eps) != 1 {
				return "", fmt.Errorf("cluster %q has %d endpoints, want 1", c.GetName(), len(eps))
			}
			return net.JoinHostPort(eps[0].Host, strconv.Itoa(int(eps[0].Port))), nil
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
	envoytest.AssertImageInStepWithAPI(t, string(data))
}
