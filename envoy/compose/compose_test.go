package compose

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/compose-spec/compose-go/v2/loader"
	"github.com/compose-spec/compose-go/v2/types"
	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/envoy"
	"github.com/spendguard/spendguard/envoy/envoytest"
)

// root is the repository root, where docker-compose.yaml and the Dockerfile
// are.
func root(t *testing.T) string {
	t.Helper()
	r, err := filepath.Abs(filepath.Join("..", ".."))
	require.NoError(t, err)
	return r
}

// load parses docker-compose.yaml as `docker compose --profile P... config`
// would, with env as the only environment (so ${VAR:-default}s take their
// defaults unless env sets them).
func load(t *testing.T, env map[string]string, profiles ...string) *types.Project {
	t.Helper()
	p, err := loadFile(t, filepath.Join(root(t), "docker-compose.yaml"), env, profiles...)
	require.NoError(t, err)
	return p
}

func loadFile(t *testing.T, file string, env map[string]string, profiles ...string) (*types.Project, error) {
	t.Helper()
	details := types.ConfigDetails{
		WorkingDir:  filepath.Dir(file),
		ConfigFiles: []types.ConfigFile{{Filename: file}},
		Environment: types.Mapping(env),
	}
	p, err := loader.LoadWithContext(context.Background(), details, loader.WithProfiles(profiles))
	if err != nil {
		return nil, err
	}
	// What `docker compose up` does with optional dependencies on services
	// of profiles that are off.
	return p.WithoutUnresolvedOptionalDependencies(), nil
}

func TestComposeLoadsUnderEveryProfile(t *testing.T) {
	for _, tc := range []struct {
		profiles []string
		services []string
	}{
		{nil, []string{"envoy", "fakevllm", "spendguard"}},
		{[]string{"vllm"}, []string{"envoy", "fakevllm", "spendguard", "vllm"}},
		{[]string{"redis"}, []string{"envoy", "fakevllm", "redis", "spendguard"}},
		{[]string{"vllm", "redis"}, []string{"envoy", "fakevllm", "redis", "spendguard", "vllm"}},
	} {
		name := strings.Join(tc.profiles, "+")
		if name == "" {
			name = "default"
		}
		t.Run(name, func(t *testing.T) {
			p := load(t, nil, tc.profiles...)
			names := p.ServiceNames()
			slices.Sort(names)
			assert.Equal(t, tc.services, names)
		})
	}
}

// TestComposeLoaderIsStrict shows that the loader rejects what Docker
// Compose would: a misspelt key is an error, not ignored.
func TestComposeLoaderIsStrict(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(root(t), "docker-compose.yaml"))
	require.NoError(t, err)
	for name, edit := range map[string]func(string) string{
		"unknown service key": func(s string) string {
			return strings.Replace(s, "    image: envoyproxy/envoy:", "    imagee: x\n    image: envoyproxy/envoy:", 1)
		},
		"unknown top-level key": func(s string) string { return s + "\nservicez: {}\n" },
		"wrong type":            func(s string) string { return strings.Replace(s, "      retries: 5", "      retries: many", 1) },
	} {
		t.Run(name, func(t *testing.T) {
			edited := edit(string(data))
			require.NotEqual(t, string(data), edited, "the edit changed nothing")
			file := filepath.Join(t.TempDir(), "docker-compose.yaml")
			require.NoError(t, os.WriteFile(file, []byte(edited), 0o644))
			_, err := loadFile(t, file, nil, "vllm", "redis")
			assert.Error(t, err)
		})
	}
}

// TestComposeReferencedFilesExist checks every file the compose file
// builds from or mounts.
func TestComposeReferencedFilesExist(t *testing.T) {
	p := load(t, nil, "vllm", "redis")
	for _, name := range p.ServiceNames() {
		svc := p.Services[name]
		if b := svc.Build; b != nil {
			assert.DirExists(t, b.Context, "%s: build context", name)
			dockerfile := b.Dockerfile
			if dockerfile == "" {
				dockerfile = "Dockerfile"
			}
			if !filepath.IsAbs(dockerfile) {
				dockerfile = filepath.Join(b.Context, dockerfile)
			}
			require.FileExists(t, dockerfile, "%s: Dockerfile", name)
			if b.Target != "" {
				assert.Contains(t, dockerfileStages(t, dockerfile), b.Target, "%s: build target", name)
			}
		}
		for _, v := range svc.Volumes {
			if v.Type == types.VolumeTypeBind {
				assert.DirExists(t, v.Source, "%s: bind mount of %s (mount directories, not files)", name, v.Target)
				assert.True(t, v.ReadOnly, "%s: mount %s read-only", name, v.Target)
			}
		}
	}
	for _, name := range []string{"envoy", "spendguard", "fakevllm"} {
		svc := p.Services[name]
		assert.True(t, svc.ReadOnly, "%s: read_only", name)
		assert.Equal(t, []string{"ALL"}, svc.CapDrop, "%s: cap_drop", name)
	}
}

// hostFile maps a path inside a service's container to the file on the
// host it comes from, through the service's bind mounts.
func hostFile(t *testing.T, svc types.ServiceConfig, inContainer string) string {
	t.Helper()
	for _, v := range svc.Volumes {
		if v.Type != types.VolumeTypeBind {
			continue
		}
		if rel, err := filepath.Rel(v.Target, inContainer); err == nil && !strings.HasPrefix(rel, "..") {
			return filepath.Join(v.Source, rel)
		}
	}
	t.Fatalf("%s: %s is not on a bind mount", svc.Name, inContainer)
	return ""
}

// flagValue returns the value of --name (as "--name=v" or "--name v", or
// "-name v") in a command line.
func flagValue(t *testing.T, args []string, names ...string) string {
	t.Helper()
	for i, a := range args {
		for _, n := range names {
			if v, ok := strings.CutPrefix(a, n+"="); ok {
				return v
			}
			if a == n && i+1 < len(args) {
				return args[i+1]
			}
		}
	}
	t.Fatalf("%q has no %v", args, names)
	return ""
}

func portOf(t *testing.T, addr string) uint32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	n, err := strconv.Atoi(port)
	require.NoError(t, err, addr)
	return uint32(n)
}

func composeBootstrap(t *testing.T, p *types.Project) *bootstrapv3.Bootstrap {
	t.Helper()
	svc := p.Services["envoy"]
	file := hostFile(t, svc, flagValue(t, svc.Command, "--config-path", "-c"))
	data, err := os.ReadFile(file)
	require.NoError(t, err)
	require.NoError(t, envoy.ValidateBootstrapYAML(data), "%s", file)
	b, err := envoy.ParseBootstrapYAML(data)
	require.NoError(t, err)
	return b
}

// TestComposeEnvoy checks the Envoy bootstrap the compose file mounts: it
// validates offline, meters as envoy/envoy.yaml does, listens on the
// published port and reaches the services by names and ports they serve.
func TestComposeEnvoy(t *testing.T) {
	p := load(t, nil, "vllm", "redis")
	b := composeBootstrap(t, p)
	envoySvc := p.Services["envoy"]

	require.Len(t, envoySvc.Ports, 1)
	published := envoySvc.Ports[0]
	assert.Equal(t, "10000", published.Published, "the quick start's curl goes to localhost:10000")
	assert.Equal(t, "127.0.0.1", published.HostIP, "publish on loopback only")
	hcm := envoytest.AssertMetersLikeReference(t, b, published.Target)
	assert.ElementsMatch(t, []string{"/health", "/v1/models"}, envoytest.FreeRoutes(t, hcm))

	sg := p.Services["spendguard"]
	grpcPort := portOf(t, flagValue(t, sg.Command, "--grpc-addr"))
	grpcMax := app.DefaultGRPCMaxMessageBytes
	if slices.ContainsFunc(sg.Command, func(a string) bool { return strings.HasPrefix(a, "--grpc-max-message-bytes") }) {
		n, err := strconv.Atoi(flagValue(t, sg.Command, "--grpc-max-message-bytes"))
		require.NoError(t, err)
		grpcMax = n
	}
	envoytest.AssertSpendguardTakesBufferedBodies(t, b, published.Target, grpcMax)
	assert.Equal(t, []envoytest.Endpoint{{Host: "spendguard", Port: grpcPort}}, envoytest.Endpoints(envoytest.Cluster(b, "spendguard")))

	fakePort := portOf(t, flagValue(t, p.Services["fakevllm"].Command, "-addr"))
	assert.Equal(t, []envoytest.Endpoint{{Host: "vllm", Port: 8000}, {Host: "fakevllm", Port: fakePort, Priority: 1}}, envoytest.Endpoints(envoytest.Cluster(b, "vllm")),
		"the real vLLM first, fakevllm when there is none")
	assert.Equal(t, "127.0.0.1", b.GetAdmin().GetAddress().GetSocketAddress().GetAddress(), "Envoy's admin stays on loopback")

	// Envoy waits for a real vLLM to be healthy, when there is one.
	dep, ok := envoySvc.DependsOn["vllm"]
	require.True(t, ok, "envoy depends_on vllm")
	assert.Equal(t, types.ServiceConditionHealthy, dep.Condition)
	assert.False(t, dep.Required)
	assert.NotNil(t, p.Services["vllm"].HealthCheck, "vllm needs a healthcheck for Envoy to wait on")

	// Without the vllm profile the optional dependency disappears.
	_, ok = load(t, nil).Services["envoy"].DependsOn["vllm"]
	assert.False(t, ok)
}

// TestEnvoyImageInStepWithAPI keeps the compose Envoy image at the minor
// version of the go-control-plane API its bootstrap is validated against.
func TestEnvoyImageInStepWithAPI(t *testing.T) {
	envoytest.AssertImageInStepWithAPI(t, load(t, nil).Services["envoy"].Image)
}

// TestComposeSpendguardConfig runs spendguard's configuration loader on the
// mounted file, with the environment compose gives the container, for the
// memory and the redis store.
func TestComposeSpendguardConfig(t *testing.T) {
	for _, tc := range []struct {
		name, backend string
		env           map[string]string
		profiles      []string
	}{
		{"memory", "memory", nil, nil},
		{"redis", "redis", map[string]string{"SPENDGUARD_STORE_BACKEND": "redis"}, []string{"redis"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := load(t, tc.env, tc.profiles...)
			sg := p.Services["spendguard"]
			data, err := os.ReadFile(hostFile(t, sg, flagValue(t, sg.Command, "--config")))
			require.NoError(t, err)
			cfg, err := config.Loader{LookupEnv: func(name string) (string, bool) {
				v, ok := sg.Environment[name]
				if !ok || v == nil {
					return "", false
				}
				return *v, true
			}}.Parse(data)
			require.NoError(t, err, "spendguard check-config")
			assert.Equal(t, tc.backend, cfg.File.Store.Backend)
			if tc.backend == "redis" {
				_, ok := p.Services["redis"]
				assert.True(t, ok, "store.redis.address names the redis service")
			}
		})
	}
}

// TestComposeDemoKeys checks that each API key the quick start's
// configuration documents in a comment hashes to the digest it lists.
func TestComposeDemoKeys(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("spendguard", "spendguard.yaml"))
	require.NoError(t, err)
	keys := regexp.MustCompile(`printf %s (\S+) \| sha256sum`).FindAllSubmatch(data, -1)
	digests := regexp.MustCompile(`sha256: ([0-9a-f]{64})`).FindAllSubmatch(data, -1)
	require.NotEmpty(t, keys)
	require.Len(t, digests, len(keys))
	for i, k := range keys {
		assert.Equal(t, sha256Hex(k[1]), string(digests[i][1]), "digest of %s", k[1])
	}
}
