package session

import (
	"context"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
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
