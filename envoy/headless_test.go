package envoy_test

import (
	"testing"

	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	httpoptsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
)

// headlessHost is the headless Service of deploy/kubernetes/components/headless; deploy/headless_test.go
// checks that the kustomize build makes exactly this name.
const headlessHost = "cognito-authz-headless.cognito-authz.svc.cluster.local"

// TestHeadlessCluster: envoy-headless.yaml balances Checks per request over the pods behind the headless
// Service: every A record a host, LEAST_REQUEST between them, HTTP/2, the gRPC health check.
func TestHeadlessCluster(t *testing.T) {
	t.Parallel()
	c := cluster(t, loadBootstrap(t, "envoy-headless.yaml"), "cognito_authz")
	if got := c.GetType(); got != clusterv3.Cluster_STRICT_DNS {
		t.Errorf("type = %v, want STRICT_DNS (one host per A record of the headless name)", got)
	}
	if got := c.GetLbPolicy(); got != clusterv3.Cluster_LEAST_REQUEST {
		t.Errorf("lb_policy = %v, want LEAST_REQUEST", got)
	}
	if r := c.GetDnsRefreshRate().AsDuration(); r <= 0 || r > 30e9 {
		t.Errorf("dns_refresh_rate = %v, want set and at most 30s: new pods must be found quickly", r)
	}
	eps := c.GetLoadAssignment().GetEndpoints()
	if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
		t.Fatalf("want exactly one endpoint (the headless name), got %v", eps)
	}
	sa := eps[0].GetLbEndpoints()[0].GetEndpoint().GetAddress().GetSocketAddress()
	if sa.GetAddress() != headlessHost || sa.GetPortValue() != 9001 {
		t.Errorf("endpoint = %s:%d, want %s:9001", sa.GetAddress(), sa.GetPortValue(), headlessHost)
	}
	opts := unpack[*httpoptsv3.HttpProtocolOptions](t, c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"])
	if opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() == nil {
		t.Error("no HTTP/2: gRPC needs it")
	}
	hcs := c.GetHealthChecks()
	if len(hcs) != 1 || hcs[0].GetGrpcHealthCheck().GetServiceName() != authzService {
		t.Errorf("health checks = %v, want one gRPC health check of %s", hcs, authzService)
	}
}
