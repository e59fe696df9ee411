package kubernetes

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"
	"sigs.k8s.io/yaml"
)

// bundle is the output of one kustomization, decoded.
type bundle struct {
	deployments     []*appsv1.Deployment
	services        []*corev1.Service
	configMaps      map[string]*corev1.ConfigMap
	pdbs            []*policyv1.PodDisruptionBudget
	networkPolicies []*networkingv1.NetworkPolicy
	serviceAccounts map[string]*corev1.ServiceAccount
}

// render runs `kubectl kustomize dir` and decodes its output strictly. A
// missing kubectl fails the test: the manifests must not go unchecked.
func render(t *testing.T, dir string) *bundle {
	t.Helper()
	kubectl, err := exec.LookPath("kubectl")
	if err != nil {
		t.Fatalf("kubectl (with its built-in kustomize) is needed to render %s: %v", dir, err)
	}
	var stdout, stderr bytes.Buffer
	cmd := exec.Command(kubectl, "kustomize", dir)
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil {
		t.Fatalf("kubectl kustomize %s: %v\n%s", dir, err, stderr.String())
	}
	b, err := decodeAll(stdout.Bytes())
	if err != nil {
		t.Fatalf("kubectl kustomize %s: %v", dir, err)
	}
	return b
}

// decodeAll decodes a multi-document YAML stream. Every document must be a
// kind listed here, and is decoded strictly: an unknown or duplicate field
// anywhere is an error, as `kubectl apply --validate=strict` would say.
func decodeAll(data []byte) (*bundle, error) {
	b := &bundle{configMaps: map[string]*corev1.ConfigMap{}, serviceAccounts: map[string]*corev1.ServiceAccount{}}
	r := k8syaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var errs []error
	for i := 0; ; i++ {
		doc, err := r.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i, err)
		}
		if len(bytes.TrimSpace(doc)) == 0 {
			continue
		}
		if err := b.add(doc); err != nil {
			errs = append(errs, fmt.Errorf("document %d: %w", i, err))
		}
	}
	return b, errors.Join(errs...)
}

func (b *bundle) add(doc []byte) error {
	var tm metav1.TypeMeta
	if err := yaml.Unmarshal(doc, &tm); err != nil {
		return err
	}
	name := func(m metav1.ObjectMeta) string { return tm.Kind + "/" + m.Name }
	strict := func(obj any) error { return yaml.UnmarshalStrict(doc, obj) }
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		var o appsv1.Deployment
		if err := strict(&o); err != nil {
			return fmt.Errorf("%s: %w", name(o.ObjectMeta), err)
		}
		b.deployments = append(b.deployments, &o)
	case "v1 Service":
		var o corev1.Service
		if err := strict(&o); err != nil {
			return fmt.Errorf("%s: %w", name(o.ObjectMeta), err)
		}
		b.services = append(b.services, &o)
	case "v1 ConfigMap":
		var o corev1.ConfigMap
		if err := strict(&o); err != nil {
			return fmt.Errorf("%s: %w", name(o.ObjectMeta), err)
		}
		b.configMaps[o.Name] = &o
	case "policy/v1 PodDisruptionBudget":
		var o policyv1.PodDisruptionBudget
		if err := strict(&o); err != nil {
			return fmt.Errorf("%s: %w", name(o.ObjectMeta), err)
		}
		b.pdbs = append(b.pdbs, &o)
	case "networking.k8s.io/v1 NetworkPolicy":
		var o networkingv1.NetworkPolicy
		if err := strict(&o); err != nil {
			return fmt.Errorf("%s: %w", name(o.ObjectMeta), err)
		}
		b.networkPolicies = append(b.networkPolicies, &o)
	case "v1 ServiceAccount":
		var o corev1.ServiceAccount
		if err := strict(&o); err != nil {
			return fmt.Errorf("%s: %w", name(o.ObjectMeta), err)
		}
		b.serviceAccounts[o.Name] = &o
	default:
		return fmt.Errorf("unexpected object %s %s: add its type to decodeAll", tm.APIVersion, tm.Kind)
	}
	return nil
}

func TestDecodeIsStrict(t *testing.T) {
	for name, doc := range map[string]string{
		"unknown field": `
apiVersion: apps/v1
kind: Deployment
metadata: {name: x}
spec:
  replica: 2
`,
		"unknown nested field": `
apiVersion: v1
kind: Service
metadata: {name: x}
spec:
  ports: [{port: 80, targetPortt: http}]
`,
		"duplicate field": `
apiVersion: v1
kind: ConfigMap
metadata: {name: x}
data: {a: "1"}
data: {b: "2"}
`,
		"wrong type": `
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: x}
spec: {maxUnavailable: [1]}
`,
		"unknown kind": `
apiVersion: v1
kind: Secret
metadata: {name: x}
`,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := decodeAll([]byte(doc))
			if err == nil {
				t.Fatal("decoded without error")
			}
		})
	}
	t.Run("valid", func(t *testing.T) {
		b, err := decodeAll([]byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {a: \"1\"}\n---\n" +
			"apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n"))
		if err != nil {
			t.Fatal(err)
		}
		if b.configMaps["x"].Data["a"] != "1" || b.serviceAccounts["sa"] == nil {
			t.Fatalf("decoded %+v", b)
		}
	})
}

// hasHashSuffix reports whether name is base plus kustomize's content hash
// ("-" and 10 characters).
func hasHashSuffix(name, base string) bool {
	rest, ok := strings.CutPrefix(name, base+"-")
	return ok && len(rest) == 10
}
