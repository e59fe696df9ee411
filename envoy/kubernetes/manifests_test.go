package kubernetes

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"path"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	extprocsvc "github.com/envoyproxy/go-control-plane/envoy/service/ext_proc/v3"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/spendguard/spendguard/cmd/spendguard/app"
	"github.com/spendguard/spendguard/config"
	"github.com/spendguard/spendguard/envoy"
	"github.com/spendguard/spendguard/envoy/envoytest"
)

// kustomizations are the directories rendered, and what each must deploy.
var kustomizations = []struct {
	dir         string
	backend     string // store.backend of its spendguard.yaml
	minReplicas int32
	maxReplicas int32
}{
	// In-memory counters are per process: more than one replica would give
	// every budget one copy per replica.
	{dir: "base", backend: "memory", minReplicas: 1, maxReplicas: 1},
	{dir: "overlays/redis", backend: "redis", minReplicas: 2, maxReplicas: 100},
}

// gateway is the rendered llm-gateway Deployment with its two containers
// and what they read.
type gateway struct {
	b          *bundle
	dep        *appsv1.Deployment
	pod        *corev1.PodSpec
	envoy      *corev1.Container
	spendguard *corev1.Container

	sg        serveFlags
	ev        envoyFlags
	bootstrap *bootstrapv3.Bootstrap
	sgConfig  []byte // spendguard.yaml as mounted
}

func TestKustomizations(t *testing.T) {
	for _, k := range kustomizations {
		t.Run(k.dir, func(t *testing.T) {
			t.Parallel()
			g := newGateway(t, render(t, k.dir))
			replicas := ptrOr(g.dep.Spec.Replicas, 1)
			assert.GreaterOrEqual(t, replicas, k.minReplicas, "replicas")
			assert.LessOrEqual(t, replicas, k.maxReplicas, "replicas")
			t.Run("spendguard config", func(t *testing.T) { g.checkSpendguardConfig(t, k.backend) })
			t.Run("envoy config", g.checkEnvoyConfig)
			t.Run("ports and probes", g.checkPortsAndProbes)
			t.Run("shutdown", g.checkShutdown)
			t.Run("security", g.checkSecurity)
			t.Run("resources", g.checkResources)
			t.Run("selectors", g.checkSelectors)
		})
	}
}

func newGateway(t *testing.T, b *bundle) *gateway {
	t.Helper()
	require.Len(t, b.deployments, 1, "one Deployment")
	g := &gateway{b: b, dep: b.deployments[0]}
	g.pod = &g.dep.Spec.Template.Spec
	for i := range g.pod.Containers {
		switch c := &g.pod.Containers[i]; c.Name {
		case "envoy":
			g.envoy = c
		case "spendguard":
			g.spendguard = c
		default:
			t.Errorf("unexpected container %q", c.Name)
		}
	}
	require.NotNil(t, g.envoy, "container envoy")
	require.NotNil(t, g.spendguard, "container spendguard")

	var err error
	g.sg, err = parseServeFlags(g.spendguard.Command, g.spendguard.Args)
	require.NoError(t, err, "spendguard's arguments")
	g.ev, err = parseEnvoyFlags(g.envoy.Command, g.envoy.Args)
	require.NoError(t, err, "envoy's arguments")

	g.sgConfig, err = g.mountedFile(g.spendguard, g.sg.config)
	require.NoError(t, err, "spendguard --config")
	envoyYAML, err := g.mountedFile(g.envoy, g.ev.configPath)
	require.NoError(t, err, "envoy --config-path")
	require.NoError(t, envoy.ValidateBootstrapYAML(envoyYAML), "the Envoy bootstrap in the ConfigMap")
	g.bootstrap, err = envoy.ParseBootstrapYAML(envoyYAML)
	require.NoError(t, err)
	return g
}

// mountedFile returns the content of file as container c sees it: a key
// of a ConfigMap volume mounted as a whole directory (no subPath, no items
// remapping) at the file's directory.
func (g *gateway) mountedFile(c *corev1.Container, file string) ([]byte, error) {
	dir, key := path.Split(file)
	dir = path.Clean(dir)
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) != dir {
			continue
		}
		if m.SubPath != "" || m.SubPathExpr != "" {
			return nil, fmt.Errorf("%s is mounted with a subPath, which never sees ConfigMap updates", dir)
		}
		if !m.ReadOnly {
			return nil, fmt.Errorf("%s: mount the configuration read-only", dir)
		}
		v := g.volume(m.Name)
		if v == nil || v.ConfigMap == nil {
			return nil, fmt.Errorf("%s: volume %q is not a ConfigMap", dir, m.Name)
		}
		if len(v.ConfigMap.Items) > 0 {
			return nil, fmt.Errorf("volume %q remaps keys: project the whole ConfigMap", m.Name)
		}
		cm := g.b.configMaps[v.ConfigMap.Name]
		if cm == nil {
			return nil, fmt.Errorf("volume %q: no ConfigMap %q in the manifests", m.Name, v.ConfigMap.Name)
		}
		data, ok := cm.Data[key]
		if !ok {
			return nil, fmt.Errorf("ConfigMap %q has no key %q", cm.Name, key)
		}
		return []byte(data), nil
	}
	return nil, fmt.Errorf("container %s mounts nothing at %s", c.Name, dir)
}

func (g *gateway) volume(name string) *corev1.Volume {
	for i := range g.pod.Volumes {
		if g.pod.Volumes[i].Name == name {
			return &g.pod.Volumes[i]
		}
	}
	return nil
}

// checkSpendguardConfig runs spendguard's configuration loader on the
// mounted file, with ${VAR}s from the container's environment only.
func (g *gateway) checkSpendguardConfig(t *testing.T, wantBackend string) {
	env, err := containerEnv(g.spendguard)
	require.NoError(t, err)
	_, err = config.Loader{LookupEnv: func(name string) (string, bool) {
		v, ok := env[name]
		return v, ok
	}}.Parse(g.sgConfig)
	assert.NoError(t, err, "spendguard check-config %s", g.sg.config)

	var file struct {
		Store struct {
			Backend string `yaml:"backend"`
			Memory  struct {
				SnapshotPath string `yaml:"snapshot_path"`
			} `yaml:"memory"`
		} `yaml:"store"`
	}
	require.NoError(t, yaml.Unmarshal(g.sgConfig, &file))
	assert.Equal(t, wantBackend, file.Store.Backend, "store.backend")
	if wantBackend == "memory" {
		assert.EqualValues(t, 1, ptrOr(g.dep.Spec.Replicas, 1), "the memory store needs exactly one replica")
	}
	if p := file.Store.Memory.SnapshotPath; p != "" && file.Store.Backend == "memory" {
		assert.True(t, g.writableDir(g.spendguard, path.Dir(p)), "store.memory.snapshot_path %s is not on a writable volume", p)
	}

	// A stable name, so that `kubectl apply` updates the mounted file in
	// place and spendguard reloads it (a hashed name would roll the pods).
	v := g.volumeMountedAt(g.spendguard, path.Dir(g.sg.config))
	require.NotNil(t, v)
	assert.Equal(t, "spendguard-config", v.ConfigMap.Name, "spendguard's ConfigMap keeps its name across edits")
	assert.Positive(t, g.sg.reloadInterval, "--reload-interval 0 turns off the hot reload the ConfigMap relies on")
}

func (g *gateway) volumeMountedAt(c *corev1.Container, dir string) *corev1.Volume {
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(dir) {
			return g.volume(m.Name)
		}
	}
	return nil
}

func (g *gateway) writableDir(c *corev1.Container, dir string) bool {
	for _, m := range c.VolumeMounts {
		if path.Clean(m.MountPath) == path.Clean(dir) && !m.ReadOnly && m.SubPath == "" {
			v := g.volume(m.Name)
			return v != nil && (v.EmptyDir != nil || v.PersistentVolumeClaim != nil || v.Ephemeral != nil)
		}
	}
	return false
}

// containerEnv resolves a container's environment the way the kubelet
// will: literal values as written, values from Secrets as a placeholder
// (their Secret is created by the operator, not the manifests).
func containerEnv(c *corev1.Container) (map[string]string, error) {
	if len(c.EnvFrom) > 0 {
		return nil, errors.New("envFrom hides which variables the configuration gets: list them in env")
	}
	env := map[string]string{}
	for _, e := range c.Env {
		switch {
		case e.ValueFrom == nil:
			env[e.Name] = e.Value
		case e.ValueFrom.SecretKeyRef != nil:
			env[e.Name] = "secret:" + e.ValueFrom.SecretKeyRef.Name + "/" + e.ValueFrom.SecretKeyRef.Key
		default:
			env[e.Name] = "from-pod"
		}
	}
	return env, nil
}

// checkEnvoyConfig checks the bootstrap in Envoy's ConfigMap beyond its
// validity: metering as envoy/envoy.yaml does, spendguard reached on its
// --grpc-addr port through loopback, safe free routes, and a name that
// changes with the content (Envoy reads it only at start).
func (g *gateway) checkEnvoyConfig(t *testing.T) {
	httpPort := g.containerPort(t, g.envoy, intstr.FromString("http"))
	assertSameAsReference(t, g.bootstrap, httpPort)

	sgPort := addrPort(t, g.sg.grpcAddr)
	c := envoytest.Cluster(g.bootstrap, "spendguard")
	require.NotNil(t, c)
	assert.Equal(t, []envoytest.Endpoint{{Host: "127.0.0.1", Port: uint32(sgPort)}}, envoytest.Endpoints(c),
		"Envoy must reach the spendguard container of its own pod on --grpc-addr's port")

	hcm := envoytest.HCM(t, envoytest.Listener(g.bootstrap, uint32(httpPort)))
	assert.ElementsMatch(t, []string{"/health", "/v1/models"}, envoytest.FreeRoutes(t, hcm))
	envoytest.AssertSpendguardTakesBufferedBodies(t, g.bootstrap, uint32(httpPort), g.sg.grpcMaxMessageBytes)

	v := g.volumeMountedAt(g.envoy, path.Dir(g.ev.configPath))
	require.NotNil(t, v)
	assert.True(t, hasHashSuffix(v.ConfigMap.Name, "llm-gateway-envoy"),
		"Envoy's ConfigMap %q must carry kustomize's content hash, so an edit rolls the pods", v.ConfigMap.Name)

	assert.Equal(t, "127.0.0.1", g.bootstrap.GetAdmin().GetAddress().GetSocketAddress().GetAddress(),
		"Envoy's admin must stay on loopback")
}

// serveFlags are the `spendguard serve` flags the Deployment passes.
type serveFlags struct {
	config, grpcAddr, adminAddr, logLevel, logFormat string
	shutdownTimeout, reloadInterval                  time.Duration
	grpcMaxMessageBytes                              int
}

// parseServeFlags parses a spendguard container's command line as
// `spendguard serve` does (cmd/spendguard/app). The flags the other
// containers and probes depend on must be given explicitly, not left to
// defaults.
func parseServeFlags(command, args []string) (serveFlags, error) {
	var f serveFlags
	if len(command) > 0 {
		return f, errors.New("keep the image's entrypoint (spendguard): set args, not command")
	}
	if len(args) == 0 || args[0] != "serve" {
		return f, fmt.Errorf("args must start with serve: %q", args)
	}
	fs := flag.NewFlagSet("serve", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.StringVar(&f.config, "config", "", "")
	fs.StringVar(&f.grpcAddr, "grpc-addr", ":50051", "")
	fs.StringVar(&f.adminAddr, "admin-addr", ":9090", "")
	fs.StringVar(&f.logLevel, "log-level", "info", "")
	fs.StringVar(&f.logFormat, "log-format", "json", "")
	fs.DurationVar(&f.shutdownTimeout, "shutdown-timeout", 25*time.Second, "")
	fs.DurationVar(&f.reloadInterval, "reload-interval", time.Minute, "")
	fs.IntVar(&f.grpcMaxMessageBytes, "grpc-max-message-bytes", app.DefaultGRPCMaxMessageBytes, "")
	if err := fs.Parse(args[1:]); err != nil {
		return f, err
	}
	if fs.NArg() > 0 {
		return f, fmt.Errorf("unexpected arguments %q", fs.Args())
	}
	set := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { set[fl.Name] = true })
	var errs []error
	for _, name := range []string{"config", "grpc-addr", "admin-addr", "shutdown-timeout"} {
		if !set[name] {
			errs = append(errs, fmt.Errorf("--%s must be given explicitly", name))
		}
	}
	return f, errors.Join(errs...)
}

// envoyFlags are the Envoy command-line options the Deployment passes.
type envoyFlags struct {
	configPath    string
	concurrency   int
	drainTime     time.Duration
	drainStrategy string
}

// parseEnvoyFlags reads Envoy's options; one the test does not know is an
// error, so that a new option is looked at here.
func parseEnvoyFlags(command, args []string) (envoyFlags, error) {
	var f envoyFlags
	if !slices.Equal(command, []string{"/usr/local/bin/envoy"}) {
		return f, fmt.Errorf("command must be [/usr/local/bin/envoy], not %q", command)
	}
	for i := 0; i < len(args); i += 2 {
		if i+1 == len(args) {
			return f, fmt.Errorf("%s has no value", args[i])
		}
		v := args[i+1]
		var err error
		switch args[i] {
		case "-c", "--config-path":
			f.configPath = v
		case "--concurrency":
			f.concurrency, err = strconv.Atoi(v)
		case "--drain-time-s":
			var s int
			s, err = strconv.Atoi(v)
			f.drainTime = time.Duration(s) * time.Second
		case "--drain-strategy":
			f.drainStrategy = v
		case "-l", "--log-level":
		default:
			return f, fmt.Errorf("unknown Envoy option %s", args[i])
		}
		if err != nil {
			return f, fmt.Errorf("%s: %w", args[i], err)
		}
	}
	if f.configPath == "" || f.concurrency == 0 {
		return f, errors.New("--config-path and --concurrency must be set")
	}
	return f, nil
}

// addrPort returns the port of a listen address such as ":50051".
func addrPort(t *testing.T, addr string) int32 {
	t.Helper()
	_, port, err := net.SplitHostPort(addr)
	require.NoError(t, err, addr)
	n, err := strconv.Atoi(port)
	require.NoError(t, err, addr)
	return int32(n)
}

// containerPort resolves a named or numbered port of a container; a number
// must be declared among its ports too.
func (g *gateway) containerPort(t *testing.T, c *corev1.Container, p intstr.IntOrString) int32 {
	t.Helper()
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort
		}
	}
	t.Fatalf("container %s declares no port %s", c.Name, p.String())
	return 0
}

var sleepRE = regexp.MustCompile(`\bsleep (\d+)\s*$`)

// preStopWait is how long a container's preStop hook keeps it running.
func preStopWait(t *testing.T, c *corev1.Container) time.Duration {
	t.Helper()
	require.NotNil(t, c.Lifecycle, "%s has no lifecycle", c.Name)
	h := c.Lifecycle.PreStop
	require.NotNil(t, h, "%s has no preStop hook", c.Name)
	switch {
	case h.Sleep != nil:
		return time.Duration(h.Sleep.Seconds) * time.Second
	case h.Exec != nil:
		m := sleepRE.FindStringSubmatch(strings.Join(h.Exec.Command, " "))
		require.NotNil(t, m, "%s: the preStop command must end with sleep N", c.Name)
		n, _ := strconv.Atoi(m[1])
		return time.Duration(n) * time.Second
	}
	t.Fatalf("%s: preStop must sleep", c.Name)
	return 0
}

func ptrOr[T any](p *T, def T) T {
	if p == nil {
		return def
	}
	return *p
}

// healthService is the name spendguard's gRPC health service reports the
// ext_proc server under.
var healthService = extprocsvc.ExternalProcessor_ServiceDesc.ServiceName
