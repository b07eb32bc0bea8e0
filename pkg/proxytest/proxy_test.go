package proxytest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// identityHeaders are the default identity headers, the ones every recipe names.
var identityHeaders = []string{"X-Auth-Sub", "X-Auth-Username", "X-Auth-Groups", "X-Auth-Scopes",
	"X-Auth-Client-Id", "X-Auth-Token-Use", "X-Auth-Email", "X-Auth-Pool"}

// serviceConfig is cognito-authz behind a forward-auth proxy: the HTTP protocol, the proxy's one family of
// forwarded headers trusted (server.http_forwarded),
// a public, an admin and an optional route, and a host that is open to all (which the client must not be able
// to claim in a forwarded header).
const serviceConfig = `
server:
  grpc_addr: "127.0.0.1:0"
  http_addr: "127.0.0.1:0"
  admin_addr: "127.0.0.1:0"
  http_forwarded: %s
log: {level: info}
pools:
  - name: dev
    user_pool_id: %s
    client_ids: [%s]
    token_use: access
    issuer: %s
    jwks_url: %s
rules:
  - {name: public, match: {path_prefix: /public}, action: allow}
  - {name: admin,  match: {path_prefix: /admin}, require: {groups_any: [admins]}}
  - {name: feed,   match: {path_prefix: /feed}, action: optional}
  - {name: open,   match: {host: open.example.com}, action: allow}
default: authenticated
`

// env is one cognito-authz, one echo upstream and the tokens the cases send.
type env struct {
	authz, app string // host:port
	tokens     map[string]string
	identities map[string]map[string]string // by token name: the identity headers the upstream must see
}

func startEnv(t *testing.T, forwarded string) *env {
	t.Helper()
	iss := testkit.Start(t)
	e := &env{
		authz: startService(t, fmt.Sprintf(serviceConfig, forwarded, iss.PoolID, iss.ClientID, iss.URL, iss.JWKSURL())),
		app:   startUpstream(t),
	}
	admin := iss.Access()
	admin["username"], admin["sub"], admin["cognito:groups"] = "root", "0b5f3c1e-7a2d-4c1b-9e0f-bbbbbbbbbbbb", []string{"admins", "users"}
	expired := iss.Access()
	expired["iat"], expired["exp"] = time.Now().Add(-2*time.Hour).Unix(), time.Now().Add(-time.Hour).Unix()
	alice := iss.MustMint(t, iss.Access())
	e.tokens = map[string]string{
		"alice":    alice,
		"admin":    iss.MustMint(t, admin),
		"m2m":      iss.MustMint(t, iss.M2M()),
		"expired":  iss.MustMint(t, expired),
		"tampered": alice[:len(alice)-4] + flip(alice[len(alice)-4:]),
		"id_token": iss.MustMint(t, jwt.MapClaims(iss.IDToken())),
	}
	base := map[string]string{"X-Auth-Client-Id": iss.ClientID, "X-Auth-Token-Use": "access", "X-Auth-Pool": "dev",
		"X-Auth-Scopes": "aws.cognito.signin.user.admin openid email"}
	with := func(kv ...string) map[string]string {
		m := map[string]string{}
		for k, v := range base {
			m[k] = v
		}
		for i := 0; i < len(kv); i += 2 {
			m[kv[i]] = kv[i+1]
		}
		return m
	}
	e.identities = map[string]map[string]string{
		"alice": with("X-Auth-Sub", "0b5f3c1e-7a2d-4c1b-9e0f-aaaaaaaaaaaa", "X-Auth-Username", "alice", "X-Auth-Groups", "users"),
		"admin": with("X-Auth-Sub", "0b5f3c1e-7a2d-4c1b-9e0f-bbbbbbbbbbbb", "X-Auth-Username", "root", "X-Auth-Groups", "admins,users"),
		"m2m":   with("X-Auth-Sub", iss.ClientID, "X-Auth-Scopes", "orders/read orders/write"),
		"":      {},
	}
	return e
}

// flip changes the last characters of a token's signature so that it no longer verifies.
func flip(s string) string {
	if s == "AAAA" {
		return "BBBB"
	}
	return "AAAA"
}

// spoof is a client's attempt to name its own identity: every identity header, one of them twice.
func spoof(h http.Header) {
	for _, n := range identityHeaders {
		h.Set(n, "spoofed")
	}
	h.Add("X-Auth-Groups", "admins")
}

// proxyCase is one request through a proxy and what must come of it.
type proxyCase struct {
	name   string
	method string
	path   string
	token  string // a key of env.tokens, or "" for none
	spoof  bool
	header map[string]string // more request headers
	status int               // what the client gets
	reason string            // deny: the JSON body's error
	upID   string            // allow: whose identity the upstream sees (a key of env.identities; "" anonymous)
	// refusedOK also accepts a 400 that never reached the upstream: an ambiguous path refused (by
	// cognito-authz or by the proxy itself) is as safe as the strict rule's deny.
	refusedOK bool
	// refusedAs also accepts cognito-authz's 400 deny with this reason (a proxy that drops the request's
	// offending header itself lets it through instead).
	refusedAs string
}

// proxyCases are the cases every proxy must pass.
func proxyCases() []proxyCase {
	return []proxyCase{
		{name: "valid_token", path: "/orders/1", token: "alice", status: 200, upID: "alice"},
		{name: "valid_token_spoofed", path: "/orders/1", token: "alice", spoof: true, status: 200, upID: "alice"},
		{name: "valid_token_post", method: "POST", path: "/orders", token: "alice", spoof: true, status: 200, upID: "alice"},
		{name: "admin_token_admin_route", path: "/admin/users", token: "admin", spoof: true, status: 200, upID: "admin"},
		{name: "m2m_token_lacks_user_headers", path: "/orders", token: "m2m", spoof: true, status: 200, upID: "m2m"},
		{name: "public_spoofed", path: "/public/x", spoof: true, status: 200, upID: ""},
		{name: "public_spoofed_with_token", path: "/public/x", token: "alice", spoof: true, status: 200, upID: ""},
		{name: "optional_spoofed", path: "/feed", spoof: true, status: 200, upID: ""},
		{name: "optional_spoofed_with_token", path: "/feed", token: "alice", spoof: true, status: 200, upID: "alice"},
		{name: "no_token", path: "/orders", status: 401, reason: "token_missing"},
		{name: "no_token_spoofed", path: "/orders", spoof: true, status: 401, reason: "token_missing"},
		{name: "expired", path: "/orders", token: "expired", spoof: true, status: 401, reason: "token_expired"},
		{name: "tampered", path: "/orders", token: "tampered", status: 401, reason: "signature_invalid"},
		{name: "id_token_for_access_pool", path: "/orders", token: "id_token", status: 401, reason: "token_use_mismatch"},
		{name: "group_required", path: "/admin/users", token: "alice", spoof: true, status: 403, reason: "group_required"},
		{name: "group_required_no_token", path: "/admin/users", status: 401, reason: "token_missing"},
		{name: "dotdot_into_admin", path: "/public/../admin/users", token: "alice", status: 403, reason: "group_required"},
		// The other family of forwarded headers, sent by the client, must not pick the judged path or method.
		{name: "client_x_forwarded_uri", path: "/orders", header: map[string]string{"X-Forwarded-Uri": "/public/x"}, status: 401, reason: "token_missing", refusedAs: "forwarded_invalid"},
		{name: "client_x_forwarded_method", path: "/orders", header: map[string]string{"X-Forwarded-Method": "OPTIONS"}, status: 401, reason: "token_missing", refusedAs: "forwarded_invalid"},
		{name: "client_x_original_uri", path: "/orders", header: map[string]string{"X-Original-URI": "/public/x"}, status: 401, reason: "token_missing", refusedAs: "forwarded_invalid"},
		{name: "client_x_forwarded_host", path: "/orders", header: map[string]string{"X-Forwarded-Host": "open.example.com"}, status: 401, reason: "token_missing", refusedAs: "forwarded_invalid"},
		// X_Auth_Sub is HTTP_X_AUTH_SUB to CGI, WSGI, Rack and PHP upstreams: nginx drops such names itself,
		// cognito-authz refuses them behind Caddy and Traefik, which pass them on.
		{name: "underscore_identity_spoof", path: "/orders", token: "alice", header: map[string]string{"X_Auth_Sub": "spoofed-sub", "X_Auth_Groups": "spoofed-admins"},
			status: 200, upID: "alice", refusedAs: "identity_spoofed"},
		{name: "client_x_original_method", path: "/admin/users", token: "alice", header: map[string]string{"X-Original-Method": "OPTIONS"}, status: 403, reason: "group_required", refusedAs: "forwarded_invalid"},
	}
}

// placeholder is any Caddy placeholder: none may ever reach the upstream.
var placeholder = regexp.MustCompile(`\{[a-z_]+\.[^}]*\}`)

// runCases sends every case to the proxy at addr and checks the client's answer and the upstream's view.
func runCases(t *testing.T, proxyName, addr string, e *env, cases []proxyCase) {
	t.Helper()
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			req, err := http.NewRequestWithContext(t.Context(), tt.methodOrGet(), "http://"+addr+"/", nil)
			if err != nil {
				t.Fatal(err)
			}
			req.URL.Opaque = tt.path // sent exactly as written: no cleaning, no re-encoding
			req.Host = "app.example.com"
			if tt.spoof {
				spoof(req.Header)
			}
			for k, v := range tt.header {
				req.Header.Set(k, v)
			}
			if tt.token != "" {
				req.Header.Set("Authorization", "Bearer "+e.tokens[tt.token])
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			if err != nil {
				t.Fatal(err)
			}
			if tt.refusedOK && resp.StatusCode == http.StatusBadRequest && resp.Header.Get("X-Upstream") == "" {
				return
			}
			if tt.refusedAs != "" && resp.StatusCode == http.StatusBadRequest {
				tt.status, tt.reason = http.StatusBadRequest, tt.refusedAs
			}
			if resp.StatusCode != tt.status {
				t.Fatalf("status %d, want %d; body:\n%s", resp.StatusCode, tt.status, body)
			}
			if tt.status != http.StatusOK {
				checkDeny(t, proxyName, tt, resp, body)
				return
			}
			if resp.Header.Get("X-Upstream") != "echo" {
				t.Fatalf("200 not from the upstream: %v\n%s", resp.Header, body)
			}
			var s seen
			if err := json.Unmarshal(body, &s); err != nil {
				t.Fatalf("upstream answer %q: %v", body, err)
			}
			checkUpstream(t, tt, e, &s)
		})
	}
}

func checkDeny(t *testing.T, proxyName string, tt proxyCase, resp *http.Response, body []byte) {
	t.Helper()
	if resp.Header.Get("X-Upstream") != "" {
		t.Fatalf("a deny reached the upstream: %s", body)
	}
	wantAuth := map[int]string{401: `Bearer error="invalid_token"`, 403: `Bearer error="insufficient_scope"`}[tt.status]
	if got := resp.Header.Get("Www-Authenticate"); wantAuth != "" && !strings.HasPrefix(got, wantAuth) {
		t.Errorf("WWW-Authenticate %q, want %s...", got, wantAuth)
	}
	var b struct{ Error, ErrorDescription string }
	if err := json.Unmarshal(body, &b); err != nil || b.Error != tt.reason {
		t.Errorf("body %q: want the JSON deny with error %q (%v)", body, tt.reason, err)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q, want application/json", ct)
	}
}

// checkUpstream: the upstream sees exactly the identity the token proves (an unset header empty or absent,
// never a client's value or a placeholder), and no other identity header.
func checkUpstream(t *testing.T, tt proxyCase, e *env, s *seen) {
	t.Helper()
	want := e.identities[tt.upID]
	got := map[string]string{}
	for name, vs := range s.Header {
		for _, v := range vs {
			if placeholder.MatchString(v) || strings.Contains(v, "spoofed") {
				t.Errorf("upstream got %s: %q", name, v)
			}
		}
		if strings.HasPrefix(strings.ToLower(name), "x-auth-") {
			if v := strings.Join(vs, "|"); v != "" {
				got[http.CanonicalHeaderKey(name)] = v
			}
		}
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("identity the upstream saw mismatch (-want +got, unset headers left out):\n%s", diff)
	}
	if s.URI != tt.path {
		t.Errorf("upstream request URI %q, want the client's %q", s.URI, tt.path)
	}
	if method := tt.methodOrGet(); s.Method != method {
		t.Errorf("upstream method %s, want the client's %s", s.Method, method)
	}
	if s.Host != "app.example.com" {
		t.Errorf("upstream Host %q, want the client's app.example.com", s.Host)
	}
}

// startCaddy runs the Caddyfile recipe with the Caddy at bin and returns its address.
func startCaddy(t *testing.T, bin string, e *env) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		dir := t.TempDir()
		port := fmt.Sprint(freePort(t))
		addr := "127.0.0.1:" + port
		cfg := "{\n\tadmin off\n\tauto_https off\n}\n\n" + recipe(t, "Caddyfile", map[string]string{
			":8000 {": "http://:" + port + " {\n\tbind 127.0.0.1", "cognito-authz:9002": e.authz, "app:8080": e.app})
		if err := os.WriteFile(filepath.Join(dir, "Caddyfile"), []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, dir, []string{"HOME=" + dir, "XDG_CONFIG_HOME=" + dir, "XDG_DATA_HOME=" + dir},
			bin, "run", "--config", filepath.Join(dir, "Caddyfile"), "--adapter", "caddyfile")
		if p.waitListening(t, addr) {
			return addr
		}
		if attempt == 2 || !strings.Contains(p.output(), "address already in use") {
			t.Fatalf("caddy exited at start:\n%s", p.output())
		}
	}
}

// startNginx runs the nginx recipe (the server block) inside a minimal main config and returns its address.
func startNginx(t *testing.T, bin string, e *env) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		dir := t.TempDir()
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		server := recipe(t, "nginx.conf", map[string]string{
			"listen 8000;": "listen " + addr + ";", "cognito-authz:9002": e.authz, "app:8080": e.app})
		main := fmt.Sprintf(`daemon off;
master_process off;
pid %[1]s/nginx.pid;
error_log %[1]s/error.log warn;
events { worker_connections 64; }
http {
    access_log off;
    client_body_temp_path %[1]s/body;
    proxy_temp_path %[1]s/proxy;
    fastcgi_temp_path %[1]s/fastcgi;
    uwsgi_temp_path %[1]s/uwsgi;
    scgi_temp_path %[1]s/scgi;
%[2]s
}
`, dir, server)
		if err := os.WriteFile(filepath.Join(dir, "nginx.conf"), []byte(main), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, dir, nil, bin, "-p", dir, "-e", filepath.Join(dir, "error.log"), "-c", filepath.Join(dir, "nginx.conf"))
		if p.waitListening(t, addr) {
			return addr
		}
		logs, _ := os.ReadFile(filepath.Join(dir, "error.log"))
		if attempt == 2 || !strings.Contains(string(logs), "Address already in use") {
			t.Fatalf("nginx exited at start:\n%s\n%s", p.output(), logs)
		}
	}
}

// caddyVersion is Caddy's module version from `caddy build-info` (`caddy version` says "unknown" for a
// `go install` build), else what `caddy version` prints (Debian's: "2.6.2").
func caddyVersion(t *testing.T, bin string) string {
	t.Helper()
	if out, err := exec.Command(bin, "build-info").Output(); err == nil {
		for _, line := range strings.Split(string(out), "\n") {
			if f := strings.Fields(line); len(f) >= 3 && (f[0] == "mod" || f[0] == "dep") && f[1] == "github.com/caddyserver/caddy/v2" {
				return strings.TrimPrefix(f[2], "v")
			}
		}
	}
	out, err := exec.Command(bin, "version").Output()
	if err != nil {
		t.Fatalf("%s version: %v", bin, err)
	}
	v, _, _ := strings.Cut(strings.TrimSpace(string(out)), " ")
	return strings.TrimPrefix(v, "v")
}

// proxy is one forward-auth proxy under test: the variable the Makefile sets to its binary, where it is
// looked for without one, and how its recipe is started.
type proxy struct {
	name      string
	forwarded string // the server.http_forwarded family of its recipe
	env       string
	defaults  []string
	start     func(t *testing.T, bin string, e *env) string
	version   func(t *testing.T, bin string) // logs a version other than the one meant
}

var proxies = []proxy{
	{name: "caddy-debian", forwarded: "caddy", env: "CADDY_DEBIAN_BIN", defaults: []string{"/usr/bin/caddy"}, start: startCaddy,
		version: wantCaddy("2.6.")},
	{name: "caddy-current", forwarded: "caddy", env: "CADDY_BIN", defaults: []string{".cache/caddy-" + caddyCurrentVersion + "/caddy"}, start: startCaddy,
		version: wantCaddy(caddyCurrentVersion)},
	{name: "nginx", forwarded: "nginx", env: "NGINX_BIN", defaults: []string{"/usr/sbin/nginx", "nginx"}, start: startNginx},
	{name: "traefik", forwarded: "traefik", env: "TRAEFIK_BIN", defaults: []string{".cache/traefik-" + traefikVersion + "/traefik"}, start: startTraefik},
}

// caddyCurrentVersion is the Caddy `make proxies` builds; keep it in step with CADDY_VERSION in the Makefile.
const caddyCurrentVersion = "2.11.9"

func wantCaddy(prefix string) func(t *testing.T, bin string) {
	return func(t *testing.T, bin string) {
		if v := caddyVersion(t, bin); !strings.HasPrefix(v, prefix) {
			t.Logf("%s is Caddy %s, not %s", bin, v, prefix)
		}
	}
}

// TestProxies runs every case through every proxy, one proxy at a time (the cases of one run in parallel).
func TestProxies(t *testing.T) {
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			bin := requireBinary(t, p.env, p.defaults...)
			if p.version != nil {
				p.version(t, bin)
			}
			e := startEnv(t, p.forwarded)
			runCases(t, p.name, p.start(t, bin, e), e, proxyCases())
		})
	}
}

// pathTrickCases are spellings of a path that upstreams read differently (Tomcat strips ;params per
// segment, Express and IIS ignore case, nginx and Caddy decode %2F): each must be refused, or judged by the
// strictest rule any reading selects. The rules: /public allow, /admin needs group admins, default
// authenticated.
func pathTrickCases() []proxyCase {
	cases := []proxyCase{
		{name: "semicolon_dotdot_into_admin", path: "/public/..;/admin/x", status: 401, reason: "token_missing"},
		{name: "semicolon_dotdot_with_token", path: "/public/..;/admin/x", token: "alice", status: 403, reason: "group_required"},
		{name: "semicolon_param_admin", path: "/admin;x=1/users", token: "alice", status: 403, reason: "group_required"},
		{name: "upper_case_admin", path: "/ADMIN/users", token: "alice", status: 403, reason: "group_required"},
		{name: "encoded_slash_dotdot_into_admin", path: "/public/..%2Fadmin/x", status: 401, reason: "token_missing"},
		{name: "encoded_slash_admin", path: "/admin%2Fx", token: "alice", status: 403, reason: "group_required"},
		{name: "encoded_slash_admin_lower_hex", path: "/admin%2fx", token: "alice", status: 403, reason: "group_required"},
		{name: "encoded_backslash_admin", path: "/public/..%5Cadmin/x", status: 401, reason: "token_missing"},
	}
	for i := range cases {
		cases[i].refusedOK = true
	}
	return cases
}

// TestProxyPathTricks sends the path-trick cases through every proxy.
func TestProxyPathTricks(t *testing.T) {
	for _, p := range proxies {
		t.Run(p.name, func(t *testing.T) {
			bin := requireBinary(t, p.env, p.defaults...)
			e := startEnv(t, p.forwarded)
			runCases(t, p.name, p.start(t, bin, e), e, pathTrickCases())
		})
	}
}

// traefikVersion is the Traefik `make proxies` builds; keep it in step with TRAEFIK_VERSION in the Makefile.
const traefikVersion = "3.6.12"

// startTraefik runs the Traefik recipe (the dynamic configuration) with an entry point on a loopback port.
func startTraefik(t *testing.T, bin string, e *env) string {
	t.Helper()
	for attempt := 0; ; attempt++ {
		dir := t.TempDir()
		addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
		dyn := recipe(t, "traefik-dynamic.yml", map[string]string{"cognito-authz:9002": e.authz, "app:8080": e.app})
		if err := os.WriteFile(filepath.Join(dir, "dynamic.yml"), []byte(dyn), 0o600); err != nil {
			t.Fatal(err)
		}
		p := startProc(t, dir, []string{"HOME=" + dir}, bin,
			"--entryPoints.web.address="+addr, "--providers.file.filename="+filepath.Join(dir, "dynamic.yml"),
			"--global.checkNewVersion=false", "--global.sendAnonymousUsage=false", "--log.level=ERROR")
		if p.waitListening(t, addr) {
			waitTraefikRoute(t, p, addr)
			return addr
		}
		if attempt == 2 || !strings.Contains(p.output(), "address already in use") {
			t.Fatalf("traefik exited at start:\n%s", p.output())
		}
	}
}

// waitTraefikRoute waits until the file provider's router serves: Traefik listens before it has loaded
// the dynamic configuration and answers 404 until then. A request to /public/ (allowed anonymously) that
// the echo upstream answers is the event.
func waitTraefikRoute(t *testing.T, p *proc, addr string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/public/ready")
		if err == nil {
			resp.Body.Close()
			if resp.Header.Get("X-Upstream") == "echo" {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("traefik: the route never served within 30s:\n%s", p.output())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (tt *proxyCase) methodOrGet() string {
	if tt.method == "" {
		return "GET"
	}
	return tt.method
}
