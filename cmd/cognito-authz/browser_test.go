package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// browserTools finds node, headless Chromium, playwright-core (make browser) and caddy, or skips; in CI a
// missing one fails the test, as with cognito-local.
func browserTools(t *testing.T) (node, chromium, pwDir, caddy string) {
	t.Helper()
	root, _ := filepath.Abs("../..")
	if pwDir = os.Getenv("PLAYWRIGHT_DIR"); pwDir == "" {
		pwDir = filepath.Join(root, ".cache", "playwright")
	}
	if chromium = os.Getenv("CHROMIUM"); chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	var missing string
	node, err := exec.LookPath("node")
	if err != nil {
		missing = "node"
	}
	if caddy, err = exec.LookPath("caddy"); err != nil {
		missing = "caddy (apt-get install caddy)"
	}
	for _, p := range []string{chromium, filepath.Join(pwDir, "node_modules", "playwright-core")} {
		if _, err := os.Stat(p); err != nil {
			missing = p + " (make browser)"
		}
	}
	if missing != "" {
		if ci := os.Getenv("CI"); ci != "" && ci != "0" && ci != "false" {
			t.Fatalf("browser test: %s missing, and CI needs it", missing)
		}
		t.Skipf("browser test: %s missing", missing)
	}
	return node, chromium, pwDir, caddy
}

func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// caddyfile is the tested Caddy recipe (README "Browser sign-in"): forward_auth written out as
// reverse_proxy + handle_response, because forward_auth drops the auth answer's Set-Cookie on a 2xx, and a
// refreshed session's cookie must reach the browser. The identity headers and the Cookie the upstream may
// see are copied from the answer onto the request; then the request goes on to the upstream.
const caddyfile = `{
	admin off
	auto_https off
}
http://localhost:%d {
	reverse_proxy %s {
		method GET
		header_up X-Forwarded-Method {method}
		header_up X-Forwarded-Uri {uri}
		@allowed status 2xx
		handle_response @allowed {
			request_header X-Auth-Sub {http.reverse_proxy.header.X-Auth-Sub}
			request_header X-Auth-Username {http.reverse_proxy.header.X-Auth-Username}
			request_header X-Auth-Email {http.reverse_proxy.header.X-Auth-Email}
			request_header X-Auth-Groups {http.reverse_proxy.header.X-Auth-Groups}
			request_header Cookie {http.reverse_proxy.header.Cookie}
			copy_response_headers {
				include Set-Cookie
			}
		}
	}
	reverse_proxy %s
}
`

// TestBrowserThroughCaddy: a real headless Chromium through a real Caddy (forward_auth to the HTTP
// protocol of a real serve, built from a config file with a browser: block) to an upstream that echoes
// what it receives; the dev issuer on 127.0.0.1 and the app on localhost (cross-site, as in production).
// Scenarios: sign in and land on the original URL with its query, identity headers at the upstream and our
// cookies not; fetch() without a session gets 401 JSON; refresh inline (a token lifetime inside
// refresh_before) sets a new cookie with no sign-in page; logout then the next visit signs in; a tampered
// cookie is signed out.
func TestBrowserThroughCaddy(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser and a proxy")
	}
	node, chromium, pwDir, caddy := browserTools(t)
	iss := testkit.Start(t)
	iss.SetTokenTTL(time.Minute) // inside refresh_before (2m): every visit with an older cookie refreshes
	upstream := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]any{"uri": r.RequestURI, "headers": r.Header})
	}))
	t.Cleanup(upstream.Close)

	port := freePort(t)
	app := "http://localhost:" + strconv.Itoa(port)
	k := make([]byte, 32)
	rand.Read(k)
	keys := writeFile(t, "session-keys", base64.StdEncoding.EncodeToString(k)+"\n")
	cfg := loadConfig(t, fmt.Sprintf(`server: {grpc_addr: "127.0.0.1:0", http_addr: "127.0.0.1:0", admin_addr: "127.0.0.1:0", drain_period: 0s, http_forwarded: caddy}
pools:
  - {name: main, region: us-east-1, user_pool_id: us-east-1_AbC123, client_ids: [devclient], token_use: any, issuer: %q, jwks_url: %q}
rules:
  - {name: public, match: {path_prefix: /public}, action: allow}
  - {name: web, match: {path_prefix: /}, action: login}
browser:
  domain: %q
  client_id: devclient
  pool: main
  allowed_hosts: [localhost]
  logout_redirect: %q
  session_keys_file: %q
  insecure_http: true
`, iss.URL, iss.JWKSURL(), iss.DomainURL(), app+"/public", keys))
	svc := launch(t, cfg)
	t.Cleanup(func() { svc.stop() })

	cf := writeFile(t, "Caddyfile", fmt.Sprintf(caddyfile, port, svc.httpAddr, strings.TrimPrefix(upstream.URL, "http://")))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	proxy := exec.CommandContext(ctx, caddy, "run", "--config", cf, "--adapter", "caddyfile")
	var proxyLog syncBuffer
	proxy.Stdout, proxy.Stderr = &proxyLog, &proxyLog
	proxy.Env = append(os.Environ(), "HOME="+t.TempDir(), "XDG_DATA_HOME="+t.TempDir(), "XDG_CONFIG_HOME="+t.TempDir())
	if err := proxy.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { proxy.Process.Kill(); proxy.Wait() })
	eventually(t, 20*time.Second, "caddy listening\n"+proxyLog.String(), func() bool {
		c, err := net.Dial("tcp", "127.0.0.1:"+strconv.Itoa(port))
		if err == nil {
			c.Close()
		}
		return err == nil
	})

	cmd := exec.CommandContext(ctx, node, "testdata/browser/caddy.mjs", app, "cognito_authz")
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_DIR="+pwDir, "CHROMIUM="+chromium)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser: %v\n%s\ncaddy:\n%s", err, stderr.String(), proxyLog.String())
	}
	var got struct {
		LoginForm   bool
		AfterSignIn struct {
			URL  string
			Echo struct {
				URI     string
				Headers map[string][]string
			}
		}
		FetchAnonymous struct {
			Status int
			Body   map[string]string
		}
		Refresh struct {
			Changed, LoginForm bool
			URL                string
		}
		SessionAfterLogout   string
		LoginFormAfterLogout bool
		LoginFormAfterTamper bool
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("browser output %q: %v", out, err)
	}
	echo := got.AfterSignIn.Echo
	if !got.LoginForm || got.AfterSignIn.URL != app+"/page?x=1&y=two" || echo.URI != "/page?x=1&y=two" {
		t.Errorf("sign-in: form %v, landed on %q, upstream saw %q; want the original URL with its query", got.LoginForm, got.AfterSignIn.URL, echo.URI)
	}
	if u := echo.Headers["X-Auth-Username"]; len(u) != 1 || u[0] != "ivy" {
		t.Errorf("upstream X-Auth-Username = %v, want ivy", u)
	}
	if e := echo.Headers["X-Auth-Email"]; len(e) != 1 || e[0] != "ivy@example.com" {
		t.Errorf("upstream X-Auth-Email = %v, want the ID token's e-mail", e)
	}
	if c := strings.Join(echo.Headers["Cookie"], "; "); c != "theme=dark" {
		t.Errorf("upstream Cookie = %q, want only theme=dark (ours stripped)", c)
	}
	if got.FetchAnonymous.Status != http.StatusUnauthorized || got.FetchAnonymous.Body["error"] != "login_required" ||
		got.FetchAnonymous.Body["login"] != "/_authz/login?rd=%2Fpage%3Fz%3D3" {
		t.Errorf("fetch() without a session = %+v, want 401 login_required JSON", got.FetchAnonymous)
	}
	if !got.Refresh.Changed || got.Refresh.LoginForm || got.Refresh.URL != app+"/page?again=1" {
		t.Errorf("refresh = %+v, want a new session cookie and the page, no sign-in", got.Refresh)
	}
	if got.SessionAfterLogout != "" || !got.LoginFormAfterLogout {
		t.Errorf("after logout: session %q, sign-in form %v; want no session and the form", got.SessionAfterLogout, got.LoginFormAfterLogout)
	}
	if !got.LoginFormAfterTamper {
		t.Error("a tampered session cookie did not sign the browser out")
	}
	if iss.Revokes() != 1 {
		t.Errorf("revokes = %d, want 1 (logout revokes the refresh token)", iss.Revokes())
	}
}
