package kubernetes

import (
	"math"
	"net"
	"os"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/spendguard/spendguard/envoy/envoytest"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"gopkg.in/yaml.v3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// checkPortsAndProbes checks that every port and probe of the pod is the
// one the process behind it listens on.
func (g *gateway) checkPortsAndProbes(t *testing.T) {
	sg := g.spendguard
	grpcPort := g.containerPort(t, sg, intstr.FromString("grpc"))
	adminPort := g.containerPort(t, sg, intstr.FromString("admin"))
	assert.Equal(t, addrPort(t, g.sg.grpcAddr), grpcPort, "spendguard --grpc-addr and its port grpc")
	assert.Equal(t, addrPort(t, g.sg.adminAddr), adminPort, "spendguard --admin-addr and its port admin")
	for flagName, addr := range map[string]string{"--grpc-addr": g.sg.grpcAddr, "--admin-addr": g.sg.adminAddr} {
		host, _, _ := net.SplitHostPort(addr)
		assert.Contains(t, []string{"", "0.0.0.0", "::"}, host,
			"spendguard %s must listen on the pod IP for the kubelet's probes", flagName)
	}

	// spendguard: the standard gRPC health service on the ext_proc port (it
	// reports NOT_SERVING once SIGTERM arrives), readiness from /readyz.
	for name, p := range map[string]*corev1.Probe{"startupProbe": sg.StartupProbe, "livenessProbe": sg.LivenessProbe} {
		require.NotNil(t, p, "spendguard %s", name)
		require.NotNil(t, p.GRPC, "spendguard %s must use gRPC health", name)
		assert.Equal(t, grpcPort, p.GRPC.Port, "spendguard %s port", name)
		assert.Equal(t, healthService, ptrOr(p.GRPC.Service, ""), "spendguard %s service", name)
	}
	require.NotNil(t, sg.ReadinessProbe)
	require.NotNil(t, sg.ReadinessProbe.HTTPGet, "spendguard readinessProbe must be GET /readyz")
	assert.Equal(t, "/readyz", sg.ReadinessProbe.HTTPGet.Path)
	assert.Equal(t, adminPort, g.containerPort(t, sg, sg.ReadinessProbe.HTTPGet.Port), "spendguard readinessProbe port")

	// Envoy: readiness is the admin's /ready, reached through the probe
	// listener; liveness is that listener accepting connections.
	ev := g.envoy
	rp := ev.ReadinessProbe
	require.NotNil(t, rp)
	require.NotNil(t, rp.HTTPGet, "envoy readinessProbe must be an HTTP GET")
	assert.Equal(t, "/ready", rp.HTTPGet.Path)
	probePort := g.containerPort(t, ev, rp.HTTPGet.Port)
	target, err := readyRouteTarget(t, g.bootstrap, probePort, "/ready")
	require.NoError(t, err)
	admin := g.bootstrap.GetAdmin().GetAddress().GetSocketAddress()
	assert.Equal(t, net.JoinHostPort(admin.GetAddress(), strconv.Itoa(int(admin.GetPortValue()))), target,
		"GET :%d/ready must reach Envoy's admin", probePort)
	require.NotNil(t, ev.LivenessProbe)
	if lp := ev.LivenessProbe; lp.TCPSocket != nil {
		assert.NotNil(t, envoytest.Listener(g.bootstrap, uint32(g.containerPort(t, ev, lp.TCPSocket.Port))), "envoy livenessProbe port has no listener")
	} else {
		require.NotNil(t, lp.HTTPGet, "envoy livenessProbe")
		assert.Equal(t, probePort, g.containerPort(t, ev, lp.HTTPGet.Port))
	}

	// Every declared container port is something Envoy or spendguard
	// listens on.
	for _, cp := range ev.Ports {
		assert.NotNil(t, envoytest.Listener(g.bootstrap, uint32(cp.ContainerPort)), "envoy port %s: no listener on %d", cp.Name, cp.ContainerPort)
	}
	assert.Len(t, sg.Ports, 2, "spendguard listens on --grpc-addr and --admin-addr only")
}

// checkShutdown checks the order and timing of a pod's shutdown: Envoy
// drains first, spendguard outlives it, and the grace period covers
// spendguard's wait plus its --shutdown-timeout, so in-flight requests are
// settled before the kubelet kills anything.
func (g *gateway) checkShutdown(t *testing.T) {
	grace := time.Duration(ptrOr(g.pod.TerminationGracePeriodSeconds, 30)) * time.Second
	envoyWait := preStopWait(t, g.envoy)
	sgWait := preStopWait(t, g.spendguard)

	assert.Greater(t, grace, g.sg.shutdownTimeout, "terminationGracePeriodSeconds must exceed spendguard's --shutdown-timeout")
	assert.Greater(t, grace, sgWait+g.sg.shutdownTimeout,
		"terminationGracePeriodSeconds must exceed spendguard's preStop (%v) + --shutdown-timeout (%v)", sgWait, g.sg.shutdownTimeout)
	assert.Greater(t, sgWait, envoyWait, "spendguard must outlive Envoy's drain, or Envoy fails the requests still in flight")
	assert.Less(t, g.ev.drainTime, envoyWait, "Envoy's --drain-time-s must end within its preStop")
	assert.Equal(t, "immediate", g.ev.drainStrategy)

	// The drain request goes to the admin's address and port.
	cmd := strings.Join(g.envoy.Lifecycle.PreStop.Exec.Command, " ")
	admin := g.bootstrap.GetAdmin().GetAddress().GetSocketAddress()
	assert.Contains(t, cmd, "/dev/tcp/"+admin.GetAddress()+"/"+strconv.Itoa(int(admin.GetPortValue())))
	assert.Contains(t, cmd, "POST /drain_listeners?graceful&inboundonly ")
}

func (g *gateway) checkSecurity(t *testing.T) {
	pod := g.pod
	require.NotNil(t, pod.SecurityContext)
	assert.True(t, ptrOr(pod.SecurityContext.RunAsNonRoot, false), "pod runAsNonRoot")
	require.NotNil(t, pod.SecurityContext.SeccompProfile)
	assert.Equal(t, corev1.SeccompProfileTypeRuntimeDefault, pod.SecurityContext.SeccompProfile.Type)
	assert.False(t, ptrOr(pod.AutomountServiceAccountToken, true), "no Kubernetes API token in the pod")
	if sa := pod.ServiceAccountName; sa != "" {
		assert.Contains(t, g.b.serviceAccounts, sa, "serviceAccountName %q is not in the manifests", sa)
	}
	assert.False(t, pod.HostNetwork || pod.HostPID || pod.HostIPC)

	for _, c := range pod.Containers {
		sc := c.SecurityContext
		require.NotNil(t, sc, "%s securityContext", c.Name)
		assert.True(t, ptrOr(sc.RunAsNonRoot, true), "%s runAsNonRoot", c.Name)
		// A numeric non-zero user: the kubelet can only enforce runAsNonRoot
		// for an image whose USER is a name if the UID is given here.
		assert.NotZero(t, ptrOr(sc.RunAsUser, 0), "%s runAsUser", c.Name)
		assert.True(t, ptrOr(sc.ReadOnlyRootFilesystem, false), "%s readOnlyRootFilesystem", c.Name)
		assert.False(t, ptrOr(sc.AllowPrivilegeEscalation, true), "%s allowPrivilegeEscalation", c.Name)
		assert.False(t, ptrOr(sc.Privileged, false), "%s privileged", c.Name)
		require.NotNil(t, sc.Capabilities, "%s capabilities", c.Name)
		assert.Equal(t, []corev1.Capability{"ALL"}, sc.Capabilities.Drop, "%s drops all capabilities", c.Name)
		assert.Empty(t, sc.Capabilities.Add, "%s adds capabilities", c.Name)
		assert.NotContains(t, c.Image, ":latest", "%s: pin the image", c.Name)
	}
}

func (g *gateway) checkResources(t *testing.T) {
	for _, c := range g.pod.Containers {
		for _, name := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			req, okReq := c.Resources.Requests[name]
			lim, okLim := c.Resources.Limits[name]
			if assert.True(t, okReq, "%s requests %s", c.Name, name) && assert.True(t, okLim, "%s limits %s", c.Name, name) {
				assert.LessOrEqual(t, req.Cmp(lim), 0, "%s: %s request above its limit", c.Name, name)
			}
		}
	}
	// Envoy's worker threads match the CPUs it may use.
	cpu := g.envoy.Resources.Limits[corev1.ResourceCPU]
	assert.Equal(t, int(math.Ceil(float64(cpu.MilliValue())/1000)), g.ev.concurrency, "envoy --concurrency and its CPU limit")

	// Go's soft memory limit is below the container's hard one.
	env, err := containerEnv(g.spendguard)
	require.NoError(t, err)
	if v, ok := env["GOMEMLIMIT"]; ok {
		soft, err := parseGoMemLimit(v)
		require.NoError(t, err)
		hard := g.spendguard.Resources.Limits[corev1.ResourceMemory]
		assert.Less(t, soft, hard.Value(), "GOMEMLIMIT %s is not below the memory limit %s", v, hard.String())
	}
	// A GC told to wait longer (GOGC above 100, or off) needs the soft
	// limit to stop the heap short of the container's.
	if v, ok := env["GOGC"]; ok {
		if n, err := strconv.Atoi(v); v == "off" || err == nil && n > 100 {
			assert.Contains(t, env, "GOMEMLIMIT", "GOGC=%s without GOMEMLIMIT can grow the heap to the container's limit", v)
		} else {
			require.NoError(t, err, "GOGC=%q", v)
		}
	}
}

// parseGoMemLimit reads GOMEMLIMIT's syntax: bytes with an optional B,
// KiB, MiB, GiB or TiB suffix.
func parseGoMemLimit(s string) (int64, error) {
	for i, suffix := range []string{"TiB", "GiB", "MiB", "KiB"} {
		if n, ok := strings.CutSuffix(s, suffix); ok {
			v, err := strconv.ParseInt(n, 10, 64)
			return v << (10 * (4 - i)), err
		}
	}
	return strconv.ParseInt(strings.TrimSuffix(s, "B"), 10, 64)
}

// checkSelectors checks that the Deployment, Service, PodDisruptionBudget
// and NetworkPolicy all select the gateway's pods, and only through ports
// that exist.
func (g *gateway) checkSelectors(t *testing.T) {
	podLabels := labels.Set(g.dep.Spec.Template.Labels)
	sel := g.dep.Spec.Selector
	require.NotNil(t, sel)
	assert.Empty(t, sel.MatchExpressions)
	assert.True(t, labels.SelectorFromSet(sel.MatchLabels).Matches(podLabels), "Deployment selector")

	require.Len(t, g.b.services, 1)
	svc := g.b.services[0]
	assert.True(t, labels.SelectorFromSet(svc.Spec.Selector).Matches(podLabels), "Service selector")
	var servicePorts []string
	for _, p := range svc.Spec.Ports {
		servicePorts = append(servicePorts, p.Name)
		assert.NotZero(t, g.anyContainerPort(p.TargetPort), "Service port %s: no container port %s", p.Name, p.TargetPort.String())
	}
	assert.Contains(t, servicePorts, "http")
	assert.Equal(t, g.containerPort(t, g.envoy, intstr.FromString("http")), g.anyContainerPort(svc.Spec.Ports[0].TargetPort),
		"the Service's first port is Envoy's traffic port")

	require.Len(t, g.b.pdbs, 1)
	pdb := g.b.pdbs[0]
	require.NotNil(t, pdb.Spec.Selector)
	assert.True(t, labels.SelectorFromSet(pdb.Spec.Selector.MatchLabels).Matches(podLabels), "PodDisruptionBudget selector")
	require.NotNil(t, pdb.Spec.MaxUnavailable, "use maxUnavailable: minAvailable would block node drains of a single replica")
	assert.Equal(t, intstr.FromInt32(1), *pdb.Spec.MaxUnavailable)

	require.Len(t, g.b.networkPolicies, 1)
	np := g.b.networkPolicies[0]
	assert.True(t, labels.SelectorFromSet(np.Spec.PodSelector.MatchLabels).Matches(podLabels), "NetworkPolicy selector")
	grpcPort := g.containerPort(t, g.spendguard, intstr.FromString("grpc"))
	for _, rule := range np.Spec.Ingress {
		require.NotEmpty(t, rule.Ports, "an ingress rule without ports opens the ext_proc port to every pod")
		for _, p := range rule.Ports {
			require.NotNil(t, p.Port)
			n := g.anyContainerPort(*p.Port)
			assert.NotZero(t, n, "NetworkPolicy port %s is no container port", p.Port.String())
			assert.NotEqual(t, grpcPort, n, "the ext_proc port must stay closed to other pods")
		}
	}
}

// anyContainerPort resolves a port against all containers of the pod; 0
// when none declares it.
func (g *gateway) anyContainerPort(p intstr.IntOrString) int32 {
	for _, c := range g.pod.Containers {
		for _, cp := range c.Ports {
			if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
				return cp.ContainerPort
			}
		}
	}
	return 0
}

// TestRedisOverlayConfigMatchesBase keeps the overlay's spendguard.yaml
// the base's with another store: budgets edited in one file only would
// make the two deployments charge differently.
func TestRedisOverlayConfigMatchesBase(t *testing.T) {
	sections := func(file string) map[string]any {
		data, err := os.ReadFile(file)
		require.NoError(t, err)
		var m map[string]any
		require.NoError(t, yaml.Unmarshal(data, &m))
		return m
	}
	base, overlay := sections("base/spendguard.yaml"), sections("overlays/redis/spendguard.yaml")
	require.Contains(t, overlay, "store")
	delete(base, "store")
	delete(overlay, "store")
	assert.Equal(t, base, overlay)
}

func TestParseGoMemLimit(t *testing.T) {
	for in, want := range map[string]int64{"230MiB": 230 << 20, "1GiB": 1 << 30, "4096": 4096, "10B": 10, "3KiB": 3072} {
		got, err := parseGoMemLimit(in)
		require.NoError(t, err, in)
		assert.Equal(t, want, got, in)
	}
	_, err := parseGoMemLimit("1Gi")
	assert.Error(t, err)
	q := resource.MustParse("256Mi")
	assert.Equal(t, int64(256<<20), q.Value())
}

// TestSleepRE pins how preStopWait reads an exec hook.
func TestSleepRE(t *testing.T) {
	assert.Equal(t, "30", sleepRE.FindStringSubmatch("x; sleep 30")[1])
	assert.Nil(t, sleepRE.FindStringSubmatch("sleep 30; other"))
	assert.Nil(t, regexp.MustCompile(sleepRE.String()).FindStringSubmatch("nosleep"))
}
