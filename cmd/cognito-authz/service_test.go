package main

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/runtime"
	"github.com/cognito-authz/cognito-authz/pkg/server"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

// syncBuffer is a log sink many goroutines write to.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// issuer is a dev issuer on a listener the test can close and reopen on the same port (endpoint down).
type issuer struct {
	*devissuer.Issuer
	mu   sync.Mutex
	srv  *httptest.Server
	addr string
}

func startIssuer(t *testing.T) *issuer {
	t.Helper()
	iss := &issuer{Issuer: testkit.Start(t)} // the shared test key
	iss.srv = httptest.NewServer(iss.Issuer)
	iss.addr = iss.srv.Listener.Addr().String()
	iss.URL = iss.srv.URL + "/" + iss.PoolID
	t.Cleanup(func() {
		iss.mu.Lock()
		defer iss.mu.Unlock()
		if iss.srv != nil {
			iss.srv.Close()
		}
	})
	return iss
}

// down closes the JWKS listener: fetches get connection refused.
func (iss *issuer) down() {
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.srv.Close()
	iss.srv = nil
}

// up listens again on the same address.
func (iss *issuer) up(t *testing.T) {
	t.Helper()
	ln, err := net.Listen("tcp", iss.addr)
	if err != nil {
		t.Fatalf("reopen %s: %v", iss.addr, err)
	}
	iss.mu.Lock()
	defer iss.mu.Unlock()
	iss.srv = &httptest.Server{Listener: ln, Config: &http.Server{Handler: iss.Issuer}}
	iss.srv.Start()
}

func (iss *issuer) pool(name string) config.Pool {
	return config.Pool{Name: name, Issuer: iss.URL, ClientIDs: []string{iss.ClientID}, TokenUse: "any"}
}

// opsService is cognito-authz run in-process by serve(), as main runs it, on loopback ports.
type opsService struct {
	srv  *server.Server
	conn *grpc.ClientConn
	logs *syncBuffer
}

// testConfig is the config the tests start from: loopback, short JWKS timings (below what config
// validation allows a file: serve takes the Go value as it is), no drain.
func testConfig(pools ...config.Pool) *config.Config {
	c := config.Default()
	c.Server.GRPCAddr, c.Server.AdminAddr = "127.0.0.1:0", "127.0.0.1:0"
	c.Server.DrainPeriod, c.Server.ShutdownTimeout = 0, config.Duration(5*time.Second)
	c.Log.Level = "debug"
	c.JWKS.RefreshInterval = config.Duration(time.Second)
	c.JWKS.UnknownKIDWindow = config.Duration(time.Second)
	c.JWKS.FetchTimeout = config.Duration(300 * time.Millisecond)
	c.Pools = pools
	return &c
}

func startOps(t *testing.T, cfg *config.Config) *opsService {
	t.Helper()
	s := &opsService{logs: &syncBuffer{}}
	log := newLogger(cfg.Log, s.logs)
	ctx, cancel := context.WithCancel(context.Background())
	bound := make(chan *server.Server, 1)
	done := make(chan error, 1)
	go func() {
		done <- serve(ctx, cfg, log, serveOptions{listening: func(srv *server.Server, _ *runtime.Reloader) { bound <- srv }})
	}()
	select {
	case s.srv = <-bound:
	case err := <-done:
		cancel()
		t.Fatalf("serve: %v", err)
	case <-time.After(10 * time.Second):
		cancel()
		t.Fatal("serve did not start")
	}
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve: %v", err)
			}
		case <-time.After(10 * time.Second):
			t.Error("serve did not stop")
		}
	})
	conn, err := grpc.NewClient(s.srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	s.conn = conn
	return s
}

// check asks the service about a GET / with headers.
func (s *opsService) check(t testing.TB, headers map[string]string) extauthz.Summary {
	t.Helper()
	return s.checkPath(t, "/orders", headers)
}

// checkPath asks the service about a GET of path.
func (s *opsService) checkPath(t testing.TB, path string, headers map[string]string) extauthz.Summary {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := extauthz.Check(ctx, s.conn, extauthz.Probe{Method: "GET", Host: "api.example.com", Path: path, Headers: headers})
	if err != nil {
		t.Fatalf("Check: %v", err)
	}
	return extauthz.Summarize(resp)
}

func (s *opsService) bearer(t testing.TB, tok string) extauthz.Summary {
	t.Helper()
	return s.check(t, map[string]string{"authorization": "Bearer " + tok})
}

// readyz returns the /readyz status code.
func (s *opsService) readyz(t *testing.T) int {
	t.Helper()
	resp, err := http.Get("http://" + s.srv.AdminAddr() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp.StatusCode
}

// metric returns the value of one series from /metrics, e.g. `cognito_authz_jwks_keys{pool="main"}`, or 0.
func (s *opsService) metric(t *testing.T, series string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + s.srv.AdminAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series+" "); ok {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				t.Fatalf("%s: %v", series, err)
			}
			return f
		}
	}
	return 0
}

// eventually polls cond every 20ms until it holds or within passes, and fails the test with what.
func eventually(t *testing.T, within time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %v: %s", within, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *opsService) waitReady(t *testing.T) {
	t.Helper()
	eventually(t, 5*time.Second, "service ready", func() bool { return s.readyz(t) == http.StatusOK })
}
