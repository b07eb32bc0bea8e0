package deploy_test

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlyhmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/anypb"
	meshv1alpha1 "istio.io/api/mesh/v1alpha1"
	securityv1beta1 "istio.io/api/security/v1beta1"
	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
	"sigs.k8s.io/yaml"

	"github.com/cognito-authz/cognito-authz/pkg/config"

	// Registered for the Any types in the Envoy configs.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

const (
	namespace    = "cognito-authz"
	serviceName  = "cognito-authz"
	configKey    = "config.yaml"
	configDir    = "/etc/cognito-authz"
	authzService = "envoy.service.auth.v3.Authorization"
	grpcProvider = "cognito-authz-grpc"
	httpProvider = "cognito-authz-http"
)

var kustomizations = []string{"kubernetes/base", "kubernetes/overlays/example"}

// manifests is one kustomize build, every resource decoded strictly into its k8s.io/api type.
type manifests struct {
	Namespace      *corev1.Namespace
	ServiceAccount *corev1.ServiceAccount
	Deployment     *appsv1.Deployment
	Service        *corev1.Service
	ConfigMap      *corev1.ConfigMap
	HPA            *autoscalingv2.HorizontalPodAutoscaler
	PDB            *policyv1.PodDisruptionBudget
	NetworkPolicy  *networkingv1.NetworkPolicy
}

// strict decodes YAML into v, rejecting fields v's type does not have (a misspelt or misplaced
// field that the API server would drop or refuse).
func strict(t *testing.T, data []byte, v any) {
	t.Helper()
	if err := yaml.UnmarshalStrict(data, v); err != nil {
		t.Fatalf("decode %T: %v\n%s", v, err, data)
	}
}

// resource is one kustomize output: its kind and YAML.
type resource struct {
	kind string
	yaml []byte
}

// kustomized memoises kustomize runs by directory: several tests build the same overlays, and a build is
// the slow part. Each caller decodes its own copy, so no test can change what another sees.
var kustomized sync.Map // dir → func() ([]resource, error)

func kustomize(dir string) ([]resource, error) {
	f, _ := kustomized.LoadOrStore(dir, sync.OnceValues(func() ([]resource, error) {
		abs, err := filepath.Abs(dir)
		if err != nil {
			return nil, err
		}
		rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
		if err != nil {
			return nil, fmt.Errorf("kustomize build %s: %w", dir, err)
		}
		var out []resource
		for _, r := range rm.Resources() {
			data, err := r.AsYAML()
			if err != nil {
				return nil, err
			}
			out = append(out, resource{kind: r.GetKind(), yaml: data})
		}
		return out, nil
	}))
	return f.(func() ([]resource, error))()
}

// build runs kustomize on dir (relative to this package), once per test binary, and decodes every
// resource by kind.
func build(t *testing.T, dir string) manifests {
	t.Helper()
	rs, err := kustomize(dir)
	if err != nil {
		t.Fatal(err)
	}
	var m manifests
	for _, r := range rs {
		data := r.yaml
		var dst any
		switch kind := r.kind; kind {
		case "Namespace":
			m.Namespace = &corev1.Namespace{}
			dst = m.Namespace
		case "ServiceAccount":
			m.ServiceAccount = &corev1.ServiceAccount{}
			dst = m.ServiceAccount
		case "Deployment":
			m.Deployment = &appsv1.Deployment{}
			dst = m.Deployment
		case "Service":
			m.Service = &corev1.Service{}
			dst = m.Service
		case "ConfigMap":
			m.ConfigMap = &corev1.ConfigMap{}
			dst = m.ConfigMap
		case "HorizontalPodAutoscaler":
			m.HPA = &autoscalingv2.HorizontalPodAutoscaler{}
			dst = m.HPA
		case "PodDisruptionBudget":
			m.PDB = &policyv1.PodDisruptionBudget{}
			dst = m.PDB
		case "NetworkPolicy":
			m.NetworkPolicy = &networkingv1.NetworkPolicy{}
			dst = m.NetworkPolicy
		default:
			t.Fatalf("%s: unexpected kind %q (add it to build)", dir, kind)
		}
		strict(t, data, dst)
	}
	for name, got := range map[string]bool{
		"Namespace": m.Namespace != nil, "ServiceAccount": m.ServiceAccount != nil, "Deployment": m.Deployment != nil,
		"Service": m.Service != nil, "ConfigMap": m.ConfigMap != nil, "HorizontalPodAutoscaler": m.HPA != nil,
		"PodDisruptionBudget": m.PDB != nil, "NetworkPolicy": m.NetworkPolicy != nil,
	} {
		if !got {
			t.Fatalf("%s: no %s", dir, name)
		}
	}
	return m
}

func (m manifests) container(t *testing.T) corev1.Container {
	t.Helper()
	cs := m.Deployment.Spec.Template.Spec.Containers
	if len(cs) != 1 {
		t.Fatalf("got %d containers, want 1", len(cs))
	}
	return cs[0]
}

// serviceConfig parses the ConfigMap's config.yaml with the service's own parser.
func (m manifests) serviceConfig(t *testing.T) *config.Config {
	t.Helper()
	data, ok := m.ConfigMap.Data[configKey]
	if !ok {
		t.Fatalf("ConfigMap %s has no %s", m.ConfigMap.Name, configKey)
	}
	c, err := config.Parse([]byte(data))
	if err != nil {
		t.Fatalf("config.Parse(ConfigMap %s): %v", m.ConfigMap.Name, err)
	}
	return c
}

func TestStrictDecodeRejectsUnknownFields(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		yaml string
		into any
	}{
		{name: "misplaced_probe_field", into: &appsv1.Deployment{}, yaml: `
apiVersion: apps/v1
kind: Deployment
spec:
  template:
    spec:
      containers:
      - name: c
        readinessProbe: {grpc: {port: 9001, servce: x}}
`},
		{name: "app_protocol_misspelt", into: &corev1.Service{}, yaml: `
apiVersion: v1
kind: Service
spec:
  ports: [{name: grpc, port: 9001, appProtocl: grpc}]
`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if err := yaml.UnmarshalStrict([]byte(tt.yaml), tt.into); err == nil {
				t.Fatalf("UnmarshalStrict(%T) = nil error, want unknown field", tt.into)
			}
		})
	}
}

func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			m := build(t, dir)
			c := m.container(t)
			pod := m.Deployment.Spec.Template.Spec
			podLabels := labels.Set(m.Deployment.Spec.Template.Labels)

			t.Run("namespace", func(t *testing.T) {
				for _, obj := range []metav1.Object{m.Deployment, m.Service, m.ConfigMap, m.HPA, m.PDB, m.NetworkPolicy, m.ServiceAccount} {
					if obj.GetNamespace() != namespace {
						t.Errorf("%s has namespace %q, want %q", obj.GetName(), obj.GetNamespace(), namespace)
					}
				}
				if m.Namespace.Name != namespace {
					t.Errorf("Namespace = %q, want %q", m.Namespace.Name, namespace)
				}
			})
			t.Run("replicas", func(t *testing.T) {
				if r := m.Deployment.Spec.Replicas; r == nil || *r != 2 {
					t.Errorf("replicas = %v, want 2", r)
				}
				sel, err := metav1.LabelSelectorAsSelector(m.Deployment.Spec.Selector)
				if err != nil || !sel.Matches(podLabels) {
					t.Errorf("Deployment selector %v does not match pod labels %v (%v)", m.Deployment.Spec.Selector, podLabels, err)
				}
			})
			t.Run("probes", func(t *testing.T) {
				rp := c.ReadinessProbe
				if rp == nil || rp.GRPC == nil {
					t.Fatalf("readinessProbe = %+v, want gRPC", rp)
				}
				if rp.GRPC.Port != 9001 || rp.GRPC.Service == nil || *rp.GRPC.Service != authzService {
					t.Errorf("readinessProbe.grpc = %+v, want port 9001 service %s", rp.GRPC, authzService)
				}
				// Liveness must not depend on Cognito: gRPC health ("" included) is NOT_SERVING until
				// keys load, and a Cognito outage must not restart every replica.
				lp := c.LivenessProbe
				if lp == nil || lp.HTTPGet == nil || lp.HTTPGet.Path != "/healthz" || lp.HTTPGet.Port.IntValue() != 9090 {
					t.Errorf("livenessProbe = %+v, want httpGet /healthz on 9090", lp)
				}
			})
			t.Run("security_context", func(t *testing.T) {
				sc := c.SecurityContext
				if sc == nil {
					t.Fatal("no container securityContext")
				}
				psc := pod.SecurityContext
				checks := []struct {
					name string
					ok   bool
				}{
					{"runAsNonRoot", sc.RunAsNonRoot != nil && *sc.RunAsNonRoot},
					{"runAsUser 65532", sc.RunAsUser != nil && *sc.RunAsUser == 65532},
					{"readOnlyRootFilesystem", sc.ReadOnlyRootFilesystem != nil && *sc.ReadOnlyRootFilesystem},
					{"allowPrivilegeEscalation false", sc.AllowPrivilegeEscalation != nil && !*sc.AllowPrivilegeEscalation},
					{"capabilities drop ALL", sc.Capabilities != nil && slices.Equal(sc.Capabilities.Drop, []corev1.Capability{"ALL"}) && len(sc.Capabilities.Add) == 0},
					{"seccomp RuntimeDefault", psc != nil && psc.SeccompProfile != nil && psc.SeccompProfile.Type == corev1.SeccompProfileTypeRuntimeDefault},
					{"pod runAsNonRoot", psc != nil && psc.RunAsNonRoot != nil && *psc.RunAsNonRoot},
					{"no service account token", pod.AutomountServiceAccountToken != nil && !*pod.AutomountServiceAccountToken},
				}
				for _, ch := range checks {
					if !ch.ok {
						t.Errorf("securityContext: want %s", ch.name)
					}
				}
			})
			t.Run("resources", func(t *testing.T) {
				for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
					req, okReq := c.Resources.Requests[r]
					lim, okLim := c.Resources.Limits[r]
					if !okReq || !okLim {
						t.Errorf("%s: want request and limit, got %v / %v", r, c.Resources.Requests, c.Resources.Limits)
						continue
					}
					if req.Cmp(lim) > 0 {
						t.Errorf("%s request %s > limit %s", r, req.String(), lim.String())
					}
				}
				var gomaxprocs bool
				for _, e := range c.Env {
					if e.Name == "GOMAXPROCS" && e.ValueFrom != nil && e.ValueFrom.ResourceFieldRef != nil &&
						e.ValueFrom.ResourceFieldRef.Resource == "limits.cpu" {
						gomaxprocs = true
					}
				}
				if !gomaxprocs {
					t.Error("GOMAXPROCS is not set from limits.cpu")
				}
			})
			t.Run("spread", func(t *testing.T) {
				tsc := pod.TopologySpreadConstraints
				if len(tsc) == 0 {
					t.Fatal("no topologySpreadConstraints")
				}
				for _, c := range tsc {
					sel, err := metav1.LabelSelectorAsSelector(c.LabelSelector)
					if err != nil || !sel.Matches(podLabels) {
						t.Errorf("topologySpreadConstraint %s selector does not match the pods", c.TopologyKey)
					}
				}
			})
			t.Run("config_mount", func(t *testing.T) {
				var vol string
				for _, vm := range c.VolumeMounts {
					if vm.MountPath == configDir {
						vol = vm.Name
					}
				}
				var cm string
				for _, v := range pod.Volumes {
					if v.Name == vol && v.ConfigMap != nil {
						cm = v.ConfigMap.Name
					}
				}
				if cm != m.ConfigMap.Name {
					t.Errorf("%s is mounted from ConfigMap %q, want %q (the generated one)", configDir, cm, m.ConfigMap.Name)
				}
				if want := []string{"serve", "-config", configDir + "/" + configKey}; !slices.Equal(c.Args, want) {
					t.Errorf("args = %q, want %q", c.Args, want)
				}
			})
			t.Run("service", func(t *testing.T) {
				if !labels.SelectorFromSet(m.Service.Spec.Selector).Matches(podLabels) {
					t.Errorf("Service selector %v does not match pod labels", m.Service.Spec.Selector)
				}
				p := servicePort(t, m.Service, "grpc")
				if got := ptr.Deref(p.AppProtocol, ""); got != "grpc" {
					t.Errorf("Service port grpc appProtocol = %q, want grpc (Istio and Gateway API pick HTTP/2 by it)", got)
				}
			})
			t.Run("hpa", func(t *testing.T) {
				ref := m.HPA.Spec.ScaleTargetRef
				if diff := cmp.Diff(autoscalingv2.CrossVersionObjectReference{APIVersion: "apps/v1", Kind: "Deployment", Name: m.Deployment.Name}, ref); diff != "" {
					t.Errorf("HPA scaleTargetRef mismatch (-want +got):\n%s", diff)
				}
				if m.HPA.Spec.MinReplicas == nil || *m.HPA.Spec.MinReplicas < 2 || m.HPA.Spec.MaxReplicas < *m.HPA.Spec.MinReplicas {
					t.Errorf("HPA replicas = %v..%d, want min >= 2 <= max", m.HPA.Spec.MinReplicas, m.HPA.Spec.MaxReplicas)
				}
				var cpu bool
				for _, mt := range m.HPA.Spec.Metrics {
					if mt.Resource != nil && mt.Resource.Name == corev1.ResourceCPU && mt.Resource.Target.AverageUtilization != nil {
						cpu = true
					}
				}
				if !cpu {
					t.Error("HPA has no CPU utilization target")
				}
			})
			t.Run("pdb", func(t *testing.T) {
				sel, err := metav1.LabelSelectorAsSelector(m.PDB.Spec.Selector)
				if err != nil || !sel.Matches(podLabels) {
					t.Errorf("PDB selector %v does not match pod labels %v", m.PDB.Spec.Selector, podLabels)
				}
				if m.PDB.Spec.MinAvailable == nil || m.PDB.Spec.MinAvailable.IntValue() != 1 {
					t.Errorf("PDB minAvailable = %v, want 1", m.PDB.Spec.MinAvailable)
				}
			})
			t.Run("network_policy", func(t *testing.T) {
				np := m.NetworkPolicy
				sel, err := metav1.LabelSelectorAsSelector(&np.Spec.PodSelector)
				if err != nil || !sel.Matches(podLabels) {
					t.Errorf("NetworkPolicy podSelector does not match the pods")
				}
				for _, port := range []int{9001, 9002, 9090} {
					if !ingressAllows(np, port) {
						t.Errorf("NetworkPolicy does not admit port %d", port)
					}
				}
				if !egressAllows(np, 443) || !egressAllows(np, 53) {
					t.Error("NetworkPolicy egress must allow DNS (53) and HTTPS (443, JWKS)")
				}
			})
		})
	}
}

func servicePort(t *testing.T, s *corev1.Service, name string) corev1.ServicePort {
	t.Helper()
	for _, p := range s.Spec.Ports {
		if p.Name == name {
			return p
		}
	}
	t.Fatalf("Service %s has no port %q", s.Name, name)
	return corev1.ServicePort{}
}

func containerPort(t *testing.T, c corev1.Container, name string) int32 {
	t.Helper()
	for _, p := range c.Ports {
		if p.Name == name {
			return p.ContainerPort
		}
	}
	t.Fatalf("container has no port %q", name)
	return 0
}

func ingressAllows(np *networkingv1.NetworkPolicy, port int) bool {
	for _, r := range np.Spec.Ingress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.IntValue() == port && len(r.From) > 0 {
				return true
			}
		}
	}
	return false
}

func egressAllows(np *networkingv1.NetworkPolicy, port int) bool {
	for _, r := range np.Spec.Egress {
		for _, p := range r.Ports {
			if p.Port != nil && p.Port.IntValue() == port {
				return true
			}
		}
	}
	return false
}

// k8sObject is the envelope of a custom resource: known top-level fields, spec decoded separately.
type k8sObject struct {
	metav1.TypeMeta `json:",inline"`
	Metadata        metav1.ObjectMeta `json:"metadata"`
	Spec            json.RawMessage   `json:"spec"`
}

// authorizationPolicy decodes an Istio AuthorizationPolicy: envelope strictly, spec with protojson
// (unknown fields rejected), as istiod's CRD validation would.
func authorizationPolicy(t *testing.T, path string) (k8sObject, *securityv1beta1.AuthorizationPolicy) {
	t.Helper()
	var obj k8sObject
	strict(t, readFile(t, path), &obj)
	if obj.APIVersion != "security.istio.io/v1" || obj.Kind != "AuthorizationPolicy" {
		t.Fatalf("%s: %s %s, want security.istio.io/v1 AuthorizationPolicy", path, obj.APIVersion, obj.Kind)
	}
	var spec securityv1beta1.AuthorizationPolicy
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(obj.Spec, &spec); err != nil {
		t.Fatalf("%s: spec: %v", path, err)
	}
	return obj, &spec
}

// meshConfig decodes deploy/istio/mesh-config.yaml into Istio's MeshConfig, unknown fields rejected.
func meshConfig(t *testing.T) *meshv1alpha1.MeshConfig {
	t.Helper()
	js, err := yaml.YAMLToJSON(readFile(t, "istio/mesh-config.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	var mc meshv1alpha1.MeshConfig
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &mc); err != nil {
		t.Fatalf("mesh-config.yaml: %v", err)
	}
	return &mc
}

func provider(t *testing.T, mc *meshv1alpha1.MeshConfig, name string) *meshv1alpha1.MeshConfig_ExtensionProvider {
	t.Helper()
	for _, p := range mc.GetExtensionProviders() {
		if p.GetName() == name {
			return p
		}
	}
	t.Fatalf("mesh-config.yaml has no extension provider %q", name)
	return nil
}

func readFile(t *testing.T, path string) []byte {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return data
}

func TestIstioMeshConfig(t *testing.T) {
	t.Parallel()
	mc := meshConfig(t)
	g := provider(t, mc, grpcProvider).GetEnvoyExtAuthzGrpc()
	h := provider(t, mc, httpProvider).GetEnvoyExtAuthzHttp()
	if g == nil || h == nil {
		t.Fatalf("providers: grpc=%v http=%v, want envoyExtAuthzGrpc and envoyExtAuthzHttp", g, h)
	}
	for _, p := range []struct {
		name     string
		timeout  float64 // seconds
		set      bool
		failOpen bool
		status   string
	}{
		{name: grpcProvider, set: g.GetTimeout() != nil, timeout: g.GetTimeout().AsDuration().Seconds(), failOpen: g.GetFailOpen(), status: g.GetStatusOnError()},
		{name: httpProvider, set: h.GetTimeout() != nil, timeout: h.GetTimeout().AsDuration().Seconds(), failOpen: h.GetFailOpen(), status: h.GetStatusOnError()},
	} {
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			if !p.set || p.timeout <= 0 || p.timeout > 1 {
				t.Errorf("timeout = %vs (set %v), want set and in (0, 1s]: Istio's default is 600s", p.timeout, p.set)
			}
			if p.failOpen {
				t.Error("failOpen = true: an unreachable authz service would let every request through")
			}
			if p.status != "503" {
				t.Errorf("statusOnError = %q, want \"503\"", p.status)
			}
		})
	}
}

func TestIstioAuthorizationPolicies(t *testing.T) {
	t.Parallel()
	mc := meshConfig(t)
	var providers []string
	for _, p := range mc.GetExtensionProviders() {
		providers = append(providers, p.GetName())
	}
	tests := []struct {
		name          string
		path          string
		wantNamespace string
		wantSelector  map[string]string
	}{
		{name: "workload", path: "istio/authorizationpolicy-workload.yaml", wantNamespace: "orders", wantSelector: map[string]string{"app": "orders"}},
		{name: "gateway", path: "istio/authorizationpolicy-gateway.yaml", wantNamespace: "istio-system", wantSelector: map[string]string{"istio": "ingressgateway"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			obj, spec := authorizationPolicy(t, tt.path)
			if obj.Metadata.Namespace != tt.wantNamespace {
				t.Errorf("namespace = %q, want %q", obj.Metadata.Namespace, tt.wantNamespace)
			}
			if diff := cmp.Diff(tt.wantSelector, spec.GetSelector().GetMatchLabels()); diff != "" {
				t.Errorf("selector mismatch (-want +got):\n%s", diff)
			}
			if spec.GetAction() != securityv1beta1.AuthorizationPolicy_CUSTOM {
				t.Errorf("action = %v, want CUSTOM", spec.GetAction())
			}
			if name := spec.GetProvider().GetName(); !slices.Contains(providers, name) {
				t.Errorf("provider %q is not in mesh-config.yaml's extensionProviders %v", name, providers)
			}
			// A CUSTOM policy with no rules matches nothing: nothing would be checked.
			if len(spec.GetRules()) == 0 {
				t.Error("no rules: a CUSTOM policy without rules selects no request")
			}
		})
	}
}

// envoyBootstrap decodes an Envoy config (fully validated by envoy/envoy_test.go).
func envoyBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	js, err := yaml.YAMLToJSON(readFile(t, path))
	if err != nil {
		t.Fatal(err)
	}
	var b bootstrapv3.Bootstrap
	if err := protojson.Unmarshal(js, &b); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return &b
}

func unpack[T proto.Message](t *testing.T, a *anypb.Any) T {
	t.Helper()
	m, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{})
	if err != nil {
		t.Fatal(err)
	}
	v, ok := m.(T)
	if !ok {
		t.Fatalf("typed_config is %s", a.GetTypeUrl())
	}
	return v
}

// envoyFacts is what the cross-check needs from one Envoy config.
type envoyFacts struct {
	authzHost, upstreamHost       string
	authzPort, upstreamPort       uint32
	healthPort                    uint32 // health-check port override, 0 if none
	grpcHealthService             string
	strippedPrefix                string
	mutationAllow                 *regexp.Regexp
	allowedUpstream               []string // HTTP mode: prefixes/exact names copied to the upstream
	allowedRequest, allowedClient []string
}

func envoyConfig(t *testing.T, path string) envoyFacts {
	t.Helper()
	b := envoyBootstrap(t, path)
	var f envoyFacts
	var m *hcmv3.HttpConnectionManager
	for _, fl := range b.GetStaticResources().GetListeners()[0].GetFilterChains()[0].GetFilters() {
		if fl.GetName() == "envoy.filters.network.http_connection_manager" {
			m = unpack[*hcmv3.HttpConnectionManager](t, fl.GetTypedConfig())
		}
	}
	for _, e := range m.GetEarlyHeaderMutationExtensions() {
		for _, mu := range unpack[*earlyhmv3.HeaderMutation](t, e.GetTypedConfig()).GetMutations() {
			f.strippedPrefix = mu.GetRemoveOnMatch().GetKeyMatcher().GetPrefix()
		}
	}
	var authzCluster string
	for _, hf := range m.GetHttpFilters() {
		if hf.GetName() != "envoy.filters.http.ext_authz" {
			continue
		}
		ea := unpack[*extauthzv3.ExtAuthz](t, hf.GetTypedConfig())
		f.mutationAllow = regexp.MustCompile("^(?:" + ea.GetDecoderHeaderMutationRules().GetAllowExpression().GetRegex() + ")$")
		if gs := ea.GetGrpcService(); gs != nil {
			authzCluster = gs.GetEnvoyGrpc().GetClusterName()
		} else {
			hs := ea.GetHttpService()
			authzCluster = hs.GetServerUri().GetCluster()
			for _, p := range hs.GetAuthorizationResponse().GetAllowedUpstreamHeaders().GetPatterns() {
				f.allowedUpstream = append(f.allowedUpstream, p.GetPrefix()+"*"+p.GetExact())
			}
			for _, p := range ea.GetAllowedHeaders().GetPatterns() {
				f.allowedRequest = append(f.allowedRequest, p.GetExact())
			}
			for _, p := range hs.GetAuthorizationResponse().GetAllowedClientHeaders().GetPatterns() {
				f.allowedClient = append(f.allowedClient, p.GetExact())
			}
		}
	}
	endpoint := func(c *clusterv3.Cluster) (string, uint32, uint32) {
		ep := c.GetLoadAssignment().GetEndpoints()[0].GetLbEndpoints()[0].GetEndpoint()
		sa := ep.GetAddress().GetSocketAddress()
		return sa.GetAddress(), sa.GetPortValue(), ep.GetHealthCheckConfig().GetPortValue()
	}
	for _, c := range b.GetStaticResources().GetClusters() {
		switch c.GetName() {
		case authzCluster:
			f.authzHost, f.authzPort, f.healthPort = endpoint(c)
			for _, hc := range c.GetHealthChecks() {
				f.grpcHealthService = hc.GetGrpcHealthCheck().GetServiceName()
			}
		case "upstream":
			f.upstreamHost, f.upstreamPort, _ = endpoint(c)
		}
	}
	if authzCluster == "" || f.authzHost == "" {
		t.Fatalf("%s: no ext_authz cluster", path)
	}
	return f
}

// port returns the port of a listen address such as ":9001" or "0.0.0.0:9001".
func port(t *testing.T, addr string) int {
	t.Helper()
	_, p, err := net.SplitHostPort(addr)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	n, err := strconv.Atoi(p)
	if err != nil {
		t.Fatalf("address %q: %v", addr, err)
	}
	return n
}

// istioHeaderMatch matches a header name against an Istio header pattern: exact, "prefix*" or "*suffix".
func istioHeaderMatch(pattern, h string) bool {
	switch {
	case pattern == "*":
		return true
	case strings.HasSuffix(pattern, "*"):
		return strings.HasPrefix(h, strings.TrimSuffix(pattern, "*"))
	case strings.HasPrefix(pattern, "*"):
		return strings.HasSuffix(h, strings.TrimPrefix(pattern, "*"))
	default:
		return pattern == h
	}
}

func TestIstioHeaderMatch(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, pattern, header string
		want                  bool
	}{
		{name: "prefix", pattern: "x-auth-*", header: "x-auth-sub", want: true},
		{name: "prefix_miss", pattern: "x-auth-*", header: "x-authz", want: false},
		{name: "suffix", pattern: "*-sub", header: "x-auth-sub", want: true},
		{name: "exact_miss", pattern: "x-auth-sub", header: "x-auth-subject", want: false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := istioHeaderMatch(tt.pattern, tt.header); got != tt.want {
				t.Errorf("istioHeaderMatch(%q, %q) = %v, want %v", tt.pattern, tt.header, got, tt.want)
			}
		})
	}
}

// TestCrossCheck asserts that every asset agrees with the service's configuration and with each
// other: ports, service names, health-check service names and identity header names.
func TestCrossCheck(t *testing.T) {
	t.Parallel()
	def := config.Default()
	grpcEnvoy := map[string]envoyFacts{
		"envoy/envoy.yaml":          envoyConfig(t, "../envoy/envoy.yaml"),
		"deploy/compose/envoy.yaml": envoyConfig(t, "compose/envoy.yaml"),
	}
	httpEnvoy := envoyConfig(t, "../envoy/envoy-http.yaml")
	mc := meshConfig(t)
	ig := provider(t, mc, grpcProvider).GetEnvoyExtAuthzGrpc()
	ih := provider(t, mc, httpProvider).GetEnvoyExtAuthzHttp()
	fqdn := serviceName + "." + namespace + ".svc.cluster.local"

	for _, dir := range kustomizations {
		t.Run(dir, func(t *testing.T) {
			t.Parallel()
			m := build(t, dir)
			cfg := m.serviceConfig(t)
			c := m.container(t)
			if cfg.Server.HTTPAddr == "" {
				t.Fatal("server.http_addr is empty: Istio's cognito-authz-http provider would have nothing to call")
			}
			grpcPort, httpPort, adminPort := port(t, cfg.Server.GRPCAddr), port(t, cfg.Server.HTTPAddr), port(t, cfg.Server.AdminAddr)
			if grpcPort != port(t, def.Server.GRPCAddr) || adminPort != port(t, def.Server.AdminAddr) {
				t.Errorf("ConfigMap ports %d/%d differ from the service defaults %s/%s", grpcPort, adminPort, def.Server.GRPCAddr, def.Server.AdminAddr)
			}

			type pair struct {
				what      string
				got, want int
			}
			pairs := []pair{
				{"container port grpc", int(containerPort(t, c, "grpc")), grpcPort},
				{"container port http-authz", int(containerPort(t, c, "http-authz")), httpPort},
				{"container port http-admin", int(containerPort(t, c, "http-admin")), adminPort},
				{"Service port grpc", int(servicePort(t, m.Service, "grpc").Port), grpcPort},
				{"Service port http-authz", int(servicePort(t, m.Service, "http-authz").Port), httpPort},
				{"Service port http-admin", int(servicePort(t, m.Service, "http-admin").Port), adminPort},
				{"readiness probe", int(c.ReadinessProbe.GRPC.Port), grpcPort},
				{"liveness probe", c.LivenessProbe.HTTPGet.Port.IntValue(), adminPort},
				{"Istio grpc provider port", int(ig.GetPort()), grpcPort},
				{"Istio http provider port", int(ih.GetPort()), httpPort},
				{"envoy-http.yaml authz port", int(httpEnvoy.authzPort), httpPort},
				{"envoy-http.yaml health-check port", int(httpEnvoy.healthPort), adminPort},
			}
			for name, f := range grpcEnvoy {
				pairs = append(pairs, pair{name + " authz port", int(f.authzPort), grpcPort})
			}
			for _, p := range pairs {
				if p.got != p.want {
					t.Errorf("%s = %d, want %d (the ConfigMap's config)", p.what, p.got, p.want)
				}
			}
			for _, p := range []int{grpcPort, httpPort} {
				if !ingressAllows(m.NetworkPolicy, p) {
					t.Errorf("NetworkPolicy does not admit the config's port %d", p)
				}
			}

			// Names: Envoy resolves the Service by short name, Istio by FQDN.
			for name, f := range map[string]envoyFacts{"envoy/envoy.yaml": grpcEnvoy["envoy/envoy.yaml"], "envoy/envoy-http.yaml": httpEnvoy} {
				if f.authzHost != m.Service.Name {
					t.Errorf("%s calls %q, want the Service %q", name, f.authzHost, m.Service.Name)
				}
			}
			for name, got := range map[string]string{"grpc": ig.GetService(), "http": ih.GetService()} {
				if want := m.Service.Name + "." + m.Service.Namespace + ".svc.cluster.local"; got != want || got != fqdn {
					t.Errorf("Istio %s provider service = %q, want %q", name, got, want)
				}
			}
			for name, f := range grpcEnvoy {
				if f.grpcHealthService != *c.ReadinessProbe.GRPC.Service {
					t.Errorf("%s health-checks %q, readiness probe checks %q", name, f.grpcHealthService, *c.ReadinessProbe.GRPC.Service)
				}
			}

			// Headers: every identity header the service sets (defaults and this config) must be
			// stripped from clients, allowed as a mutation, and let through to the upstream.
			headers := append(def.Identity.Headers(), cfg.Identity.Headers()...)
			for _, h := range headers {
				for name, f := range map[string]envoyFacts{"envoy/envoy.yaml": grpcEnvoy["envoy/envoy.yaml"], "deploy/compose/envoy.yaml": grpcEnvoy["deploy/compose/envoy.yaml"], "envoy/envoy-http.yaml": httpEnvoy} {
					if !strings.HasPrefix(h, f.strippedPrefix) || f.strippedPrefix == "" {
						t.Errorf("%s: client-sent %q is not stripped (prefix %q)", name, h, f.strippedPrefix)
					}
					if !f.mutationAllow.MatchString(h) {
						t.Errorf("%s: decoder_header_mutation_rules would reject %q", name, h)
					}
				}
				if !slices.ContainsFunc(httpEnvoy.allowedUpstream, func(p string) bool { return istioHeaderMatch(p, h) }) {
					t.Errorf("envoy-http.yaml: %q is not in allowed_upstream_headers %v", h, httpEnvoy.allowedUpstream)
				}
				if !slices.ContainsFunc(ih.GetHeadersToUpstreamOnAllow(), func(p string) bool { return istioHeaderMatch(p, h) }) {
					t.Errorf("Istio http provider: %q is not in headersToUpstreamOnAllow %v", h, ih.GetHeadersToUpstreamOnAllow())
				}
			}
		})
	}

	t.Run("http_header_lists", func(t *testing.T) {
		t.Parallel()
		sorted := func(s []string) []string { s = slices.Clone(s); slices.Sort(s); return s }
		if diff := cmp.Diff(sorted(httpEnvoy.allowedRequest), sorted(ih.GetIncludeRequestHeadersInCheck())); diff != "" {
			t.Errorf("request headers sent to the HTTP service: envoy-http.yaml vs Istio mismatch (-envoy +istio):\n%s", diff)
		}
		if diff := cmp.Diff(sorted(httpEnvoy.allowedClient), sorted(ih.GetHeadersToDownstreamOnDeny())); diff != "" {
			t.Errorf("deny headers to the client: envoy-http.yaml vs Istio mismatch (-envoy +istio):\n%s", diff)
		}
	})
	t.Run("compose", func(t *testing.T) {
		t.Parallel()
		checkCompose(t, grpcEnvoy["deploy/compose/envoy.yaml"], def)
	})
	t.Run("dockerfile", func(t *testing.T) {
		t.Parallel()
		checkDockerfile(t, def)
	})
}

// composeFile is the part of the Compose specification these assets use; decoding is strict so a
// misspelt key fails here instead of being ignored.
type composeFile struct {
	Name     string                    `json:"name"`
	Services map[string]composeService `json:"services"`
}

type composeService struct {
	Image       string            `json:"image"`
	Build       *composeBuild     `json:"build"`
	Command     []string          `json:"command"`
	Environment map[string]string `json:"environment"`
	Ports       []string          `json:"ports"`
	Volumes     []string          `json:"volumes"`
	DependsOn   []string          `json:"depends_on"`
}

type composeBuild struct {
	Context    string `json:"context"`
	Dockerfile string `json:"dockerfile"`
}

func checkCompose(t *testing.T, envoy envoyFacts, def config.Config) {
	t.Helper()
	var cf composeFile
	strict(t, readFile(t, "compose/compose.yaml"), &cf)
	authz, ok := cf.Services[envoy.authzHost]
	if !ok {
		t.Fatalf("compose.yaml has no service %q (the host compose/envoy.yaml calls)", envoy.authzHost)
	}
	up, ok := cf.Services[envoy.upstreamHost]
	if !ok {
		t.Fatalf("compose.yaml has no service %q (the upstream compose/envoy.yaml routes to)", envoy.upstreamHost)
	}
	if got := port(t, authz.Environment["COGNITO_AUTHZ_GRPC_ADDR"]); got != int(envoy.authzPort) {
		t.Errorf("cognito-authz listens on %d, compose/envoy.yaml calls %d", got, envoy.authzPort)
	}
	if got := port(t, authz.Environment["COGNITO_AUTHZ_ADMIN_ADDR"]); got != port(t, def.Server.AdminAddr) {
		t.Errorf("compose admin port %d, default %s", got, def.Server.AdminAddr)
	}
	if got := up.Environment["HTTP_PORT"]; got != strconv.Itoa(int(envoy.upstreamPort)) {
		t.Errorf("echo listens on %q, compose/envoy.yaml routes to %d", got, envoy.upstreamPort)
	}
	if !slices.Contains(authz.Command, "-dev") {
		t.Errorf("cognito-authz command %q: want -dev (no AWS pool in the demo)", authz.Command)
	}
	if authz.Build == nil {
		t.Fatal("cognito-authz is not built from the Dockerfile")
	}
	if _, err := os.Stat(filepath.Join("compose", authz.Build.Context, authz.Build.Dockerfile)); err != nil {
		t.Errorf("build context/dockerfile: %v", err)
	}
	if _, err := os.Stat(filepath.Join("compose", authz.Build.Context, "go.mod")); err != nil {
		t.Errorf("build context is not the repository root: %v", err)
	}
	envoySvc := cf.Services["envoy"]
	if !slices.Contains(envoySvc.Volumes, "./envoy.yaml:/etc/envoy/envoy.yaml:ro") {
		t.Errorf("envoy does not mount ./envoy.yaml: %q", envoySvc.Volumes)
	}
}

// checkDockerfile asserts the image runs non-root from distroless and exposes the default ports.
func checkDockerfile(t *testing.T, def config.Config) {
	t.Helper()
	var from, user, entrypoint, cmd string
	var expose []string
	sc := bufio.NewScanner(bytes.NewReader(readFile(t, "Dockerfile")))
	for sc.Scan() {
		fields := strings.Fields(sc.Text())
		if len(fields) < 2 || strings.HasPrefix(fields[0], "#") {
			continue
		}
		rest := strings.Join(fields[1:], " ")
		switch fields[0] {
		case "FROM":
			from = rest // the last FROM is the final image
		case "USER":
			user = rest
		case "EXPOSE":
			expose = fields[1:]
		case "ENTRYPOINT":
			entrypoint = rest
		case "CMD":
			cmd = rest
		}
	}
	var cmdArgs []string
	if err := json.Unmarshal([]byte(cmd), &cmdArgs); err != nil {
		t.Fatalf("CMD %s: %v", cmd, err)
	}
	got := map[string]any{"from": from, "user": user, "entrypoint": entrypoint, "cmd": cmdArgs, "expose": expose}
	want := map[string]any{
		"from":       "gcr.io/distroless/static-debian12:nonroot",
		"user":       "65532:65532",
		"entrypoint": `["/cognito-authz"]`,
		"cmd":        []string{"serve", "-config", configDir + "/" + configKey},
		"expose": []string{
			strconv.Itoa(port(t, def.Server.GRPCAddr)), "9002", strconv.Itoa(port(t, def.Server.AdminAddr)),
		},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("Dockerfile mismatch (-want +got):\n%s", diff)
	}
}

// TestGracePeriodCoversShutdown keeps the kubelet from killing a stop in progress: the pod's grace period
// must cover the preStop sleep plus the service's whole shutdown (drain included) from its config.
func TestGracePeriodCoversShutdown(t *testing.T) {
	t.Parallel()
	for _, dir := range []string{"kubernetes/base", "kubernetes/overlays/example"} {
		t.Run(dir, func(t *testing.T) {
			m := build(t, dir)
			pod := m.Deployment.Spec.Template.Spec
			if pod.TerminationGracePeriodSeconds == nil {
				t.Fatal("terminationGracePeriodSeconds is not set")
			}
			grace := time.Duration(*pod.TerminationGracePeriodSeconds) * time.Second
			var preStop time.Duration
			if h := m.container(t).Lifecycle; h != nil && h.PreStop != nil && h.PreStop.Sleep != nil {
				preStop = time.Duration(h.PreStop.Sleep.Seconds) * time.Second
			}
			cfg := m.serviceConfig(t)
			if need := preStop + cfg.Server.ShutdownTimeout.Std(); grace <= need {
				t.Errorf("terminationGracePeriodSeconds %s <= preStop %s + shutdown_timeout %s", grace, preStop, cfg.Server.ShutdownTimeout.Std())
			}
			if cfg.Server.DrainPeriod.Std() <= 0 {
				t.Error("drain_period is 0: endpoints would still route to a pod that refuses connections")
			}
		})
	}
}
