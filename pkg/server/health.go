package server

import (
	"context"

	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
)

// healthService is gRPC's health server, except that Watch streams end when the server stops. gRPC's own
// keeps them open until the client goes away, so a client that watches health (Envoy and gRPC clients with
// client-side health checking do) would make GracefulStop wait out the whole stop timeout.
type healthService struct {
	*health.Server
	stopping <-chan struct{}
}

// Watch serves the health server's Watch until the client leaves or the server stops.
func (h healthService) Watch(req *healthpb.HealthCheckRequest, stream healthpb.Health_WatchServer) error {
	ctx, cancel := context.WithCancel(stream.Context())
	defer cancel()
	go func() {
		select {
		case <-h.stopping:
			cancel()
		case <-ctx.Done():
		}
	}()
	return h.Server.Watch(req, &watchStream{Health_WatchServer: stream, ctx: ctx})
}

type watchStream struct {
	healthpb.Health_WatchServer
	ctx context.Context
}

func (w *watchStream) Context() context.Context { return w.ctx }
