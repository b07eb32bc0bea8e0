package deploy_test

import (
	"path/filepath"
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	"google.golang.org/protobuf/encoding/protojson"
	networkingv1alpha3 "istio.io/api/networking/v1alpha3"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/kustomize/api/krusty"
	"sigs.k8s.io/kustomize/kyaml/filesys"
)

const headlessService = "cognito-authz-headless"

// TestHeadlessOverlay builds overlays/headless (the example plus components/headless) and checks the
// headless Service: strictly decoded, clusterIP None, only ready pods published, the Deployment's pods
// selected, the gRPC port of the service's own config; and that envoy/envoy-headless.yaml resolves
// exactly that name and port.
func TestHeadlessOverlay(t *testing.T) {
	t.Parallel()
	const dir = "kubernetes/overlays/headless"
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	rm, err := krusty.MakeKustomizer(krusty.MakeDefaultOptions()).Run(filesys.MakeFsOnDisk(), abs)
	if err != nil {
		t.Fatalf("kustomize build %s: %v", dir, err)
	}
	services := map[string]*corev1.Service{}
	kinds := map[string]int{}
	for _, r := range rm.Resources() {
		kinds[r.GetKind()]++
		if r.GetKind() != "Service" {
			continue
		}
		data, err := r.AsYAML()
		if err != nil {
			t.Fatal(err)
		}
		var s corev1.Service
		strict(t, data, &s)
		services[s.Name] = &s
	}
	// Everything else is the example overlay's, which TestKubernetesManifests checks.
	example := build(t, "kubernetes/overlays/example")
	if len(services) != 2 || services[serviceName] == nil || services[headlessService] == nil {
		t.Fatalf("services = %v, want %s and %s", services, serviceName, headlessService)
	}
	if kinds["Deployment"] != 1 || kinds["ConfigMap"] != 1 {
		t.Fatalf("kinds = %v", kinds)
	}
	h := services[headlessService]
	if h.Namespace != namespace {
		t.Errorf("namespace = %q, want %q", h.Namespace, namespace)
	}
	if h.Spec.ClusterIP != corev1.ClusterIPNone {
		t.Errorf("clusterIP = %q, want None", h.Spec.ClusterIP)
	}
	if h.Spec.PublishNotReadyAddresses {
		t.Error("publishNotReadyAddresses: DNS would hand out pods whose keys have not loaded")
	}
	pod := example.Deployment.Spec.Template.Labels
	for k, v := range h.Spec.Selector {
		if pod[k] != v {
			t.Errorf("selector %s=%s does not select the Deployment's pods (labels %v)", k, v, pod)
		}
	}
	if len(h.Spec.Selector) == 0 {
		t.Error("no selector")
	}
	cfg := example.serviceConfig(t)
	grpcPort := port(t, cfg.Server.GRPCAddr)
	if len(h.Spec.Ports) != 1 {
		t.Fatalf("ports = %v, want only grpc", h.Spec.Ports)
	}
	p := h.Spec.Ports[0]
	if p.Name != "grpc" || int(p.Port) != grpcPort || p.TargetPort != intstr.FromString("grpc") || p.AppProtocol == nil || *p.AppProtocol != "grpc" {
		t.Errorf("port = %+v, want grpc %d → container port grpc, appProtocol grpc", p, grpcPort)
	}
	if got := int(containerPort(t, example.container(t), "grpc")); got != grpcPort {
		t.Errorf("container port grpc = %d, want %d", got, grpcPort)
	}

	f := envoyConfig(t, "../envoy/envoy-headless.yaml")
	if want := headlessService + "." + namespace + ".svc.cluster.local"; f.authzHost != want || int(f.authzPort) != grpcPort {
		t.Errorf("envoy-headless.yaml resolves %s:%d, want %s:%d", f.authzHost, f.authzPort, want, grpcPort)
	}
	for _, c := range envoyBootstrap(t, "../envoy/envoy-headless.yaml").GetStaticResources().GetClusters() {
		if c.GetName() == "cognito_authz" && (c.GetType() != clusterv3.Cluster_STRICT_DNS || c.GetLbPolicy() != clusterv3.Cluster_LEAST_REQUEST) {
			t.Errorf("envoy-headless.yaml cluster: %v %v, want STRICT_DNS LEAST_REQUEST", c.GetType(), c.GetLbPolicy())
		}
	}
}

// TestIstioDestinationRule: the DestinationRule decodes strictly, names the host the gRPC provider calls,
// balances by LEAST_REQUEST and ages client connections.
func TestIstioDestinationRule(t *testing.T) {
	t.Parallel()
	const path = "istio/destinationrule.yaml"
	var obj k8sObject
	strict(t, readFile(t, path), &obj)
	if obj.APIVersion != "networking.istio.io/v1" || obj.Kind != "DestinationRule" || obj.Metadata.Namespace != namespace {
		t.Fatalf("%s: %s %s in %q, want networking.istio.io/v1 DestinationRule in %s", path, obj.APIVersion, obj.Kind, obj.Metadata.Namespace, namespace)
	}
	var dr networkingv1alpha3.DestinationRule
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(obj.Spec, &dr); err != nil {
		t.Fatalf("%s: spec: %v", path, err)
	}
	if want := provider(t, meshConfig(t), grpcProvider).GetEnvoyExtAuthzGrpc().GetService(); dr.GetHost() != want {
		t.Errorf("host = %q, want the gRPC provider's service %q", dr.GetHost(), want)
	}
	tp := dr.GetTrafficPolicy()
	if got := tp.GetLoadBalancer().GetSimple(); got != networkingv1alpha3.LoadBalancerSettings_LEAST_REQUEST {
		t.Errorf("loadBalancer.simple = %v, want LEAST_REQUEST", got)
	}
	if d := tp.GetConnectionPool().GetTcp().GetMaxConnectionDuration().AsDuration(); d <= 0 {
		t.Error("connectionPool.tcp.maxConnectionDuration unset: client connections never age")
	}
}
