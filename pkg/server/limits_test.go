package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"maps"
	"net"
	"net/http"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/resolver"
	"google.golang.org/grpc/resolver/manual"

	"github.com/cognito-authz/cognito-authz/pkg/config"
	"github.com/cognito-authz/cognito-authz/pkg/server"
)

// heapInUse is the live heap after a full collection (twice, so pooled buffers released by the first are
// gone too).
func heapInUse() int64 {
	runtime.GC()
	runtime.GC()
	var m runtime.MemStats
	runtime.ReadMemStats(&m)
	return int64(m.HeapAlloc)
}

// TestHeaderOnlyStreamsBounded: a client opening many streams with headers and no message gets at most
// MaxConcurrentStreams of them (the rest refused before they cost a goroutine), and those are cut off at
// the receive timeout instead of waiting forever. Not parallel: it counts goroutines.
func TestHeaderOnlyStreamsBounded(t *testing.T) {
	const streams, limit = 64, 16
	lim := server.DefaultLimits()
	lim.MaxConcurrentStreams = limit
	lim.ReceiveTimeout = time.Second
	cuts := &cutCounter{}
	srv, _ := serveWith(t, server.Options{Register: register(okServer{}), Limits: lim, OnStreamCut: cuts.add})
	h := dialH2(t, srv.GRPCAddr(), 30*time.Second)
	if got := h.settingMaxStreams(); got != limit {
		t.Fatalf("SETTINGS_MAX_CONCURRENT_STREAMS = %d, want %d", got, limit)
	}
	base := runtime.NumGoroutine()
	ids := streamIDs(0, streams)
	for _, id := range ids {
		h.open(id)
	}
	h.ping() // every HEADERS has been handled, every refusal read
	if grew := runtime.NumGoroutine() - base; grew > limit+8 {
		t.Errorf("%d header-only streams added %d goroutines; want at most %d (+8 slack)", streams, grew, limit)
	}
	if got := count(h.endings(ids))["rst:REFUSED_STREAM"]; got != streams-limit {
		t.Errorf("refused %d streams at once, want %d (all beyond the limit)", got, streams-limit)
	}
	got := count(h.waitEnded(ids))
	want := map[string]int{"rst:REFUSED_STREAM": streams - limit, "grpc-status:1": limit} // CANCELLED at the receive timeout
	if describe(got) != describe(want) {
		t.Errorf("stream endings = %v, want %v", got, want)
	}
	if got, want := cuts.get(), map[string]int{server.LimitReceiveTimeout: limit}; describe(got) != describe(want) {
		t.Errorf("OnStreamCut calls = %v, want %v", got, want)
	}
}

// TestUnfinishedMessagesCutOff is the unfinished-message attack: many streams on one connection, each
// sending most of a large message and never the rest. Only MaxReceivingRequests of them may hold data
// (the rest are refused at their headers, before any data is accepted), the memory they hold is bounded
// by MaxReceivingRequests × MaxRecvMsgSize, and every one is cut off at the receive timeout, which frees
// it. Not parallel: it measures the heap.
func TestUnfinishedMessagesCutOff(t *testing.T) {
	const (
		streams   = 48
		receiving = 16
		declared  = 250 << 10 // under MaxRecvMsgSize: gRPC widens the stream's window to all of it
		sent      = 200 << 10
		slack     = 2 << 20
	)
	lim := server.DefaultLimits()
	lim.MaxConcurrentStreams = 64
	lim.MaxReceivingRequests = receiving
	lim.ReceiveTimeout = 3 * time.Second
	cuts := &cutCounter{}
	srv, _ := serveWith(t, server.Options{Register: register(okServer{}), Limits: lim, OnStreamCut: cuts.add})
	h := dialH2(t, srv.GRPCAddr(), 60*time.Second)
	before := heapInUse()

	ids := streamIDs(0, streams)
	for _, id := range ids {
		h.open(id)
	}
	h.ping()
	if got := count(h.endings(ids))["grpc-status:8"]; got != streams-receiving {
		t.Errorf("%d streams refused with RESOURCE_EXHAUSTED at their headers, want %d", got, streams-receiving)
	}
	for _, id := range ids {
		h.send(id, declared, sent) // returns at once for a stream the server has ended
	}
	h.ping() // the server has read every byte sent
	held := heapInUse() - before
	open := count(h.endings(ids))[""]
	bound := int64(lim.MaxReceivingRequests*lim.MaxRecvMsgSize + slack)
	t.Logf("%d streams still receiving hold %d KiB (bound %d KiB)", open, held>>10, bound>>10)
	if held > bound {
		t.Errorf("unfinished messages hold %d KiB, want at most %d KiB (MaxReceivingRequests × MaxRecvMsgSize + slack)", held>>10, bound>>10)
	}
	if open == receiving && held < int64(receiving*sent/2) {
		t.Errorf("the heap grew only %d KiB while %d streams held %d KiB each: the measurement is not seeing the data", held>>10, receiving, sent>>10)
	}

	got := count(h.waitEnded(ids))
	want := map[string]int{"grpc-status:8": streams - receiving, "grpc-status:1": receiving}
	if describe(got) != describe(want) {
		t.Errorf("stream endings = %v, want %v", got, want)
	}
	if got, want := cuts.get(), map[string]int{server.LimitMaxReceiving: streams - receiving, server.LimitReceiveTimeout: receiving}; describe(got) != describe(want) {
		t.Errorf("OnStreamCut calls = %v, want %v", got, want)
	}
	if after := heapInUse() - before; after > slack {
		t.Errorf("after the cut-off the heap is still %d KiB above where it started, want under %d KiB", after>>10, slack>>10)
	}

	// The budget is free again, and a message declared larger than MaxRecvMsgSize is refused at its prefix.
	big := streamIDs(streams, 1)
	h.open(big[0])
	h.send(big[0], lim.MaxRecvMsgSize+1, 0)
	if got := h.waitEnded(big)[big[0]]; got != "grpc-status:8" {
		t.Errorf("a message declared over MaxRecvMsgSize ended with %q, want RESOURCE_EXHAUSTED", got)
	}
}

// cutCounter records Options.OnStreamCut calls.
type cutCounter struct {
	mu sync.Mutex
	n  map[string]int
}

func (c *cutCounter) add(limit string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.n == nil {
		c.n = map[string]int{}
	}
	c.n[limit]++
}

func (c *cutCounter) get() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.n)
}

// TestIdleHTTPConnectionsClosed: an idle keep-alive connection to the admin listener and to the HTTP
// ext_authz listener is closed by the server after MaxConnectionIdle.
func TestIdleHTTPConnectionsClosed(t *testing.T) {
	t.Parallel()
	lim := server.DefaultLimits()
	lim.MaxConnectionIdle = 200 * time.Millisecond
	srv, _ := serveWith(t, server.Options{Register: register(okServer{}), Limits: lim, HTTPAddr: "127.0.0.1:0",
		HTTP: http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { io.WriteString(w, "ok") })})
	tests := []struct {
		name, addr, path string
	}{
		{name: "admin", addr: srv.AdminAddr(), path: "/healthz"},
		{name: "http_ext_authz", addr: srv.HTTPAddr(), path: "/x"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c, err := net.Dial("tcp", tt.addr)
			if err != nil {
				t.Fatal(err)
			}
			defer c.Close()
			c.SetDeadline(time.Now().Add(20 * time.Second)) // failsafe: without an idle timeout the read below blocks
			fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\n\r\n", tt.path)
			br := bufio.NewReader(c)
			resp, err := http.ReadResponse(br, nil)
			if err != nil {
				t.Fatal(err)
			}
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK || resp.Close {
				t.Fatalf("status %d, close %v: want 200 on a kept-alive connection", resp.StatusCode, resp.Close)
			}
			// The connection is now idle: the next read ends when the server closes it.
			if _, err := br.ReadByte(); err != io.EOF {
				t.Fatalf("idle connection: read = %v, want EOF (closed by the server)", err)
			}
		})
	}
}

// TestAdminHeadersBounded: the admin listener refuses oversized request headers.
func TestAdminHeadersBounded(t *testing.T) {
	t.Parallel()
	r := start(t)
	req, _ := http.NewRequestWithContext(t.Context(), "GET", "http://"+r.srv.AdminAddr()+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("a", 64<<10))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("status = %d, want 431", resp.StatusCode)
	}
}

// countingServer counts the Checks it answers.
type countingServer struct {
	authv3.UnimplementedAuthorizationServer
	n atomic.Int64
}

func (c *countingServer) Check(context.Context, *authv3.CheckRequest) (*authv3.CheckResponse, error) {
	c.n.Add(1)
	return &authv3.CheckResponse{}, nil
}

// TestConnectionAgeSpreadsLoad is the even-load guarantee: a client pinned to one replica (pick_first, as
// Envoy and sidecars are pinned to one pod behind a ClusterIP Service) moves to a replica that appeared
// later once its connection ages out, without a failed Check. Replica a ages connections; the client
// learns of b after it is connected to a, as it would learn of a pod the HPA added.
func TestConnectionAgeSpreadsLoad(t *testing.T) {
	t.Parallel()
	aged := server.DefaultLimits()
	aged.MaxConnectionAge, aged.MaxConnectionAgeGrace = 300*time.Millisecond, time.Second
	a, b := &countingServer{}, &countingServer{}
	srvA, _ := serveWith(t, server.Options{Register: register(a), Limits: aged})
	srvB, _ := serveWith(t, server.Options{Register: register(b)})

	r := manual.NewBuilderWithScheme("replicas")
	r.InitialState(resolver.State{Addresses: []resolver.Address{{Addr: srvA.GRPCAddr()}}})
	conn, err := grpc.NewClient(r.Scheme()+":///authz", grpc.WithResolvers(r),
		grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := authv3.NewAuthorizationClient(conn)
	check := func() {
		t.Helper()
		if _, err := client.Check(t.Context(), &authv3.CheckRequest{}); err != nil {
			t.Fatalf("Check: %v", err)
		}
	}
	check()
	if a.n.Load() != 1 {
		t.Fatalf("first Check went to b")
	}
	// b appears after the client connected; b first in the list, as a reshuffled DNS answer may put it.
	r.UpdateState(resolver.State{Addresses: []resolver.Address{{Addr: srvB.GRPCAddr()}, {Addr: srvA.GRPCAddr()}}})
	deadline := time.Now().Add(20 * time.Second) // failsafe only: ageing happens after ~300ms
	for b.n.Load() == 0 {
		if time.Now().After(deadline) {
			t.Fatalf("after %d Checks b has none: the connection to a never aged out", a.n.Load())
		}
		check()
	}
	if a.n.Load() < 1 || b.n.Load() < 1 {
		t.Errorf("Checks a=%d b=%d, want both to have some", a.n.Load(), b.n.Load())
	}
}

// TestDefaultLimitsMatchConfig keeps the server's defaults and the config file's defaults one fact.
func TestDefaultLimitsMatchConfig(t *testing.T) {
	t.Parallel()
	s := config.Default().Server
	got := server.Limits{
		MaxRecvMsgSize: int(s.MaxRecvMsgSize), MaxConcurrentStreams: uint32(s.MaxConcurrentStreams),
		MaxReceivingRequests: s.MaxReceivingRequests, ReceiveTimeout: s.ReceiveTimeout.Std(), MaxConnections: s.MaxConnections,
		ConnectionTimeout: s.ConnectionTimeout.Std(), MaxConnectionIdle: s.MaxConnectionIdle.Std(),
		MaxConnectionAge: s.MaxConnectionAge.Std(), MaxConnectionAgeGrace: s.MaxConnectionAgeGrace.Std(),
		KeepaliveTime: s.Keepalive.Time.Std(), KeepaliveTimeout: s.Keepalive.Timeout.Std(),
		KeepaliveMinTime: s.Keepalive.MinTime.Std(), KeepalivePermitWithoutStream: s.Keepalive.PermitWithoutStream,
	}
	if want := server.DefaultLimits(); got != want {
		t.Errorf("config defaults %+v\ndiffer from server.DefaultLimits() %+v", got, want)
	}
}

// TestListenRejectsBadLimits: a limit set to zero is refused rather than served unbounded.
func TestListenRejectsBadLimits(t *testing.T) {
	t.Parallel()
	lim := server.DefaultLimits()
	lim.MaxConnections, lim.ReceiveTimeout = 0, 0
	_, err := server.Listen(t.Context(), server.Options{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0", Register: register(okServer{}), Limits: lim})
	if err == nil || !strings.Contains(err.Error(), "MaxConnections") || !strings.Contains(err.Error(), "ReceiveTimeout") {
		t.Fatalf("Listen() error = %v, want both bad limits named", err)
	}
	if _, err := server.Listen(t.Context(), server.Options{GRPCAddr: "127.0.0.1:0", AdminAddr: "127.0.0.1:0"}); err == nil {
		t.Fatal("Listen() without Register succeeded")
	}
}
