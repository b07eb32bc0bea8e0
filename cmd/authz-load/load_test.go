package main

import (
	"context"
	"net"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

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
