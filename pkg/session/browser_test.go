package session

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// browserDeps finds headless Chromium and playwright-core (installed by `make browser`), or skips; in CI
// a missing one fails the test, as with cognito-local.
func browserDeps(t *testing.T) (node, chromium, pwDir string) {
	t.Helper()
	root, _ := filepath.Abs("../..")
	pwDir = os.Getenv("PLAYWRIGHT_DIR")
	if pwDir == "" {
		pwDir = filepath.Join(root, ".cache", "playwright")
	}
	chromium = os.Getenv("CHROMIUM")
	if chromium == "" {
		chromium = "/usr/bin/chromium"
	}
	node, err := exec.LookPath("node")
	missing := ""
	switch {
	case err != nil:
		missing = "node"
	case !exists(chromium):
		missing = chromium + " (apt-get install chromium)"
	case !exists(filepath.Join(pwDir, "node_modules", "playwright-core")):
		missing = "playwright-core (make browser)"
	}
	if missing != "" {
		if ci := os.Getenv("CI"); ci != "" && ci != "0" && ci != "false" {
			t.Fatalf("browser test: %s missing, and CI needs it", missing)
		}
		t.Skipf("browser test: %s missing", missing)
	}
	return node, chromium, pwDir
}

// TestBrowserSignsInOnDevIssuer proves the harness: a real headless Chromium fills the dev issuer's login
// form, and the code it brings back completes the flow (state, PKCE, nonce, verified tokens, session).
func TestBrowserSignsInOnDevIssuer(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	node, chromium, pwDir := browserDeps(t)
	fx := newFixture(t)
	b := newBrowser()
	resp, _ := fx.flow.Serve(t.Context(), b.nav("/_authz/login?rd=/after?x=1"))
	b.apply(t, resp)
	ctx, cancel := context.WithTimeout(t.Context(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "testdata/browser/signin.mjs", location(t, resp), "ivy", "admins,ops")
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_DIR="+pwDir, "CHROMIUM="+chromium)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("browser: %v\n%s", err, out)
	}
	landed, err := url.Parse(strings.TrimSpace(string(out)))
	if err != nil || landed.Query().Get("code") == "" {
		t.Fatalf("browser landed on %q, want the callback with a code", out)
	}
	resp, _ = fx.flow.Serve(t.Context(), b.nav(landed.RequestURI()))
	if resp.Status != http.StatusFound || location(t, resp) != "/after?x=1" {
		t.Fatalf("callback = %d %v", resp.Status, resp.Err)
	}
	b.apply(t, resp)
	s := fx.flow.Load(b.nav("/"))
	if s == nil {
		t.Fatal("no session")
	}
	id, err := fx.opts.AccessVerifier.Verify(t.Context(), s.AccessToken)
	if err != nil || id.Username != "ivy" || strings.Join(id.Groups, ",") != "admins,ops" {
		t.Fatalf("identity = %+v, %v", id, err)
	}
}

func exists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

// appHandler is a minimal transport for the flow, as the HTTP protocol will be once wired: the flow's
// paths, then the session (its access token verified), else a challenge. /public needs no session.
func appHandler(f *Flow, access Verifier) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := token.HeaderMap{}
		for k, v := range r.Header {
			h[strings.ToLower(k)] = strings.Join(v, ", ")
		}
		req := Request{Method: r.Method, Host: r.Host, Path: r.URL.RequestURI(), Headers: h}
		write := func(resp Response) {
			for _, hd := range resp.Headers {
				w.Header().Add(hd.Name, hd.Value)
			}
			w.WriteHeader(resp.Status)
			io.WriteString(w, resp.Body)
		}
		if resp, ok := f.Serve(r.Context(), req); ok {
			write(resp)
			return
		}
		if r.URL.Path == "/public" {
			io.WriteString(w, "<html><body>public</body></html>")
			return
		}
		s := f.Load(req)
		if s == nil {
			write(f.Challenge(req))
			return
		}
		id, err := access.Verify(r.Context(), s.AccessToken)
		if err != nil {
			write(f.Challenge(req))
			return
		}
		fmt.Fprintf(w, "hello %s %s cookies-upstream=%q", id.Username, r.URL.RequestURI(), f.StripCookies(h.Get("cookie")))
	})
}

// TestBrowserFullFlow: a real headless Chromium signs in (cross-site: app on localhost, issuer on
// 127.0.0.1), lands on the original URL, fetches with the session, is 401'd without one, and logs out.
func TestBrowserFullFlow(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a browser")
	}
	node, chromium, pwDir := browserDeps(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	app := "localhost:" + strconv.Itoa(ln.Addr().(*net.TCPAddr).Port)
	fx := newFixture(t, func(o *Options) {
		o.AllowedHosts, o.InsecureHTTP, o.LogoutRedirect = []string{"localhost"}, true, "http://"+app+"/public"
	})
	srv := &http.Server{Handler: appHandler(fx.flow, fx.opts.AccessVerifier), ReadHeaderTimeout: 5 * time.Second}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })

	ctx, cancel := context.WithTimeout(t.Context(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, node, "testdata/browser/flow.mjs", "http://"+app)
	cmd.Env = append(os.Environ(), "PLAYWRIGHT_DIR="+pwDir, "CHROMIUM="+chromium)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("browser: %v\n%s", err, stderr.String())
	}
	var got struct {
		LoginForm   bool
		AfterSignIn struct{ URL, Body string }
		Cookies     []struct {
			Name     string
			HTTPOnly bool `json:"httpOnly"`
			SameSite string
		}
		FetchSignedIn  int
		FetchAnonymous struct {
			Status int
			Body   map[string]string
		}
		CookiesAfterLogout   []string
		LoginFormAfterLogout bool
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("browser output %q: %v", out, err)
	}
	if !got.LoginForm || got.AfterSignIn.URL != "http://"+app+"/page?x=1" ||
		!strings.HasPrefix(got.AfterSignIn.Body, `hello ivy /page?x=1 cookies-upstream=""`) {
		t.Errorf("sign-in: form %v, landed %q with %q; want the original URL, the user, no cookies upstream", got.LoginForm, got.AfterSignIn.URL, got.AfterSignIn.Body)
	}
	if len(got.Cookies) != 1 || got.Cookies[0].Name != "cognito_authz" || !got.Cookies[0].HTTPOnly || got.Cookies[0].SameSite != "Lax" {
		t.Errorf("cookies after sign-in = %+v, want only the HttpOnly Lax session", got.Cookies)
	}
	if got.FetchSignedIn != http.StatusOK {
		t.Errorf("fetch() with a session = %d, want 200", got.FetchSignedIn)
	}
	if got.FetchAnonymous.Status != http.StatusUnauthorized || got.FetchAnonymous.Body["error"] != "login_required" ||
		got.FetchAnonymous.Body["login"] != "/_authz/login?rd=%2Fpage%3Fy%3D2" {
		t.Errorf("fetch() without a session = %+v, want 401 login_required", got.FetchAnonymous)
	}
	if len(got.CookiesAfterLogout) != 0 || !got.LoginFormAfterLogout {
		t.Errorf("after logout: cookies %v, login form %v; want none and the form", got.CookiesAfterLogout, got.LoginFormAfterLogout)
	}
	if fx.iss.Revokes() != 1 {
		t.Errorf("revokes = %d, want 1", fx.iss.Revokes())
	}
}
