// Package server runs the listeners: the gRPC server (the services Options.Register adds, health,
// reflection), the optional HTTP ext_authz server, and the admin HTTP server (/healthz, /readyz, /metrics).
// It owns start-up, readiness, the listeners' bounds (Limits) and graceful stop; nothing else. It knows no
// Envoy types: pkg/extauthz registers the Authorization service.
package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/net/netutil"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/reflection"
)

// AuthorizationService is the gRPC health service name Envoy and Kubernetes probe; "" is answered too.
const AuthorizationService = "envoy.service.auth.v3.Authorization"

// Options configure a Server.
type Options struct {
	GRPCAddr  string
	AdminAddr string
	// Register adds the services the gRPC listener serves next to health and reflection (cmd passes
	// extauthz's Authorization service); required.
	Register func(*grpc.Server)
	// Limits bound the listeners; the zero value means DefaultLimits().
	Limits Limits
	// OnStreamCut, when set, is told of every gRPC stream ended by a bound: LimitMaxReceiving or
	// LimitReceiveTimeout (for a metric; it must not block).
	OnStreamCut func(limit string)
	// HTTPAddr, when set, serves HTTP (the HTTP ext_authz protocol) on its own listener.
	HTTPAddr string
	HTTP     http.Handler
	// Ready reports whether every pool has loaded its keys; health answers NOT_SERVING until it is true.
	Ready   func() bool
	Metrics http.Handler // served at /metrics when set
	Logger  *slog.Logger
	// DrainPeriod is how long the service keeps answering after ctx ends, with health NOT_SERVING and
	// /readyz 503, so Envoy and Kubernetes stop sending before the listener closes (default 0).
	DrainPeriod time.Duration
	// StopTimeout bounds the whole stop, drain included: in-flight Checks still running when it ends are
	// cut off (default 15s).
	StopTimeout time.Duration
	// TLS, when set, serves gRPC over TLS (see TLSOptions.ServerConfig; mTLS when it requires client certs).
	TLS *tls.Config
	// GRPCOptions are added to the gRPC server's own, e.g. the ext_authz codec (extauthz.CodecOption).
	GRPCOptions []grpc.ServerOption
}

// Server is the running listeners.
type Server struct {
	opts    Options
	grpc    *grpc.Server
	health  *health.Server
	admin   *http.Server
	extHTTP *http.Server // nil when HTTPAddr is empty
	gln     net.Listener
	aln     net.Listener
	hln     net.Listener

	draining atomic.Bool   // ctx has ended: health NOT_SERVING, /readyz 503, still answering
	stopping chan struct{} // closed when the drain ends and the gRPC listener closes
}

// Bounds of the HTTP listeners that Limits does not set. Envoy's own default limit on request headers is
// 60 KiB; a token, cookies and the forwarded headers fit well within 64 KiB. The body is never read.
// Responses are small (a deny body, a metrics page), so a write that takes longer than its timeout is a
// client that stopped reading; the ext_authz one outlasts the longest jwks.fetch_timeout a Check may wait.
// The admin listener serves kubelet probes and Prometheus scrapes, which need a few connections and
// send small headers.
const (
	httpMaxHeaderBytes  = 64 << 10
	httpHeaderTimeout   = 5 * time.Second
	httpWriteTimeout    = time.Minute
	adminMaxHeaderBytes = 16 << 10
	adminWriteTimeout   = 30 * time.Second
	adminMaxConnections = 64
)

// Listen binds every listener, so their addresses are known before serving (tests use port 0).
func Listen(ctx context.Context, opts Options) (*Server, error) {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.Ready == nil {
		opts.Ready = func() bool { return true }
	}
	if opts.StopTimeout <= 0 {
		opts.StopTimeout = 15 * time.Second
	}
	if opts.Register == nil {
		return nil, errors.New("server: Options.Register is required")
	}
	if opts.Limits == (Limits{}) {
		opts.Limits = DefaultLimits()
	}
	lim := opts.Limits
	if err := lim.validate(); err != nil {
		return nil, err
	}
	var lc net.ListenConfig
	gln, err := lc.Listen(ctx, "tcp", opts.GRPCAddr)
	if err != nil {
		return nil, fmt.Errorf("server: grpc listener: %w", err)
	}
	aln, err := lc.Listen(ctx, "tcp", opts.AdminAddr)
	if err != nil {
		gln.Close()
		return nil, fmt.Errorf("server: admin listener: %w", err)
	}
	// Connections are counted before TLS, so a handshake in progress holds a slot too (for at most
	// ConnectionTimeout on gRPC, httpHeaderTimeout on HTTP).
	gln = netutil.LimitListener(gln, lim.MaxConnections)
	aln = netutil.LimitListener(aln, adminMaxConnections)
	s := &Server{opts: opts, gln: gln, aln: aln, health: health.NewServer(), stopping: make(chan struct{})}
	if opts.HTTPAddr != "" {
		if opts.HTTP == nil {
			gln.Close()
			aln.Close()
			return nil, errors.New("server: HTTPAddr without an HTTP handler")
		}
		if s.hln, err = lc.Listen(ctx, "tcp", opts.HTTPAddr); err != nil {
			gln.Close()
			aln.Close()
			return nil, fmt.Errorf("server: http listener: %w", err)
		}
		s.hln = netutil.LimitListener(s.hln, lim.MaxConnections)
		if opts.TLS != nil {
			s.hln = tls.NewListener(s.hln, opts.TLS)
		}
		s.extHTTP = &http.Server{
			Handler:           opts.HTTP,
			MaxHeaderBytes:    httpMaxHeaderBytes,
			ReadHeaderTimeout: httpHeaderTimeout,
			ReadTimeout:       lim.ReceiveTimeout, // the whole request, as on gRPC
			WriteTimeout:      httpWriteTimeout,
			IdleTimeout:       lim.MaxConnectionIdle,
			ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
		}
	}
	onCut := opts.OnStreamCut
	if onCut == nil {
		onCut = func(string) {}
	}
	gopts := lim.grpcOptions(&receiving{timeout: lim.ReceiveTimeout, max: int64(lim.MaxReceivingRequests), onCut: onCut})
	if opts.TLS != nil {
		gopts = append(gopts, grpc.Creds(credentials.NewTLS(opts.TLS)))
	}
	gopts = append(gopts, opts.GRPCOptions...)
	s.grpc = grpc.NewServer(gopts...)
	opts.Register(s.grpc)
	healthpb.RegisterHealthServer(s.grpc, healthService{Server: s.health, stopping: s.stopping})
	reflection.Register(s.grpc)
	s.setHealth(false)

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, _ *http.Request) {
		if !opts.Ready() {
			http.Error(w, "not ready: signing keys not loaded for every pool", http.StatusServiceUnavailable)
			return
		}
		if s.draining.Load() {
			http.Error(w, "not ready: shutting down", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ready")
	})
	if opts.Metrics != nil {
		mux.Handle("GET /metrics", opts.Metrics)
	}
	s.admin = &http.Server{
		Handler:           mux,
		MaxHeaderBytes:    adminMaxHeaderBytes,
		ReadHeaderTimeout: httpHeaderTimeout,
		ReadTimeout:       lim.ReceiveTimeout,
		WriteTimeout:      adminWriteTimeout,
		IdleTimeout:       lim.MaxConnectionIdle,
		ErrorLog:          slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn),
	}
	return s, nil
}

// GRPCAddr is the bound gRPC address.
func (s *Server) GRPCAddr() string { return s.gln.Addr().String() }

// HTTPAddr is the bound HTTP ext_authz address, or "" when it is off.
func (s *Server) HTTPAddr() string {
	if s.hln == nil {
		return ""
	}
	return s.hln.Addr().String()
}

// AdminAddr is the bound admin address.
func (s *Server) AdminAddr() string { return s.aln.Addr().String() }

func (s *Server) setHealth(ready bool) {
	st := healthpb.HealthCheckResponse_NOT_SERVING
	if ready {
		st = healthpb.HealthCheckResponse_SERVING
	}
	s.health.SetServingStatus("", st)
	s.health.SetServingStatus(AuthorizationService, st)
}

// Serve serves until ctx ends, then stops gracefully: health turns NOT_SERVING and /readyz 503 at once,
// Checks are still answered for DrainPeriod, then the gRPC listener closes, in-flight Checks finish, and it
// returns, all within StopTimeout of ctx's end. An error means a listener failed (and there is no drain).
func (s *Server) Serve(ctx context.Context) error {
	errc := make(chan error, 3)
	go func() { errc <- s.grpc.Serve(s.gln) }()
	go func() {
		if err := s.admin.Serve(s.aln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
	}()
	if s.extHTTP != nil {
		go func() {
			if err := s.extHTTP.Serve(s.hln); !errors.Is(err, http.ErrServerClosed) {
				errc <- err
			}
		}()
	}
	wctx, stopWatch := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Go(func() { s.watchReady(wctx) })
	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		err = fmt.Errorf("server: %w", err)
	}
	stopWatch() // a failed listener ends Serve too, not only ctx
	wg.Wait()
	s.stop(err == nil)
	return err
}

// watchReady mirrors Ready into gRPC health until ctx ends.
func (s *Server) watchReady(ctx context.Context) {
	last := false
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for {
		if r := s.opts.Ready(); r != last {
			s.setHealth(r)
			s.opts.Logger.Info("readiness changed", "ready", r)
			last = r
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

func (s *Server) stop(drain bool) {
	deadline := time.Now().Add(s.opts.StopTimeout)
	s.draining.Store(true)
	s.health.Shutdown() // every watcher sees NOT_SERVING; later SetServingStatus calls are ignored
	if d := min(s.opts.DrainPeriod, s.opts.StopTimeout); drain && d > 0 {
		s.opts.Logger.Info("draining: health is NOT_SERVING, still answering", "drain_period", d)
		time.Sleep(d)
	}
	s.opts.Logger.Info("closing the gRPC listener; waiting for in-flight Checks", "deadline", time.Until(deadline).Round(time.Millisecond))
	close(s.stopping)
	done := make(chan struct{})
	go func() { s.grpc.GracefulStop(); close(done) }()
	httpDone := make(chan struct{})
	hctx, hcancel := context.WithDeadline(context.Background(), deadline)
	defer hcancel()
	go func() {
		defer close(httpDone)
		if s.extHTTP != nil && s.extHTTP.Shutdown(hctx) != nil {
			s.extHTTP.Close() // in-flight checks past the timeout are cut off, as on gRPC
		}
	}()
	t := time.NewTimer(max(time.Until(deadline), 0))
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		s.opts.Logger.Warn("graceful stop timed out; closing connections", "timeout", s.opts.StopTimeout)
		s.grpc.Stop()
	}
	<-httpDone
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	s.admin.Shutdown(ctx)
}
