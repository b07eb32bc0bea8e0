package main

import (
	"context"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	typev3 "github.com/envoyproxy/go-control-plane/envoy/type/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// TestMain removes the service binary testkit.ServiceBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	testkit.RemoveServiceBinary()
	os.Exit(code)
}

func TestParseStatCPU(t *testing.T) {
	t.Parallel()
	// Field 2 may hold spaces and parentheses; utime 150 and stime 50 ticks are fields 14 and 15.
	stat := "1234 (cognito (a) b) S 1 1234 1234 0 -1 4194560 100 0 0 0 150 50 0 0 20 0 8 0 100 0\n"
	got, err := parseStatCPU(stat)
	if err != nil || got != 2*time.Second {
		t.Fatalf("parseStatCPU = %v, %v; want 2s", got, err)
	}
	if _, err := parseStatCPU("garbage"); err == nil {
		t.Error("parseStatCPU(garbage) succeeded")
	}
}

func TestParseHWM(t *testing.T) {
	t.Parallel()
	got, err := parseHWM("Name:\tx\nVmPeak:\t  9000 kB\nVmHWM:\t   20480 kB\nVmRSS:\t 100 kB\n")
	if err != nil || got != 20<<20 {
		t.Fatalf("parseHWM = %d, %v; want 20 MiB", got, err)
	}
}

func TestPercentile(t *testing.T) {
	t.Parallel()
	lat := []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}
	if p := percentile(lat, 0.5); p != 6 && p != 5 {
		t.Errorf("p50 = %d", p)
	}
	if p := percentile(lat, 0.99); p != 10 {
		t.Errorf("p99 = %d", p)
	}
	if p := percentile(nil, 0.5); p != 0 {
		t.Errorf("p50 of nothing = %d", p)
	}
}

func TestConfigValid(t *testing.T) {
	t.Parallel()
	for _, cache := range []bool{true, false} {
		c, err := config.Parse([]byte(configFor("http://127.0.0.1:1/jwks.json", cache)))
		if err != nil {
			t.Fatal(err)
		}
		if on := c.Cache.MaxEntries > 0; on != cache {
			t.Errorf("cache on = %v, want %v", on, cache)
		}
	}
	// The signed-in server's config, built as serve builds it (session.New checks the browser: block).
	keysFile, _, err := writeSessionKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if err := checkConfig(configFor("http://127.0.0.1:1/jwks.json", true) + browserBlock("http://127.0.0.1:1", keysFile)); err != nil {
		t.Fatal(err)
	}
	if err := checkConfig(configFor("http://127.0.0.1:1/jwks.json", true) + browserBlock("http://127.0.0.1:1", keysFile+".missing")); err == nil {
		t.Error("checkConfig accepted a browser: block whose session keys file does not exist")
	}
}

// TestSessionRequestsAllowed: the signed-in scenario's requests, sealed with the key the server reads, are
// all allowed by the real server under the bench's config; the same navigations with a cookie sealed with
// another key, tampered with, past its max age or absent are sent to sign in (302 to the Hosted UI).
func TestSessionRequestsAllowed(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	iss := testkit.Start(t)
	toks, err := mint(testkit.Key(t, 0, testkit.SigningKID), 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keysFile, keys, err := writeSessionKey(dir)
	if err != nil {
		t.Fatal(err)
	}
	text := configFor(iss.JWKSURL(), true) + browserBlock(iss.DomainURL(), keysFile)
	if err := checkConfig(text); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "signed-in.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := startServer(ctx, "signed-in", testkit.ServiceBinary(t), path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(p.stop)
	conn, err := dial(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })

	good, err := sessionRequests(keys, toks, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if err := waitAllows(ctx, conn, good[0]); err != nil {
		t.Fatal(err)
	}
	res, err := drive(ctx, conn, p.cmd.Process.Pid, good, 2, time.Hour, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.n != len(good) || res.allowed != len(good) || res.errs != 0 {
		t.Fatalf("signed-in requests: n=%d allowed=%d errs=%d; want all %d allowed", res.n, res.allowed, res.errs, len(good))
	}
	// The allow is a signed-in one: the upstream gets the app's cookie without the session's.
	ok, err := authv3.NewAuthorizationClient(conn).Check(ctx, good[1])
	if err != nil {
		t.Fatal(err)
	}
	var upstreamCookie string
	for _, h := range ok.GetOkResponse().GetHeaders() {
		if h.GetHeader().GetKey() == "cookie" {
			upstreamCookie = h.GetHeader().GetValue()
		}
	}
	if upstreamCookie != "theme=dark" {
		t.Errorf("allow sets cookie %q for the upstream, want theme=dark (the session cookie stripped)", upstreamCookie)
	}

	_, otherKeys, err := writeSessionKey(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	cookie := func(req *authv3.CheckRequest) string {
		return req.GetAttributes().GetRequest().GetHttp().GetHeaders()["cookie"]
	}
	withCookie := func(req *authv3.CheckRequest, c string) *authv3.CheckRequest {
		req = proto.Clone(req).(*authv3.CheckRequest)
		if h := req.Attributes.Request.Http.Headers; c == "" {
			delete(h, "cookie")
		} else {
			h["cookie"] = c
		}
		return req
	}
	tests := []struct {
		name string
		reqs func(t *testing.T) ([]*authv3.CheckRequest, error)
	}{
		{name: "sealed_with_another_key", reqs: func(t *testing.T) ([]*authv3.CheckRequest, error) {
			return sessionRequests(otherKeys, toks, time.Now())
		}},
		{name: "past_max_age", reqs: func(t *testing.T) ([]*authv3.CheckRequest, error) {
			return sessionRequests(keys, toks, time.Now().Add(-sessionMaxAge-time.Minute))
		}},
		{name: "tampered", reqs: func(t *testing.T) ([]*authv3.CheckRequest, error) {
			c := cookie(good[0])
			i := len(c) - 30
			b := byte('A')
			if c[i] == 'A' {
				b = 'B'
			}
			return []*authv3.CheckRequest{withCookie(good[0], c[:i]+string(b)+c[i+1:])}, nil
		}},
		{name: "no_session_cookie", reqs: func(t *testing.T) ([]*authv3.CheckRequest, error) {
			return []*authv3.CheckRequest{withCookie(good[0], "theme=dark"), withCookie(good[0], "")}, nil
		}},
	}
	client := authv3.NewAuthorizationClient(conn)
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			reqs, err := tt.reqs(t)
			if err != nil {
				t.Fatal(err)
			}
			for i, req := range reqs {
				if cookie(req) == cookie(good[i]) {
					t.Fatalf("request %d carries the good cookie", i)
				}
				resp, err := client.Check(ctx, req)
				if err != nil {
					t.Fatal(err)
				}
				denied := resp.GetDeniedResponse()
				if got := codes.Code(resp.GetStatus().GetCode()); got != codes.Unauthenticated || denied.GetStatus().GetCode() != typev3.StatusCode_Found {
					t.Fatalf("request %d: %s, HTTP %v; want a sign-in redirect (UNAUTHENTICATED, 302)", i, got, denied.GetStatus().GetCode())
				}
				var location string
				for _, h := range denied.GetHeaders() {
					if strings.EqualFold(h.GetHeader().GetKey(), "location") {
						location = h.GetHeader().GetValue()
					}
				}
				if !strings.HasPrefix(location, iss.DomainURL()+"/oauth2/authorize?") {
					t.Errorf("request %d: Location %q, want the dev issuer's Hosted UI", i, location)
				}
			}
		})
	}
}

// TestMintedTokensAndTamper: minted tokens are distinct, name the load issuer, and tampering keeps the shape.
func TestMintedTokensAndTamper(t *testing.T) {
	t.Parallel()
	key := testkit.Key(t, 0, "k")
	toks, err := mint(key, 3, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	if toks[0] == toks[1] || toks[1] == toks[2] {
		t.Fatal("tokens are not distinct")
	}
	if bad := tamper(toks[0]); bad == toks[0] || len(bad) != len(toks[0]) {
		t.Fatal("tamper did not change exactly one character")
	}
}

// TestNoopAndDrive: the no-op server answers OK, and drive counts and times every Check, at full speed and
// at a fixed rate.
func TestNoopAndDrive(t *testing.T) {
	t.Parallel()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := grpc.NewServer()
	authv3.RegisterAuthorizationServer(s, noop{})
	go s.Serve(ln)
	t.Cleanup(s.Stop)
	conn, err := dial(ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	reqs := requests([]string{"", "a.b.c"})
	res, err := drive(context.Background(), conn, 0 /* this process */, reqs, 4, time.Hour, 0, true)
	if err != nil {
		t.Fatal(err)
	}
	if res.n != 2 || res.allowed != 2 || res.errs != 0 {
		t.Fatalf("once: n=%d allowed=%d errs=%d; want 2 2 0", res.n, res.allowed, res.errs)
	}
	res, err = drive(context.Background(), conn, 0, reqs, 4, 200*time.Millisecond, 100, false)
	if err != nil {
		t.Fatal(err)
	}
	if res.n < 15 || res.n > 25 || res.errs != 0 {
		t.Fatalf("100 rps for 200ms: n=%d errs=%d; want about 20", res.n, res.errs)
	}
}
