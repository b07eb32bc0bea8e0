package envoy_test

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	bootstrapv3 "github.com/envoyproxy/go-control-plane/envoy/config/bootstrap/v3"
	clusterv3 "github.com/envoyproxy/go-control-plane/envoy/config/cluster/v3"
	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	routev3 "github.com/envoyproxy/go-control-plane/envoy/config/route/v3"
	extauthzv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/ext_authz/v3"
	hcmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/network/http_connection_manager/v3"
	earlyhmv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/http/early_header_mutation/header_mutation/v3"
	httpoptsv3 "github.com/envoyproxy/go-control-plane/envoy/extensions/upstreams/http/v3"
	matcherv3 "github.com/envoyproxy/go-control-plane/envoy/type/matcher/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"github.com/google/go-cmp/cmp"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/types/known/anypb"
	"sigs.k8s.io/yaml"

	// Registered for their Any types; referenced by the configs but not by name in this file.
	_ "github.com/envoyproxy/go-control-plane/envoy/extensions/filters/http/router/v3"
)

const (
	extAuthzFilter = "envoy.filters.http.ext_authz"
	hcmFilter      = "envoy.filters.network.http_connection_manager"
	authzService   = "envoy.service.auth.v3.Authorization"
	// maxCheckTimeout bounds how long a stuck authz service may hold a request.
	maxCheckTimeout = time.Second
)

// identityHeaderPrefix is the prefix shared by every identity header cognito-authz sets by default.
const identityHeaderPrefix = "x-auth-"

// decodeBootstrap reads an Envoy bootstrap the way Envoy does: YAML to JSON, strict protobuf JSON
// (an unknown field is an error, an unknown @type is an error), then the PGV rules of the
// bootstrap and of every typed_config inside it. Bootstrap.ValidateAll stops at Any fields, so
// each Any is unpacked and validated on its own, recursively.
func decodeBootstrap(data []byte) (*bootstrapv3.Bootstrap, error) {
	js, err := yaml.YAMLToJSON(data)
	if err != nil {
		return nil, fmt.Errorf("yaml: %w", err)
	}
	var b bootstrapv3.Bootstrap
	if err := (protojson.UnmarshalOptions{DiscardUnknown: false}).Unmarshal(js, &b); err != nil {
		return nil, fmt.Errorf("decode: %w", err)
	}
	if err := b.ValidateAll(); err != nil {
		return nil, fmt.Errorf("validate bootstrap: %w", err)
	}
	if err := validateAnys(b.ProtoReflect(), string(b.ProtoReflect().Descriptor().FullName())); err != nil {
		return nil, err
	}
	return &b, nil
}

// validateAnys unpacks every google.protobuf.Any reachable from m and runs its ValidateAll.
func validateAnys(m protoreflect.Message, path string) error {
	var errs []error
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind && fd.Kind() != protoreflect.GroupKind {
			return true
		}
		p := path + "." + string(fd.Name())
		switch {
		case fd.IsList():
			l := v.List()
			for i := range l.Len() {
				errs = append(errs, visitMessage(l.Get(i).Message(), fmt.Sprintf("%s[%d]", p, i)))
			}
		case fd.IsMap():
			if fd.MapValue().Kind() != protoreflect.MessageKind {
				return true
			}
			v.Map().Range(func(k protoreflect.MapKey, mv protoreflect.Value) bool {
				errs = append(errs, visitMessage(mv.Message(), fmt.Sprintf("%s[%s]", p, k.String())))
				return true
			})
		default:
			errs = append(errs, visitMessage(v.Message(), p))
		}
		return true
	})
	return errors.Join(errs...)
}

func visitMessage(m protoreflect.Message, path string) error {
	a, ok := m.Interface().(*anypb.Any)
	if !ok {
		return validateAnys(m, path)
	}
	inner, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{})
	if err != nil {
		return fmt.Errorf("%s: unpack %s: %w", path, a.GetTypeUrl(), err)
	}
	if v, ok := inner.(interface{ ValidateAll() error }); ok {
		if err := v.ValidateAll(); err != nil {
			return fmt.Errorf("%s (%s): %w", path, a.GetTypeUrl(), err)
		}
	}
	return validateAnys(inner.ProtoReflect(), path+"<"+string(inner.ProtoReflect().Descriptor().FullName())+">")
}

// unpack returns the typed_config of an extension as T.
func unpack[T proto.Message](t *testing.T, a *anypb.Any) T {
	t.Helper()
	m, err := anypb.UnmarshalNew(a, proto.UnmarshalOptions{})
	if err != nil {
		t.Fatalf("unpack %s: %v", a.GetTypeUrl(), err)
	}
	v, ok := m.(T)
	if !ok {
		var zero T
		t.Fatalf("typed_config is %s, want %T", a.GetTypeUrl(), zero)
	}
	return v
}

func loadBootstrap(t *testing.T, path string) *bootstrapv3.Bootstrap {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	b, err := decodeBootstrap(data)
	if err != nil {
		t.Fatalf("%s: %v", path, err)
	}
	return b
}

// configFiles is every Envoy bootstrap in the repository: envoy/*.yaml and the compose one.
func configFiles(t *testing.T) []string {
	t.Helper()
	files, err := filepath.Glob("*.yaml")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, filepath.Join("..", "deploy", "compose", "envoy.yaml"))
	if len(files) < 3 {
		t.Fatalf("found only %v; want envoy.yaml, envoy-http.yaml and the compose config", files)
	}
	return files
}

func hcm(t *testing.T, b *bootstrapv3.Bootstrap) *hcmv3.HttpConnectionManager {
	t.Helper()
	ls := b.GetStaticResources().GetListeners()
	if len(ls) != 1 {
		t.Fatalf("got %d listeners, want 1", len(ls))
	}
	for _, fc := range ls[0].GetFilterChains() {
		for _, f := range fc.GetFilters() {
			if f.GetName() == hcmFilter {
				return unpack[*hcmv3.HttpConnectionManager](t, f.GetTypedConfig())
			}
		}
	}
	t.Fatalf("listener %q has no %s", ls[0].GetName(), hcmFilter)
	return nil
}

func extAuthz(t *testing.T, m *hcmv3.HttpConnectionManager) *extauthzv3.ExtAuthz {
	t.Helper()
	for _, f := range m.GetHttpFilters() {
		if f.GetName() == extAuthzFilter {
			return unpack[*extauthzv3.ExtAuthz](t, f.GetTypedConfig())
		}
	}
	t.Fatalf("no %s filter", extAuthzFilter)
	return nil
}

func cluster(t *testing.T, b *bootstrapv3.Bootstrap, name string) *clusterv3.Cluster {
	t.Helper()
	for _, c := range b.GetStaticResources().GetClusters() {
		if c.GetName() == name {
			return c
		}
	}
	t.Fatalf("no cluster %q", name)
	return nil
}

// perRoute returns the route's ExtAuthzPerRoute, or nil when it has none.
func perRoute(t *testing.T, r *routev3.Route) *extauthzv3.ExtAuthzPerRoute {
	t.Helper()
	a, ok := r.GetTypedPerFilterConfig()[extAuthzFilter]
	if !ok {
		return nil
	}
	return unpack[*extauthzv3.ExtAuthzPerRoute](t, a)
}

func routes(t *testing.T, m *hcmv3.HttpConnectionManager) []*routev3.Route {
	t.Helper()
	var rs []*routev3.Route
	for _, vh := range m.GetRouteConfig().GetVirtualHosts() {
		rs = append(rs, vh.GetRoutes()...)
	}
	if len(rs) == 0 {
		t.Fatal("no routes (route_config must be inline)")
	}
	return rs
}

func TestConfigsDecodeAndValidate(t *testing.T) {
	t.Parallel()
	for _, path := range configFiles(t) {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			loadBootstrap(t, path)
		})
	}
}

// TestDecodeBootstrapRejects proves decodeBootstrap is strict: each snippet is wrong in a way Envoy
// rejects at startup, so a config with the same mistake cannot pass TestConfigsDecodeAndValidate.
func TestDecodeBootstrapRejects(t *testing.T) {
	t.Parallel()
	const filterTmpl = `
static_resources:
  listeners:
  - name: l
    address: {socket_address: {address: 0.0.0.0, port_value: 8080}}
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: s
          route_config: {name: r}
          http_filters:
          - name: envoy.filters.http.ext_authz
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz
%s
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
`
	tests := []struct {
		name    string
		yaml    string
		wantErr string
	}{
		{
			name:    "unknown_top_level_field",
			yaml:    "static_resources: {}\nnot_a_field: 1\n",
			wantErr: "not_a_field",
		},
		{
			name: "unknown_field_inside_typed_config",
			yaml: fmt.Sprintf(filterTmpl, `              grpc_service: {envoy_grpc: {cluster_name: c}, timeout: 0.25s}
              failure_mode_allow: false
              status_on_eror: {code: ServiceUnavailable}`),
			wantErr: "status_on_eror",
		},
		{
			name: "unregistered_type",
			yaml: strings.Replace(fmt.Sprintf(filterTmpl, `              grpc_service: {envoy_grpc: {cluster_name: c}}`),
				"router.v3.Router", "router.v3.NoSuchRouter", 1),
			wantErr: "NoSuchRouter",
		},
		{
			name:    "pgv_rule_inside_typed_config",
			yaml:    fmt.Sprintf(filterTmpl, `              grpc_service: {envoy_grpc: {cluster_name: ""}, timeout: 0.25s}`),
			wantErr: "ClusterName",
		},
		{
			name:    "bad_duration",
			yaml:    fmt.Sprintf(filterTmpl, `              grpc_service: {envoy_grpc: {cluster_name: c}, timeout: 250ms}`),
			wantErr: "Duration",
		},
	}
	// The template itself must decode, or every case above would pass for the wrong reason.
	if _, err := decodeBootstrap(fmt.Appendf(nil, filterTmpl, `              grpc_service: {envoy_grpc: {cluster_name: c}, timeout: 0.25s}`)); err != nil {
		t.Fatalf("valid template rejected: %v", err)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			_, err := decodeBootstrap([]byte(tt.yaml))
			if err == nil {
				t.Fatal("decodeBootstrap() = nil error, want a rejection")
			}
			if !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("decodeBootstrap() error = %v, want it to mention %q", err, tt.wantErr)
			}
		})
	}
}

// TestExtAuthzFilter asserts the ext_authz settings the deployment's security rests on.
func TestExtAuthzFilter(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		path    string
		grpc    bool   // gRPC mode (else HTTP mode)
		cluster string // cluster the filter calls
	}{
		{name: "grpc", path: "envoy.yaml", grpc: true, cluster: "cognito_authz"},
		{name: "http", path: "envoy-http.yaml", cluster: "cognito_authz_http"},
		{name: "compose", path: "../deploy/compose/envoy.yaml", grpc: true, cluster: "cognito_authz"},
		{name: "headless", path: "envoy-headless.yaml", grpc: true, cluster: "cognito_authz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := hcm(t, loadBootstrap(t, tt.path))
			f := extAuthz(t, m)

			if got := f.GetTransportApiVersion(); got != corev3.ApiVersion_V3 {
				t.Errorf("transport_api_version = %v, want V3", got)
			}
			if f.GetFailureModeAllow() {
				t.Error("failure_mode_allow = true: an unreachable authz service would let every request through")
			}
			if f.GetShadowMode() {
				t.Error("shadow_mode = true: decisions would be logged, not enforced")
			}
			if got := f.GetStatusOnError().GetCode(); got != typev3.StatusCode_ServiceUnavailable {
				t.Errorf("status_on_error = %v, want ServiceUnavailable", got)
			}
			if f.GetWithRequestBody() != nil {
				t.Error("with_request_body is set; tokens are in headers and buffering bodies only adds latency")
			}
			if !f.GetValidateMutations() {
				t.Error("validate_mutations = false")
			}
			rules := f.GetDecoderHeaderMutationRules()
			if !rules.GetDisallowAll().GetValue() || !rules.GetDisallowIsError().GetValue() {
				t.Errorf("decoder_header_mutation_rules = %v, want disallow_all and disallow_is_error", rules)
			}
			if got, want := rules.GetAllowExpression().GetRegex(), "x-auth-.*|authorization"; got != want {
				t.Errorf("decoder_header_mutation_rules.allow_expression = %q, want %q", got, want)
			}

			var timeout time.Duration
			if tt.grpc {
				gs := f.GetGrpcService()
				if got := gs.GetEnvoyGrpc().GetClusterName(); got != tt.cluster {
					t.Errorf("grpc_service cluster = %q, want %q", got, tt.cluster)
				}
				if gs.GetTimeout() == nil {
					t.Fatal("grpc_service.timeout unset: Envoy's default would hold requests on a stuck service")
				}
				timeout = gs.GetTimeout().AsDuration()
			} else {
				hs := f.GetHttpService()
				if got := hs.GetServerUri().GetCluster(); got != tt.cluster {
					t.Errorf("http_service cluster = %q, want %q", got, tt.cluster)
				}
				timeout = hs.GetServerUri().GetTimeout().AsDuration()
				checkHTTPHeaders(t, f)
			}
			if timeout <= 0 || timeout > maxCheckTimeout {
				t.Errorf("check timeout = %v, want in (0, %v]", timeout, maxCheckTimeout)
			}
			if filters := m.GetHttpFilters(); filters[len(filters)-1].GetName() != "envoy.filters.http.router" {
				t.Errorf("last HTTP filter = %q, want the router", filters[len(filters)-1].GetName())
			}
		})
	}
}

// checkHTTPHeaders asserts which headers cross the HTTP ext_authz boundary in each direction.
func checkHTTPHeaders(t *testing.T, ea *extauthzv3.ExtAuthz) {
	hs := ea.GetHttpService()
	t.Helper()
	tests := []struct {
		name string
		list *matcherv3.ListStringMatcher
		want []string
	}{
		{
			name: "allowed_headers",
			list: ea.GetAllowedHeaders(),
			want: []string{"exact:authorization", "exact:cookie", "exact:x-request-id"},
		},
		{
			name: "authorization_response.allowed_upstream_headers",
			list: hs.GetAuthorizationResponse().GetAllowedUpstreamHeaders(),
			want: []string{"prefix:" + identityHeaderPrefix},
		},
		{
			name: "authorization_response.allowed_client_headers",
			list: hs.GetAuthorizationResponse().GetAllowedClientHeaders(),
			want: []string{"exact:content-type", "exact:www-authenticate"},
		},
	}
	for _, tt := range tests {
		if diff := cmp.Diff(tt.want, matchers(tt.list)); diff != "" {
			t.Errorf("%s mismatch (-want +got):\n%s", tt.name, diff)
		}
	}
}

// matchers renders a ListStringMatcher as sorted "kind:value" strings.
func matchers(l *matcherv3.ListStringMatcher) []string {
	var out []string
	for _, p := range l.GetPatterns() {
		switch {
		case p.GetExact() != "":
			out = append(out, "exact:"+p.GetExact())
		case p.GetPrefix() != "":
			out = append(out, "prefix:"+p.GetPrefix())
		default:
			out = append(out, "other:"+p.String())
		}
	}
	slices.Sort(out)
	return out
}

func TestRoutes(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name                  string
		path                  string
		wantContextExtensions map[string]map[string]string // route prefix/path → extensions
	}{
		{name: "grpc", path: "envoy.yaml", wantContextExtensions: map[string]map[string]string{"/admin": {"policy": "admin"}}},
		{name: "http", path: "envoy-http.yaml", wantContextExtensions: map[string]map[string]string{}},
		{name: "compose", path: "../deploy/compose/envoy.yaml", wantContextExtensions: map[string]map[string]string{"/admin": {"policy": "admin"}}},
		{name: "headless", path: "envoy-headless.yaml", wantContextExtensions: map[string]map[string]string{"/admin": {"policy": "admin"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			m := hcm(t, loadBootstrap(t, tt.path))
			var disabled []string
			got := map[string]map[string]string{}
			for _, r := range routes(t, m) {
				key := r.GetMatch().GetPath() + r.GetMatch().GetPrefix() + r.GetMatch().GetPathSeparatedPrefix()
				pr := perRoute(t, r)
				if pr.GetDisabled() {
					disabled = append(disabled, key)
				}
				if ce := pr.GetCheckSettings().GetContextExtensions(); len(ce) > 0 {
					got[key] = ce
				}
			}
			if diff := cmp.Diff([]string{"/healthz"}, disabled); diff != "" {
				t.Errorf("routes with ext_authz disabled mismatch (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.wantContextExtensions, got); diff != "" {
				t.Errorf("context_extensions mismatch (-want +got):\n%s", diff)
			}
			// The /healthz bypass is an exact match; without normalisation //healthz or
			// /a/../healthz would be routed differently from what a reader expects.
			if !m.GetNormalizePath().GetValue() || !m.GetMergeSlashes() {
				t.Error("normalize_path and merge_slashes must be on: the ext_authz bypass matches an exact path")
			}
		})
	}
}

// TestIdentityHeadersCannotBeSpoofed asserts the listener strips every x-auth-* header a client
// sends before any filter runs (so also on routes where ext_authz is disabled), and drops header
// names with underscores (x_auth_sub reaches WSGI apps as HTTP_X_AUTH_SUB).
func TestIdentityHeadersCannotBeSpoofed(t *testing.T) {
	t.Parallel()
	for _, path := range configFiles(t) {
		t.Run(path, func(t *testing.T) {
			t.Parallel()
			m := hcm(t, loadBootstrap(t, path))
			var stripped bool
			for _, ext := range m.GetEarlyHeaderMutationExtensions() {
				hm := unpack[*earlyhmv3.HeaderMutation](t, ext.GetTypedConfig())
				for _, mu := range hm.GetMutations() {
					if km := mu.GetRemoveOnMatch().GetKeyMatcher(); km.GetPrefix() == identityHeaderPrefix && !km.GetIgnoreCase() {
						stripped = true
					}
				}
			}
			if !stripped {
				t.Errorf("no early header mutation removes headers with prefix %q", identityHeaderPrefix)
			}
			if got := m.GetCommonHttpProtocolOptions().GetHeadersWithUnderscoresAction(); got == corev3.HttpProtocolOptions_ALLOW {
				t.Errorf("headers_with_underscores_action = %v, want DROP_HEADER or REJECT_REQUEST", got)
			}
			if !m.GetGenerateRequestId().GetValue() || m.GetPreserveExternalRequestId() {
				t.Error("x-request-id: want generate_request_id and not preserve_external_request_id at the edge")
			}
		})
	}
}

// TestAuthzCluster asserts how Envoy reaches cognito-authz: protocol, address, health check.
func TestAuthzCluster(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name      string
		path      string
		cluster   string
		wantHTTP2 bool
		wantPort  uint32
		wantHC    string // gRPC service name, or HTTP path
		hcPort    uint32 // health-check port override (0: the endpoint's)
	}{
		{name: "grpc", path: "envoy.yaml", cluster: "cognito_authz", wantHTTP2: true, wantPort: 9001, wantHC: authzService},
		{name: "http", path: "envoy-http.yaml", cluster: "cognito_authz_http", wantPort: 9002, wantHC: "/readyz", hcPort: 9090},
		{name: "compose", path: "../deploy/compose/envoy.yaml", cluster: "cognito_authz", wantHTTP2: true, wantPort: 9001, wantHC: authzService},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := cluster(t, loadBootstrap(t, tt.path), tt.cluster)
			a, ok := c.GetTypedExtensionProtocolOptions()["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
			if !ok {
				t.Fatal("no typed_extension_protocol_options for envoy.extensions.upstreams.http.v3.HttpProtocolOptions")
			}
			opts := unpack[*httpoptsv3.HttpProtocolOptions](t, a)
			if got := opts.GetExplicitHttpConfig().GetHttp2ProtocolOptions() != nil; got != tt.wantHTTP2 {
				t.Errorf("explicit HTTP/2 = %v, want %v", got, tt.wantHTTP2)
			}
			if opts.GetCommonHttpProtocolOptions().GetMaxConnectionDuration() == nil {
				t.Error("max_connection_duration unset: connections never recycle, new replicas get no traffic")
			}

			eps := c.GetLoadAssignment().GetEndpoints()
			if len(eps) != 1 || len(eps[0].GetLbEndpoints()) != 1 {
				t.Fatalf("want exactly one endpoint, got %v", eps)
			}
			ep := eps[0].GetLbEndpoints()[0].GetEndpoint()
			sa := ep.GetAddress().GetSocketAddress()
			if diff := cmp.Diff("cognito-authz:"+fmt.Sprint(tt.wantPort), fmt.Sprintf("%s:%d", sa.GetAddress(), sa.GetPortValue())); diff != "" {
				t.Errorf("endpoint mismatch (-want +got):\n%s", diff)
			}
			if got := ep.GetHealthCheckConfig().GetPortValue(); got != tt.hcPort {
				t.Errorf("health_check_config.port_value = %d, want %d", got, tt.hcPort)
			}

			hcs := c.GetHealthChecks()
			if len(hcs) != 1 {
				t.Fatalf("got %d health checks, want 1", len(hcs))
			}
			var got string
			if tt.wantHTTP2 {
				got = hcs[0].GetGrpcHealthCheck().GetServiceName()
			} else {
				got = hcs[0].GetHttpHealthCheck().GetPath()
			}
			if got != tt.wantHC {
				t.Errorf("health check = %q, want %q", got, tt.wantHC)
			}
		})
	}
}
