package main

import (
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
	"github.com/cognito-authz/cognito-authz/pkg/server"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// configFile renders a config over the dev issuers: the first is pool "main", the others "p1", "p2"...
// flip is the action of the rule on /flip.
func configFile(flip string, issuers ...*devissuer.Issuer) string {
	var b strings.Builder
	b.WriteString("server: {grpc_addr: \"127.0.0.1:0\", http_addr: \"127.0.0.1:0\", admin_addr: \"127.0.0.1:0\"}\nlog: {level: error}\npools:\n")
	for i, iss := range issuers {
		name := "main"
		if i > 0 {
			name = fmt.Sprintf("p%d", i)
		}
		fmt.Fprintf(&b, "  - {name: %s, issuer: %q, client_ids: [%s], token_use: any}\n", name, iss.URL, iss.ClientID)
	}
	fmt.Fprintf(&b, "rules:\n  - {name: flip, match: {path_prefix: /flip}, action: %s}\ndefault: authenticated\n", flip)
	return b.String()
}

// writeFile replaces path atomically, as a careful operator (or Kubernetes) does: a reader never sees half.
func replaceFile(t *testing.T, path, data string) {
	t.Helper()
	tmp := filepath.Join(filepath.Dir(path), ".tmp-"+filepath.Base(path))
	if err := os.WriteFile(tmp, []byte(data), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type running struct {
	srv  *server.Server
	rl   *runtime.Reloader
	conn *grpc.ClientConn
}

// start serves the config at path, polling it, until the test ends.
func start(t *testing.T, path string) *running {
	t.Helper()
	cfg, err := config.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	up := make(chan *running, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, slog.New(slog.DiscardHandler), serveOptions{
			loader: &runtime.Loader{Path: path},
			listening: func(srv *server.Server, rl *runtime.Reloader) {
				up <- &running{srv: srv, rl: rl}
			},
		})
	}()
	var r *running
	select {
	case r = <-up:
	case err := <-done:
		t.Fatalf("serve() = %v", err)
	}
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("serve() = %v", err)
		}
	})
	r.conn, err = grpc.NewClient(r.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.conn.Close() })
	eventually(t, 10*time.Second, "keys loaded", r.rl.Live.Ready)
	return r
}

// eventually waits for cond, which an asynchronous event (a file watch, a key fetch) makes true.
// check asks over gRPC and returns "allow", "anonymous" or the deny reason.
func (r *running) check(t testing.TB, path, tok string) (string, error) {
	h := map[string]string{}
	if tok != "" {
		h["authorization"] = "Bearer " + tok
	}
	resp, err := extauthz.Check(context.Background(), r.conn, extauthz.Probe{Method: "GET", Host: "h", Path: path, Headers: h})
	if err != nil {
		return "", err
	}
	s := extauthz.Summarize(resp)
	switch {
	case !s.Allowed:
		return s.Reason, nil
	case len(s.Set) == 0:
		return "anonymous", nil
	}
	return "allow", nil
}

// checkHTTP asks the same over the HTTP protocol.
func (r *running) checkHTTP(path, tok string) (string, error) {
	req, err := http.NewRequest("GET", "http://"+r.srv.HTTPAddr()+path, nil)
	if err != nil {
		return "", err
	}
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	var body [512]byte
	n, _ := resp.Body.Read(body[:])
	switch {
	case resp.StatusCode != 200:
		_, reason, _ := strings.Cut(string(body[:n]), `"error":"`)
		reason, _, _ = strings.Cut(reason, `"`)
		return reason, nil
	case resp.Header.Get("X-Auth-Sub") == "":
		return "anonymous", nil
	}
	return "allow", nil
}

func (r *running) mustCheck(t *testing.T, path, tok string) string {
	t.Helper()
	got, err := r.check(t, path, tok)
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// setOf is the key set the current generation uses for the named pool.
func (r *running) setOf(pool string) *jwks.Set {
	for _, k := range r.rl.Live.Current().Keys {
		if k.Pool == pool {
			return k.Set
		}
	}
	return nil
}

func TestReload(t *testing.T) {
	mainIss, other := testkit.Start(t), testkit.Start(t)
	other.ClientID = "otherclient"
	path := filepath.Join(t.TempDir(), "config.yaml")
	replaceFile(t, path, configFile("deny", mainIss))
	r := start(t, path)
	tok := mainIss.MustMint(t, mainIss.Access())
	otherTok := other.MustMint(t, other.Access())
	mainSet := r.setOf("main")
	fetches := mainIss.Fetches()

	if got := r.mustCheck(t, "/flip", tok); got != "rule_denied" {
		t.Fatalf("before reload: /flip = %s, want rule_denied", got)
	}
	if got := r.mustCheck(t, "/x", otherTok); got != "issuer_unknown" {
		t.Fatalf("before reload: other pool's token = %s, want issuer_unknown", got)
	}

	t.Run("file_change_applied", func(t *testing.T) {
		replaceFile(t, path, configFile("allow", mainIss, other))
		eventually(t, 10*time.Second, "the polled change to apply", func() bool { got, _ := r.check(t, "/flip", tok); return got == "anonymous" })
		eventually(t, 10*time.Second, "the new pool's keys", r.rl.Live.Ready)
		if got := r.mustCheck(t, "/x", otherTok); got != "allow" {
			t.Errorf("new pool's token = %s, want allow", got)
		}
		if r.setOf("main") != mainSet {
			t.Error("the unchanged pool's key set was replaced")
		}
		if n := mainIss.Fetches(); n != fetches {
			t.Errorf("the unchanged pool's JWKS was fetched %d more times", n-fetches)
		}
	})

	t.Run("invalid_change_rejected", func(t *testing.T) {
		replaceFile(t, path, configFile("allow", mainIss, other)+"rules_typo: []\n")
		if err := r.rl.Reload("test"); err == nil || !strings.Contains(err.Error(), "rules_typo") {
			t.Fatalf("reload() = %v, want the strict-decoding error", err)
		}
		replaceFile(t, path, strings.Replace(configFile("deny", mainIss, other), "default: authenticated", "default: maybe", 1))
		if err := r.rl.Reload("test"); err == nil || !strings.Contains(err.Error(), `default "maybe"`) {
			t.Fatalf("reload() = %v, want the validation error", err)
		}
		if got := r.mustCheck(t, "/flip", tok); got != "anonymous" {
			t.Errorf("after a rejected reload /flip = %s, want the old config's anonymous", got)
		}
		if got := r.mustCheck(t, "/x", otherTok); got != "allow" {
			t.Errorf("after a rejected reload the other pool's token = %s, want allow", got)
		}
	})

	t.Run("pool_removed", func(t *testing.T) {
		replaceFile(t, path, configFile("deny", mainIss))
		if err := r.rl.Reload("test"); err != nil {
			t.Fatal(err)
		}
		if got := r.mustCheck(t, "/x", otherTok); got != "issuer_unknown" {
			t.Errorf("removed pool's token = %s, want issuer_unknown", got)
		}
		n := r.rl.Live.Running()
		if n != 1 || !r.rl.Live.Ready() {
			t.Errorf("after removing a pool: %d sets (want 1), ready %v", n, r.rl.Live.Ready())
		}
		if r.setOf("main") != mainSet {
			t.Error("the unchanged pool's key set was replaced")
		}
	})
}

// TestReloadConfigMapSwap updates the config the way Kubernetes updates a mounted ConfigMap: the file is a
// symlink through ..data, and ..data is swapped to a new directory in one rename.
func TestReloadConfigMapSwap(t *testing.T) {
	iss := testkit.Start(t)
	dir := t.TempDir()
	version := func(name, flip string) {
		if err := os.Mkdir(filepath.Join(dir, name), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, name, "config.yaml"), []byte(configFile(flip, iss)), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(name, filepath.Join(dir, "..data_tmp")); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(filepath.Join(dir, "..data_tmp"), filepath.Join(dir, "..data")); err != nil {
			t.Fatal(err)
		}
	}
	version("..v1", "deny")
	path := filepath.Join(dir, "config.yaml")
	if err := os.Symlink(filepath.Join("..data", "config.yaml"), path); err != nil {
		t.Fatal(err)
	}
	r := start(t, path)
	tok := iss.MustMint(t, iss.Access())
	if got := r.mustCheck(t, "/flip", tok); got != "rule_denied" {
		t.Fatalf("/flip = %s, want rule_denied", got)
	}
	version("..v2", "allow")
	eventually(t, 30*time.Second, "the swapped ConfigMap to apply", func() bool { got, _ := r.check(t, "/flip", tok); return got == "anonymous" })
	version("..v3", "deny")
	eventually(t, 30*time.Second, "the second swap to apply", func() bool { got, _ := r.check(t, "/flip", tok); return got == "rule_denied" })
}

// TestReloadUnderLoad reloads many times while clients keep asking over both transports: every request is
// answered, requests whose answer no reload changes always get it, and /flip gets the old or the new answer.
func TestReloadUnderLoad(t *testing.T) {
	iss := testkit.Start(t)
	path := filepath.Join(t.TempDir(), "config.yaml")
	replaceFile(t, path, configFile("deny", iss))
	r := start(t, path)
	tok := iss.MustMint(t, iss.Access())

	type ask struct {
		path, tok string
		want      []string
	}
	asks := []ask{
		{path: "/stable", tok: tok, want: []string{"allow"}},
		{path: "/stable", want: []string{"token_missing"}},
		{path: "/flip", tok: tok, want: []string{"rule_denied", "anonymous"}},
	}
	var (
		stop             atomic.Bool
		total, bad, errs atomic.Int64
		firstBad         sync.Once
		badMsg           string
		wg               sync.WaitGroup
	)
	for w := range 4 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				a := asks[i%len(asks)]
				var got string
				var err error
				if w%2 == 0 {
					got, err = r.check(t, a.path, a.tok)
				} else {
					got, err = r.checkHTTP(a.path, a.tok)
				}
				total.Add(1)
				switch {
				case err != nil:
					errs.Add(1)
					firstBad.Do(func() { badMsg = err.Error() })
				case !contains(a.want, got):
					bad.Add(1)
					firstBad.Do(func() { badMsg = fmt.Sprintf("%s (token %v) = %s, want one of %v", a.path, a.tok != "", got, a.want) })
				}
			}
		})
	}
	for i := range 20 {
		// Let the clients ask a few times under each config: reloads must land between live requests.
		target := total.Load() + 8
		eventually(t, 10*time.Second, "requests under this config", func() bool { return total.Load() >= target })
		flip := []string{"allow", "deny"}[i%2]
		replaceFile(t, path, configFile(flip, iss))
		if err := r.rl.Reload("test"); err != nil {
			t.Errorf("reload %d: %v", i, err)
		}
		if i == 10 {
			// An invalid file in the middle of it all changes nothing.
			replaceFile(t, path, "pools: []\n")
			if err := r.rl.Reload("test"); err == nil {
				t.Error("reload of an invalid file succeeded")
			}
		}
	}
	replaceFile(t, path, configFile("allow", iss))
	if err := r.rl.Reload("test"); err != nil {
		t.Fatal(err)
	}
	if got := r.mustCheck(t, "/flip", tok); got != "anonymous" {
		t.Errorf("after the last reload /flip = %s, want anonymous", got)
	}
	stop.Store(true)
	wg.Wait()
	if errs.Load() != 0 || bad.Load() != 0 || total.Load() == 0 {
		t.Errorf("%d requests: %d errors, %d wrong answers; first: %s", total.Load(), errs.Load(), bad.Load(), badMsg)
	}
	if n := iss.Fetches(); n != 1 {
		t.Errorf("JWKS fetched %d times over 20 reloads, want 1: unchanged pools keep their keys", n)
	}
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if v == s {
			return true
		}
	}
	return false
}
