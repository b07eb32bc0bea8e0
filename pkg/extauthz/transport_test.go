package extauthz_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// outcome is what a client of either transport sees: the same decision must look the same on both.
type outcome struct {
	Allowed bool
	Status  int               // deny only
	Reason  string            // deny only
	Set     map[string]string // identity headers on allow; www-authenticate and content-type on deny
	Remove  []string          // allow only
}

// transportCase is one request, asked over gRPC and over HTTP.
type transportCase struct {
	name     string
	method   string
	host     string
	path     string
	headers  map[string]string
	ctxExt   map[string]string // Envoy sends these over gRPC only: cases that use them skip HTTP
	want     outcome
	grpcOnly bool
}

var identityRemoved = []string{"x-auth-sub", "x-auth-username", "x-auth-groups", "x-auth-scopes", "x-auth-client-id",
	"x-auth-token-use", "x-auth-email", "x-auth-pool", "x-auth-tenant"}

// policyFixture is newFixture's pool and identity headers with a route policy.
func policyFixture(t *testing.T) *fixture {
	t.Helper()
	return policyFixtureWith(t, authz.CacheOptions{})
}

// policyFixtureWith is policyFixture with a verified-token cache.
func policyFixtureWith(t *testing.T, cache authz.CacheOptions) *fixture {
	t.Helper()
	p, err := policy.New([]policy.Rule{
		{Name: "health", Match: policy.Match{PathExact: "/healthz"}, Action: policy.Allow},
		{Name: "preflight", Match: policy.Match{Methods: []string{"OPTIONS"}}, Action: policy.Allow},
		{Name: "closed", Match: policy.Match{Host: "*.internal.example.com"}, Action: policy.Deny},
		{Name: "admin", Match: policy.Match{PathPrefix: "/admin"}, Require: policy.Require{GroupsAny: []string{"admins"}}},
		{Name: "feed", Match: policy.Match{PathPrefix: "/feed"}, Action: policy.Optional},
		{Name: "by_route", Match: policy.Match{ContextExtensions: map[string]string{"policy": "public"}}, Action: policy.Allow},
	}, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	return newFixtureWith(t, p, cache)
}

func transportCases(t *testing.T, f *fixture) []transportCase {
	access := f.iss.MustMint(t, at(f.iss.Access()))
	adminClaims := at(f.iss.Access())
	adminClaims["cognito:groups"] = []string{"admins"}
	admin := f.iss.MustMint(t, adminClaims)
	bearer := func(tok string) map[string]string { return map[string]string{"authorization": "Bearer " + tok} }
	aliceSet := map[string]string{"x-auth-sub": "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", "x-auth-username": "alice",
		"x-auth-groups": "users", "x-auth-scopes": "aws.cognito.signin.user.admin openid email",
		"x-auth-client-id": "devclient", "x-auth-token-use": "access", "x-auth-pool": "main"}
	adminSet := map[string]string{}
	for k, v := range aliceSet {
		adminSet[k] = v
	}
	adminSet["x-auth-groups"] = "admins"
	deny := func(status int, reason authz.Reason) outcome {
		auth := map[int]string{401: `Bearer error="invalid_token"`, 403: `Bearer error="insufficient_scope"`}[status]
		return outcome{Status: status, Reason: string(reason), Set: map[string]string{"content-type": "application/json", "www-authenticate": auth}}
	}
	anonymous := outcome{Allowed: true, Remove: identityRemoved}
	spoofed := outcome{Status: 400, Reason: string(authz.ReasonIdentitySpoofed), Set: map[string]string{"content-type": "application/json"}}
	return []transportCase{
		{name: "default_valid_token", path: "/orders?x=1", headers: bearer(access),
			want: outcome{Allowed: true, Set: aliceSet, Remove: []string{"x-auth-email", "x-auth-tenant"}}},
		{name: "default_no_token", path: "/orders", want: deny(401, authz.ReasonTokenMissing)},
		{name: "default_expired", path: "/orders", headers: bearer(f.iss.MustMint(t, expiredAt(f.iss.Access()))), want: deny(401, authz.ReasonTokenExpired)},
		{name: "default_tampered", path: "/orders", headers: bearer(testkit.Tamper(access)), want: deny(401, authz.ReasonSignatureInvalid)},
		{name: "allow_rule_removes_spoofed_identity", path: "/healthz", headers: map[string]string{"x-auth-sub": "evil"}, want: anonymous},
		{name: "allow_rule_query_ignored", path: "/healthz?full=1", want: anonymous},
		{name: "preflight_any_path", method: "OPTIONS", path: "/admin/users", want: anonymous},
		{name: "deny_rule_by_host", host: "db.internal.example.com:8443", path: "/", headers: bearer(admin), want: deny(403, authz.ReasonRuleDenied)},
		{name: "group_required_allow", path: "/admin/users", headers: bearer(admin), want: outcome{Allowed: true, Set: adminSet, Remove: []string{"x-auth-email", "x-auth-tenant"}}},
		{name: "group_required_deny", path: "/admin/users", headers: bearer(access), want: deny(403, authz.ReasonGroupRequired)},
		{name: "group_required_dotdot_trap", path: "/healthz/../admin/users", headers: bearer(access), want: deny(403, authz.ReasonGroupRequired)},
		{name: "group_required_no_token", path: "/admin", want: deny(401, authz.ReasonTokenMissing)},
		// Spellings of /admin that some upstream serves as /admin: judged by the admin rule too (nginx and
		// Caddy decode %2F, Tomcat cuts ";…" per segment, Express, Caddy and IIS ignore case, IIS reads "\").
		{name: "encoded_slash_is_admin", path: "/admin%2Fusers", headers: bearer(access), want: deny(403, authz.ReasonGroupRequired)},
		{name: "encoded_slash_climb", path: "/feed/..%2Fadmin/x", want: deny(401, authz.ReasonTokenMissing)},
		{name: "encoded_backslash_climb", path: "/feed/..%5Cadmin", want: deny(401, authz.ReasonTokenMissing)},
		{name: "double_encoded_slash_climb", path: "/feed/..%252Fadmin", want: deny(401, authz.ReasonTokenMissing)},
		{name: "tomcat_dotdot_param", path: "/feed/..;/admin/users", want: deny(401, authz.ReasonTokenMissing)},
		{name: "tomcat_param_in_segment", path: "/admin;x=1/users", headers: bearer(access), want: deny(403, authz.ReasonGroupRequired)},
		{name: "encoded_semicolon_climb", path: "/feed/..%3B/admin", want: deny(401, authz.ReasonTokenMissing)},
		{name: "upper_case", path: "/ADMIN/users", headers: bearer(access), want: deny(403, authz.ReasonGroupRequired)},
		{name: "windows_trailing_dot", path: "/Admin./users", headers: bearer(access), want: deny(403, authz.ReasonGroupRequired)},
		// "/healthz;v=1" is /healthz to Tomcat but another resource (the default rule's) to Go or nginx.
		{name: "param_on_exact_public", path: "/healthz;v=1", want: deny(401, authz.ReasonTokenMissing)},
		// Method rules see the request's method, never an override header.
		{name: "method_override_not_seen", path: "/admin/users", headers: map[string]string{"x-http-method-override": "OPTIONS"},
			want: deny(401, authz.ReasonTokenMissing)},
		{name: "optional_with_token", path: "/feed", headers: bearer(access), want: outcome{Allowed: true, Set: aliceSet, Remove: []string{"x-auth-email", "x-auth-tenant"}}},
		{name: "optional_without_token", path: "/feed", want: anonymous},
		{name: "optional_invalid_token", path: "/feed", headers: bearer(testkit.Tamper(access)), want: deny(401, authz.ReasonSignatureInvalid)},
		{name: "context_extension_policy", path: "/anything", ctxExt: map[string]string{"policy": "public"}, want: anonymous, grpcOnly: true},
		// x_auth_sub is HTTP_X_AUTH_SUB to CGI, WSGI, Rack and PHP upstreams, the same key as x-auth-sub, and
		// neither headers_to_remove nor a forward-auth proxy's copied headers name it: refused.
		{name: "underscore_identity_with_token", path: "/orders", headers: map[string]string{"authorization": "Bearer " + access, "x_auth_groups": "admins"},
			want: spoofed},
		{name: "underscore_identity_on_allow_rule", path: "/healthz", headers: map[string]string{"x_auth_sub": "evil"}, want: spoofed},
		{name: "mixed_separators_claim_header", path: "/healthz", headers: map[string]string{"x-auth_tenant": "evil"}, want: spoofed},
		{name: "underscore_other_header_passes", path: "/healthz", headers: map[string]string{"x_custom_thing": "1", "x_auth": "1"}, want: anonymous},
	}
}

func expiredAt(c jwt.MapClaims) jwt.MapClaims {
	c = at(c)
	c["exp"] = now.Add(-2 * time.Hour).Unix()
	return c
}

// TestTransportsAgree asks every case over a real gRPC server and a real HTTP server and expects the same
// outcome from both: one core, two wire formats.
func TestTransportsAgree(t *testing.T) {
	f := policyFixture(t)
	conn := f.serve(t)
	hs := httptest.NewServer(extauthz.NewHTTPHandler(f.a, extauthz.HTTPOptions{}))
	t.Cleanup(hs.Close)
	for _, tt := range transportCases(t, f) {
		method, host := tt.method, tt.host
		if method == "" {
			method = "GET"
		}
		if host == "" {
			host = "api.example.com"
		}
		t.Run(tt.name+"/grpc", func(t *testing.T) {
			t.Parallel()
			resp, err := extauthz.Check(t.Context(), conn, extauthz.Probe{Method: method, Host: host, Path: tt.path, Headers: tt.headers, ContextExtensions: tt.ctxExt})
			if err != nil {
				t.Fatal(err)
			}
			s := extauthz.Summarize(resp)
			got := outcome{Allowed: s.Allowed, Set: scheme(lines(s.Set)), Remove: s.Remove}
			if !s.Allowed {
				got.Status, got.Reason = s.HTTPStatus, s.Reason
				var body map[string]string
				if err := json.Unmarshal([]byte(s.Body), &body); err != nil || body["error"] != s.Reason {
					t.Errorf("body %q does not carry the reason %q", s.Body, s.Reason)
				}
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("gRPC outcome mismatch (-want +got):\n%s", diff)
			}
		})
		if tt.grpcOnly {
			continue
		}
		t.Run(tt.name+"/http", func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), method, hs.URL+tt.path, nil)
			if err != nil {
				t.Fatal(err)
			}
			req.Host = host
			for k, v := range tt.headers {
				req.Header.Set(k, v)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			got := outcome{Allowed: resp.StatusCode == http.StatusOK, Set: map[string]string{}}
			var blank []string // an allow answers every identity header; those it removes, empty
			for k := range resp.Header {
				name := strings.ToLower(k)
				if got.Allowed && strings.HasPrefix(name, "x-auth-") && resp.Header.Get(k) == "" {
					blank = append(blank, name)
				} else if strings.HasPrefix(name, "x-auth-") || name == "www-authenticate" || (name == "content-type" && !got.Allowed) {
					got.Set[name] = resp.Header.Get(k)
				}
			}
			if diff := cmp.Diff(tt.want.Remove, blank, cmpopts.EquateEmpty(), cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
				t.Errorf("identity headers answered empty mismatch (-want +got):\n%s", diff)
			}
			got.Set = scheme(got.Set)
			if got.Allowed {
				if len(body) != 0 {
					t.Errorf("allow with a body %q", body)
				}
				if v := resp.Header.Get(extauthz.HeadersToRemove); v != "" {
					got.Remove = strings.Split(v, ",")
				}
			} else {
				got.Status = resp.StatusCode
				var b map[string]string
				if err := json.Unmarshal(body, &b); err != nil {
					t.Fatalf("deny body %q: %v", body, err)
				}
				got.Reason = b["error"]
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("HTTP outcome mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

// scheme keeps the error of a www-authenticate value and drops its description, which the reason names.
func scheme(m map[string]string) map[string]string {
	if v, ok := m["www-authenticate"]; ok {
		m["www-authenticate"], _, _ = strings.Cut(v, ", error_description=")
	}
	return m
}

func lines(hs []string) map[string]string {
	m := map[string]string{}
	for _, h := range hs {
		k, v, _ := strings.Cut(h, ": ")
		m[k] = v
	}
	return m
}

// TestHTTPRequest checks the translation of an HTTP ext_authz request: the configured prefix, the forwarded
// headers only when trusted, and repeated headers joined as Envoy joins them.
func TestHTTPRequest(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		opts    extauthz.HTTPOptions
		target  string
		headers http.Header
		want    authz.Request
	}{
		{name: "plain", target: "/orders/1?x=%2F", want: authz.Request{Method: "GET", Host: "api.example.com", Path: "/orders/1?x=%2F"}},
		{name: "raw_path_not_decoded", target: "/admin%2Fx/../y", want: authz.Request{Method: "GET", Host: "api.example.com", Path: "/admin%2Fx/../y"}},
		{name: "prefix_stripped", opts: extauthz.HTTPOptions{PathPrefix: "/authz"}, target: "/authz/orders?x=1",
			want: authz.Request{Method: "GET", Host: "api.example.com", Path: "/orders?x=1"}},
		{name: "prefix_alone_is_root", opts: extauthz.HTTPOptions{PathPrefix: "/authz"}, target: "/authz",
			want: authz.Request{Method: "GET", Host: "api.example.com", Path: "/"}},
		{name: "prefix_segment_aware", opts: extauthz.HTTPOptions{PathPrefix: "/authz"}, target: "/authzfoo",
			want: authz.Request{Method: "GET", Host: "api.example.com", Path: "/authzfoo"}},
		{name: "forwarded_ignored_by_default", target: "/admin",
			headers: http.Header{"X-Forwarded-Uri": {"/healthz"}, "X-Forwarded-Method": {"OPTIONS"}, "X-Forwarded-Host": {"public.example.com"}},
			want:    authz.Request{Method: "GET", Host: "api.example.com", Path: "/admin"}},
		{name: "legacy_trusted_traefik", opts: extauthz.HTTPOptions{TrustForwarded: true}, target: "/",
			headers: http.Header{"X-Forwarded-Uri": {"/admin?x=1"}, "X-Forwarded-Method": {"DELETE"}, "X-Forwarded-Host": {"app.example.com, proxy"}},
			want:    authz.Request{Method: "DELETE", Host: "app.example.com", Path: "/admin?x=1"}},
		{name: "legacy_trusted_nginx", opts: extauthz.HTTPOptions{TrustForwarded: true, PathPrefix: "/auth"}, target: "/auth",
			headers: http.Header{"X-Original-Uri": {"/admin/x"}, "X-Original-Method": {"POST"}},
			want:    authz.Request{Method: "POST", Host: "api.example.com", Path: "/admin/x"}},
		{name: "legacy_neither_reads_request", opts: extauthz.HTTPOptions{TrustForwarded: true}, target: "/admin",
			want: authz.Request{Method: "GET", Host: "api.example.com", Path: "/admin"}},
		{name: "nginx_family", opts: extauthz.HTTPOptions{Forwarded: extauthz.ForwardedNginx, PathPrefix: "/auth"}, target: "/auth",
			headers: http.Header{"X-Original-Uri": {"/admin/x?y"}, "X-Original-Method": {"PUT"}, "X-Forwarded-Host": {"evil.example.com"}},
			want:    authz.Request{Method: "PUT", Host: "api.example.com", Path: "/admin/x?y"}},
		{name: "nginx_absolute_form_uri", opts: extauthz.HTTPOptions{Forwarded: extauthz.ForwardedNginx}, target: "/auth",
			headers: http.Header{"X-Original-Uri": {"http://evil.example.com/admin/x?y"}, "X-Original-Method": {"GET"}},
			want:    authz.Request{Method: "GET", Host: "api.example.com", Path: "/admin/x?y"}},
		{name: "traefik_family", opts: extauthz.HTTPOptions{Forwarded: extauthz.ForwardedTraefik}, target: "/",
			headers: http.Header{"X-Forwarded-Uri": {"/admin"}, "X-Forwarded-Method": {"GET"}, "X-Forwarded-Host": {"app.example.com"}},
			want:    authz.Request{Method: "GET", Host: "app.example.com", Path: "/admin"}},
		{name: "caddy_family_host_header", opts: extauthz.HTTPOptions{Forwarded: extauthz.ForwardedCaddy}, target: "/",
			headers: http.Header{"X-Forwarded-Uri": {"/admin"}, "X-Forwarded-Method": {"POST"}},
			want:    authz.Request{Method: "POST", Host: "api.example.com", Path: "/admin"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", tt.target, nil)
			req.Host = "api.example.com"
			for k, vs := range tt.headers {
				req.Header[k] = vs
			}
			got := extauthz.NewHTTPHandler(nil, tt.opts).Request(req)
			got.Headers = nil
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Request() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestHTTPRepeatedHeadersJoined(t *testing.T) {
	t.Parallel()
	req := httptest.NewRequest("GET", "/", nil)
	req.Header["Authorization"] = []string{"Bearer a.b.c", "Bearer d.e.f"}
	req.Header["Cookie"] = []string{"a=1", "id_token=x.y.z"}
	h := extauthz.NewHTTPHandler(nil, extauthz.HTTPOptions{}).Request(req).Headers
	got := []string{h.Get("authorization"), h.Get("cookie"), h.Get("x-missing")}
	if diff := cmp.Diff([]string{"Bearer a.b.c,Bearer d.e.f", "a=1; id_token=x.y.z", ""}, got); diff != "" {
		t.Errorf("joined headers mismatch (-want +got):\n%s", diff)
	}
}

func TestWriteHTTPForwardTokenFalse(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	extauthz.WriteHTTP(w, &authz.Decision{Outcome: authz.Allow, Headers: []authz.Header{{Name: "x-auth-sub", Value: "s"}},
		Remove: []string{"x-auth-email", "authorization"}, Unset: []string{"x-auth-email"}})
	got := []string{w.Header().Get("x-auth-sub"), w.Header().Get(extauthz.HeadersToRemove), strings.Join(w.Header().Values("x-auth-email"), "|")}
	if diff := cmp.Diff([]string{"s", "x-auth-email,authorization", ""}, got); diff != "" || w.Code != 200 {
		t.Errorf("WriteHTTP mismatch (-want +got):\n%s (status %d)", diff, w.Code)
	}
	if w.Header().Get("authorization") != "" || len(w.Header().Values("authorization")) != 0 {
		t.Error("the token header is answered: only identity headers (Unset) are answered empty")
	}
}

func TestWriteHTTPDryRunMarker(t *testing.T) {
	t.Parallel()
	w := httptest.NewRecorder()
	extauthz.WriteHTTP(w, &authz.Decision{Outcome: authz.Allow, Reason: authz.ReasonGroupRequired, DryRun: true,
		WouldBe: authz.Forbidden, Remove: []string{"x-auth-sub"}})
	if got := w.Header().Get(authz.DryRunHeader); w.Code != 200 || got != string(authz.ReasonGroupRequired) {
		t.Errorf("dry-run allow: status %d, %s = %q; want 200 and the would-be reason", w.Code, authz.DryRunHeader, got)
	}
	w = httptest.NewRecorder()
	extauthz.WriteHTTP(w, &authz.Decision{Outcome: authz.Allow, Reason: authz.ReasonOK})
	if got := w.Header().Get(authz.DryRunHeader); got != "" {
		t.Errorf("plain allow carries %s: %q", authz.DryRunHeader, got)
	}
}

// TestHTTPForwardedRefused: with a forwarded family configured, a request whose forwarded headers could be
// the client's is refused (forwarded_invalid): the other family's method or URI header (nginx passes every
// client header through; Caddy and Traefik too), a trusted header sent twice, a missing one, a value that is
// no method or URI. Each would otherwise let the client pick the path or method it is judged by.
func TestHTTPForwardedRefused(t *testing.T) {
	t.Parallel()
	nginx := extauthz.HTTPOptions{Forwarded: extauthz.ForwardedNginx}
	traefik := extauthz.HTTPOptions{Forwarded: extauthz.ForwardedTraefik}
	caddy := extauthz.HTTPOptions{Forwarded: extauthz.ForwardedCaddy}
	legacy := extauthz.HTTPOptions{TrustForwarded: true}
	orig := func(uri, method string) http.Header {
		return http.Header{"X-Original-Uri": {uri}, "X-Original-Method": {method}}
	}
	fwd := func(uri, method string) http.Header {
		return http.Header{"X-Forwarded-Uri": {uri}, "X-Forwarded-Method": {method}}
	}
	with := func(h http.Header, k string, vs ...string) http.Header {
		h = h.Clone()
		h[k] = append(h[k], vs...)
		return h
	}
	tests := []struct {
		name    string
		opts    extauthz.HTTPOptions
		headers http.Header
	}{
		{name: "nginx_client_forwarded_uri", opts: nginx, headers: with(orig("/admin", "GET"), "X-Forwarded-Uri", "/healthz")},
		{name: "nginx_client_forwarded_method", opts: nginx, headers: with(orig("/admin", "GET"), "X-Forwarded-Method", "OPTIONS")},
		{name: "nginx_repeated_uri", opts: nginx, headers: with(orig("/admin", "GET"), "X-Original-Uri", "/healthz")},
		{name: "nginx_repeated_method", opts: nginx, headers: with(orig("/admin", "GET"), "X-Original-Method", "OPTIONS")},
		{name: "nginx_missing_uri", opts: nginx, headers: http.Header{"X-Original-Method": {"GET"}}},
		{name: "nginx_missing_method", opts: nginx, headers: http.Header{"X-Original-Uri": {"/admin"}}},
		{name: "nginx_missing_both", opts: nginx},
		{name: "nginx_relative_uri", opts: nginx, headers: orig("admin", "GET")},
		{name: "nginx_bad_method", opts: nginx, headers: orig("/admin", "GET /x")},
		{name: "traefik_client_original_uri", opts: traefik, headers: with(fwd("/admin", "GET"), "X-Original-Uri", "/healthz")},
		{name: "traefik_client_original_method", opts: traefik, headers: with(fwd("/admin", "GET"), "X-Original-Method", "OPTIONS")},
		{name: "traefik_repeated_uri", opts: traefik, headers: with(fwd("/admin", "GET"), "X-Forwarded-Uri", "/healthz")},
		{name: "traefik_repeated_host", opts: traefik, headers: with(fwd("/admin", "GET"), "X-Forwarded-Host", "a.example.com", "b.example.com")},
		{name: "traefik_host_list", opts: traefik, headers: with(fwd("/admin", "GET"), "X-Forwarded-Host", "public.example.com, api.example.com")},
		{name: "caddy_client_original_uri", opts: caddy, headers: with(fwd("/admin", "GET"), "X-Original-Uri", "/healthz")},
		{name: "caddy_missing_method", opts: caddy, headers: http.Header{"X-Forwarded-Uri": {"/admin"}}},
		{name: "caddy_empty_uri", opts: caddy, headers: fwd("", "GET")},
		{name: "legacy_both_families", opts: legacy, headers: with(orig("/admin", "GET"), "X-Forwarded-Uri", "/healthz")},
		{name: "legacy_repeated", opts: legacy, headers: with(fwd("/admin", "GET"), "X-Forwarded-Uri", "/healthz")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req := httptest.NewRequest("GET", "/auth", nil)
			req.Host = "api.example.com"
			for k, vs := range tt.headers {
				req.Header[k] = vs
			}
			got := extauthz.NewHTTPHandler(nil, tt.opts).Request(req)
			if got.Invalid == nil {
				t.Fatalf("Request() = %+v: accepted, want it refused", got)
			}
		})
	}
}

// TestHTTPForwardedSpoofing runs the forward-auth header spoofs against a real HTTP server: the client's
// X-Forwarded-Uri or X-Forwarded-Method behind nginx (and X-Original-* behind Caddy) is refused with 400
// forwarded_invalid, and what the proxy sent decides otherwise.
func TestHTTPForwardedSpoofing(t *testing.T) {
	f := policyFixture(t)
	serve := func(opts extauthz.HTTPOptions) string {
		hs := httptest.NewServer(extauthz.NewHTTPHandler(f.a, opts))
		t.Cleanup(hs.Close)
		return hs.URL
	}
	nginx := serve(extauthz.HTTPOptions{Forwarded: extauthz.ForwardedNginx, PathPrefix: "/auth"})
	caddy := serve(extauthz.HTTPOptions{Forwarded: extauthz.ForwardedCaddy})
	legacy := serve(extauthz.HTTPOptions{TrustForwarded: true})
	tests := []struct {
		name    string
		url     string
		headers [][2]string
		status  int
		reason  string
	}{
		{name: "nginx_original_admin", url: nginx + "/auth", headers: [][2]string{{"X-Original-URI", "/admin/users"}, {"X-Original-Method", "GET"}},
			status: 401, reason: "token_missing"},
		{name: "nginx_spoofed_forwarded_uri", url: nginx + "/auth", headers: [][2]string{{"X-Original-URI", "/admin/users"}, {"X-Original-Method", "GET"},
			{"X-Forwarded-Uri", "/healthz"}}, status: 400, reason: "forwarded_invalid"},
		{name: "nginx_spoofed_forwarded_method", url: nginx + "/auth", headers: [][2]string{{"X-Original-URI", "/admin/users"}, {"X-Original-Method", "GET"},
			{"X-Forwarded-Method", "OPTIONS"}}, status: 400, reason: "forwarded_invalid"},
		{name: "nginx_repeated_original_uri", url: nginx + "/auth", headers: [][2]string{{"X-Original-URI", "/admin/users"}, {"X-Original-URI", "/healthz"},
			{"X-Original-Method", "GET"}}, status: 400, reason: "forwarded_invalid"},
		{name: "nginx_path_bypass_in_original_uri", url: nginx + "/auth", headers: [][2]string{{"X-Original-URI", "/feed/..;/admin/users"}, {"X-Original-Method", "GET"}},
			status: 401, reason: "token_missing"},
		{name: "nginx_public", url: nginx + "/auth", headers: [][2]string{{"X-Original-URI", "/healthz"}, {"X-Original-Method", "GET"}}, status: 200},
		{name: "caddy_forwarded_admin", url: caddy + "/", headers: [][2]string{{"X-Forwarded-Uri", "/admin"}, {"X-Forwarded-Method", "GET"}},
			status: 401, reason: "token_missing"},
		{name: "caddy_spoofed_original_uri", url: caddy + "/", headers: [][2]string{{"X-Forwarded-Uri", "/admin"}, {"X-Forwarded-Method", "GET"},
			{"X-Original-URI", "/healthz"}}, status: 400, reason: "forwarded_invalid"},
		{name: "caddy_preflight", url: caddy + "/", headers: [][2]string{{"X-Forwarded-Uri", "/admin"}, {"X-Forwarded-Method", "OPTIONS"}}, status: 200},
		{name: "legacy_spoofed_forwarded_uri", url: legacy + "/", headers: [][2]string{{"X-Original-URI", "/admin/users"}, {"X-Forwarded-Uri", "/healthz"}},
			status: 400, reason: "forwarded_invalid"},
		{name: "legacy_spoofed_forwarded_method", url: legacy + "/", headers: [][2]string{{"X-Original-URI", "/admin/users"}, {"X-Forwarded-Method", "OPTIONS"}},
			status: 400, reason: "forwarded_invalid"},
		{name: "legacy_original_only", url: legacy + "/", headers: [][2]string{{"X-Original-URI", "/admin/users"}}, status: 401, reason: "token_missing"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), "GET", tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			for _, h := range tt.headers {
				req.Header.Add(h[0], h[1])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d (%s), want %d", resp.StatusCode, body, tt.status)
			}
			if tt.reason != "" {
				var b map[string]string
				if err := json.Unmarshal(body, &b); err != nil || b["error"] != tt.reason {
					t.Errorf("body %q, want reason %s", body, tt.reason)
				}
			}
		})
	}
}

// TestHTTPAnswersEveryIdentityHeader: an HTTP allow names every configured identity header, with the
// identity's value or empty, whatever the identity lacks and on anonymous allows too. Forward-auth proxies
// copy named headers from the answer (Caddy copy_headers, Traefik authResponseHeaders, nginx
// auth_request_set); a name missing from the answer left the client's copy in place (later Caddys) or sent
// a literal placeholder (Caddy 2.6). The unset ones are still listed in x-envoy-auth-headers-to-remove.
func TestHTTPAnswersEveryIdentityHeader(t *testing.T) {
	spoofed := map[string]string{}
	for _, n := range identityRemoved {
		spoofed[n] = "spoofed"
	}
	for _, cached := range []bool{false, true} {
		cache := authz.CacheOptions{}
		if cached {
			cache = cacheOn
		}
		f := policyFixtureWith(t, cache)
		hs := httptest.NewServer(extauthz.NewHTTPHandler(f.a, extauthz.HTTPOptions{}))
		t.Cleanup(hs.Close)
		access := f.iss.MustMint(t, at(f.iss.Access()))
		alice := map[string]string{"x-auth-sub": "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", "x-auth-username": "alice",
			"x-auth-groups": "users", "x-auth-scopes": "aws.cognito.signin.user.admin openid email",
			"x-auth-client-id": "devclient", "x-auth-token-use": "access", "x-auth-pool": "main", "x-auth-email": "", "x-auth-tenant": ""}
		empty := map[string]string{}
		for _, n := range identityRemoved {
			empty[n] = ""
		}
		tests := []struct {
			name       string
			path       string
			token      string
			want       map[string]string // every identity header in the answer, by value
			wantRemove []string
		}{
			{name: "valid_token", path: "/orders", token: access, want: alice, wantRemove: []string{"x-auth-email", "x-auth-tenant"}},
			{name: "allow_rule", path: "/healthz", want: empty, wantRemove: identityRemoved},
			{name: "allow_rule_with_token", path: "/healthz", token: access, want: empty, wantRemove: identityRemoved},
			{name: "optional_without_token", path: "/feed", want: empty, wantRemove: identityRemoved},
			{name: "optional_with_token", path: "/feed", token: access, want: alice, wantRemove: []string{"x-auth-email", "x-auth-tenant"}},
		}
		for _, tt := range tests {
			t.Run(fmt.Sprintf("%s/cached=%v", tt.name, cached), func(t *testing.T) {
				t.Parallel()
				for pass := range 2 { // the second pass of a cached fixture is served from the cache
					req, err := http.NewRequestWithContext(t.Context(), "GET", hs.URL+tt.path, nil)
					if err != nil {
						t.Fatal(err)
					}
					for k, v := range spoofed {
						req.Header.Set(k, v) // the handler must not echo a request header
					}
					if tt.token != "" {
						req.Header.Set("Authorization", "Bearer "+tt.token)
					}
					resp, err := http.DefaultClient.Do(req)
					if err != nil {
						t.Fatal(err)
					}
					resp.Body.Close()
					if resp.StatusCode != http.StatusOK {
						t.Fatalf("pass %d: status %d, want 200", pass, resp.StatusCode)
					}
					got := map[string]string{}
					for k, vs := range resp.Header {
						if name := strings.ToLower(k); strings.HasPrefix(name, "x-auth-") {
							got[name] = strings.Join(vs, "|")
						}
					}
					if diff := cmp.Diff(tt.want, got); diff != "" {
						t.Errorf("pass %d: identity headers of the answer mismatch (-want +got):\n%s", pass, diff)
					}
					if diff := cmp.Diff(tt.wantRemove, strings.Split(resp.Header.Get(extauthz.HeadersToRemove), ",")); diff != "" {
						t.Errorf("pass %d: %s mismatch (-want +got):\n%s", pass, extauthz.HeadersToRemove, diff)
					}
				}
			})
		}
	}
}
