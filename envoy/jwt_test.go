package envoy

import (
	"os"
	"regexp"
	"testing"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extprocv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_proc/v3"
	jwtv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/jwt_authn/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
)

// Where spendguard's jwt_claim sources read the claims (processor/headers.go).
const (
	jwtNamespace = "envoy.filters.http.jwt_authn"
	jwtKey       = "jwt"
)

func parseFile(t *testing.T, name string) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile(name)
	require.NoError(t, err)
	b, err := ParseBootstrapYAML(data)
	require.NoError(t, err)
	return b
}

// httpFilters returns the names and unpacked configs of the first
// listener's HTTP filters.
func httpFilters(t *testing.T, b *bootstrapv3.Bootstrap) ([]string, []proto.Message) {
	t.Helper()
	var hcm hcmv3.HttpConnectionManager
	filter := b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters()[0]
	require.NoError(t, filter.GetTypedConfig().UnmarshalTo(&hcm))
	var names []string
	var configs []proto.Message
	for _, f := range hcm.GetHttpFilters() {
		m, err := anypb.UnmarshalNew(f.GetTypedConfig(), proto.UnmarshalOptions{})
		require.NoError(t, err)
		names = append(names, f.GetName())
		configs = append(configs, m)
	}
	return names, configs
}

func TestEnvoyJWTYAMLIsValid(t *testing.T) {
	data, err := os.ReadFile("envoy-jwt.yaml")
	require.NoError(t, err)
	for _, p := range problems(ValidateBootstrapYAML(data)) {
		t.Error(p)
	}
	image := regexp.MustCompile(`envoyproxy/envoy:v[\d.]+`)
	assert.Equal(t, image.FindString(string(readEnvoyYAML(t))), image.FindString(string(data)),
		"both files name the same Envoy image")
}

// TestEnvoyJWTForwardsClaimsToSpendguard checks what spendguard's
// jwt_claim sources need: jwt_authn before ext_proc, every provider's
// payload in the metadata key spendguard reads, and that namespace
// forwarded by ext_proc; and that apart from the forwarding its ext_proc
// filter is envoy.yaml's.
func TestEnvoyJWTForwardsClaimsToSpendguard(t *testing.T) {
	names, configs := httpFilters(t, parseFile(t, "envoy-jwt.yaml"))
	require.Equal(t, []string{jwtNamespace, "envoy.filters.http.ext_proc", "envoy.filters.http.router"}, names)

	jwt, ok := configs[0].(*jwtv3.JwtAuthentication)
	require.True(t, ok)
	require.NotEmpty(t, jwt.GetProviders())
	for name, p := range jwt.GetProviders() {
		assert.Equal(t, jwtKey, p.GetPayloadInMetadata(), "provider %s", name)
	}
	assert.NotEmpty(t, jwt.GetRules(), "without rules jwt_authn verifies nothing")

	ep, ok := configs[1].(*extprocv3.ExternalProcessor)
	require.True(t, ok)
	assert.Equal(t, []string{jwtNamespace}, ep.GetMetadataOptions().GetForwardingNamespaces().GetUntyped())

	_, plainConfigs := httpFilters(t, parseFile(t, "envoy.yaml"))
	plain, ok := plainConfigs[0].(*extprocv3.ExternalProcessor)
	require.True(t, ok)
	same := proto.Clone(ep).(*extprocv3.ExternalProcessor)
	same.MetadataOptions = nil
	assert.True(t, proto.Equal(plain, same), "the ext_proc filter differs from envoy.yaml's:\n%v\n%v", plain, same)
}

// TestEnvoyJWTIsCheckedInside shows the validation reaches into jwt_authn's
// config: a JWKS cluster that does not exist is reported.
func TestEnvoyJWTIsCheckedInside(t *testing.T) {
	data, err := os.ReadFile("envoy-jwt.yaml")
	require.NoError(t, err)
	bad := replaceOnce(t, string(data), "cluster: idp_jwks", "cluster: idp_jwk")
	err = ValidateBootstrapYAML([]byte(bad))
	require.ErrorIs(t, err, ErrCluster)
	assert.Contains(t, err.Error(), `providers[corp_idp].remote_jwks.http_uri.cluster: clusters: "idp_jwk" is not defined`)
}
