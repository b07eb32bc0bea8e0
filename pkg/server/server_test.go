package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	reflectionpb "google.golang.org/grpc/reflection/grpc_reflection_v1"

	"github.com/cognito-authz/cognito-authz/pkg/server"
)

// okServer allows everything: the server package is tested for its listeners, not for decisions.
type okServer struct {
	authv3.UnimplementedAuthorizationServer
}

func (okServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	return &authv3.CheckResponse{}, nil
}

// register serves a as the Authorization service, as extauthz.Server.Register does.
func register(a authv3.AuthorizationServer) func(*grpc.Server) {
	return func(g *grpc.Server) { authv3.RegisterAuthorizationServer(g, a) }
}

type running struct {
	srv   *server.Server
	conn  *grpc.ClientConn
	ready *atomic.Bool
	stop  func() error
}

func start(t *testing.T) *running {
	t.Helper()
	ready := &atomic.Bool{}
	srv, err := server.Listen(t.Context(), server.Options{
		GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Register: register(okServer{}), Ready: ready.Load,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "metrics_here 1\n") }),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	stop := sync.OnceValue(func() error {
		cancel()
		select {
		case err := <-done:
			return err
		case <-time.After(15 * time.Second):
			t.Error("Serve did not return after stop")
			return nil
		}
	})
	t.Cleanup(func() { stop() })
	conn, err := grpc.NewClient(srv.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return &running{srv: srv, conn: conn, ready: ready, stop: stop}
}

// waitHealth polls the gRPC health service until it reports want for service, or fails after 5 s.
func waitHealth(t *testing.T, conn *grpc.ClientConn, service string, want healthpb.HealthCheckResponse_ServingStatus) {
	t.Helper()
	hc := healthpb.NewHealthClient(conn)
	deadline := time.Now().Add(5 * time.Second)
	var last healthpb.HealthCheckResponse_ServingStatus
	for time.Now().Before(deadline) {
		resp, err := hc.Check(t.Context(), &healthpb.HealthCheckRequest{Service: service})
		if err == nil {
			if last = resp.GetStatus(); last == want {
				return
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("health(%q) = %v, want %v", service, last, want)
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestReadinessFollowsKeys(t *testing.T) {
	r := start(t)
	admin := "http://" + r.srv.AdminAddr()
	for _, svc := range []string{"", server.AuthorizationService} {
		waitHealth(t, r.conn, svc, healthpb.HealthCheckResponse_NOT_SERVING)
	}
	if code, _ := get(t, admin+"/readyz"); code != http.StatusServiceUnavailable {
		t.Errorf("/readyz before keys = %d, want 503", code)
	}
	if code, _ := get(t, admin+"/healthz"); code != http.StatusOK {
		t.Errorf("/healthz = %d, want 200 (the process is alive)", code)
	}
	r.ready.Store(true)
	for _, svc := range []string{"", server.AuthorizationService} {
		waitHealth(t, r.conn, svc, healthpb.HealthCheckResponse_SERVING)
	}
	if code, _ := get(t, admin+"/readyz"); code != http.StatusOK {
		t.Errorf("/readyz after keys = %d, want 200", code)
	}
	if code, body := get(t, admin+"/metrics"); code != http.StatusOK || body != "metrics_here 1\n" {
		t.Errorf("/metrics = %d %q", code, body)
	}
}

func TestReflectionListsServices(t *testing.T) {
	r := start(t)
	stream, err := reflectionpb.NewServerReflectionClient(r.conn).ServerReflectionInfo(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	if err := stream.Send(&reflectionpb.ServerReflectionRequest{MessageRequest: &reflectionpb.ServerReflectionRequest_ListServices{}}); err != nil {
		t.Fatal(err)
	}
	resp, err := stream.Recv()
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for _, s := range resp.GetListServicesResponse().GetService() {
		got[s.GetName()] = true
	}
	for _, want := range []string{"envoy.service.auth.v3.Authorization", "grpc.health.v1.Health"} {
		if !got[want] {
			t.Errorf("reflection does not list %s (got %v)", want, got)
		}
	}
}

func TestStopIsGraceful(t *testing.T) {
	r := start(t)
	r.ready.Store(true)
	waitHealth(t, r.conn, "", healthpb.HealthCheckResponse_SERVING)
	if _, err := authv3.NewAuthorizationClient(r.conn).Check(t.Context(), &authv3.CheckRequest{}); err != nil {
		t.Fatalf("Check before stop: %v", err)
	}
	if err := r.stop(); err != nil {
		t.Fatalf("Serve() = %v, want nil after a stop", err)
	}
	if _, err := http.Get("http://" + r.srv.AdminAddr() + "/healthz"); err == nil {
		t.Error("admin listener still answers after stop")
	}
}

func TestListenFailsOnBusyPort(t *testing.T) {
	r := start(t)
	_, err := server.Listen(t.Context(), server.Options{GRPCAddr: r.srv.GRPCAddr(), AdminAddr: "127.0.0.1:0", Register: register(okServer{})})
	if err == nil {
		t.Fatal("Listen on a busy port succeeded")
	}
}

func TestHTTPListener(t *testing.T) {
	srv, err := server.Listen(t.Context(), server.Options{
		GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Register: register(okServer{}),
		HTTP: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "checked "+r.URL.Path) }),
	})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve() = %v", err)
		}
		if _, err := http.Get("http://" + srv.HTTPAddr() + "/"); err == nil {
			t.Error("HTTP listener still serving after stop")
		}
	}()
	if srv.HTTPAddr() == "" || srv.HTTPAddr() == srv.GRPCAddr() || srv.HTTPAddr() == srv.AdminAddr() {
		t.Fatalf("HTTPAddr() = %q: want its own listener", srv.HTTPAddr())
	}
	tests := []struct {
		name       string
		header     int // bytes of one header value
		wantStatus int
	}{
		{name: "served", header: 100, wantStatus: http.StatusOK},
		{name: "headers_bounded", header: 100 << 10, wantStatus: http.StatusRequestHeaderFieldsTooLarge},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+srv.HTTPAddr()+"/x", nil)
			req.Header.Set("X-Big", strings.Repeat("a", tt.header))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.wantStatus {
				t.Errorf("status = %d, want %d", resp.StatusCode, tt.wantStatus)
			}
		})
	}
}

func TestHTTPAddrNeedsHandler(t *testing.T) {
	t.Parallel()
	_, err := server.Listen(t.Context(), server.Options{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", Register: register(okServer{})})
	if err == nil {
		t.Fatal("Listen() with HTTPAddr and no handler succeeded")
	}
}

// TestServeReturnsWhenAListenerFails: a listener that fails ends Serve with an error, without waiting for
// ctx (which nobody cancels here).
func TestServeReturnsWhenAListenerFails(t *testing.T) {
	srv, err := server.Listen(t.Context(), server.Options{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Register: register(okServer{})})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- srv.Serve(context.Background()) }()
	time.Sleep(50 * time.Millisecond) // let Serve start accepting; the test is about what follows
	if err := srv.BreakGRPCListener(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err == nil {
			t.Error("Serve() = nil after its listener failed, want the error")
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Serve did not return after its gRPC listener failed")
	}
}
