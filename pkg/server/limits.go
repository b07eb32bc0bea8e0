package server

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/keepalive"
	"google.golang.org/grpc/status"
	"google.golang.org/grpc/tap"
)

// Limits bound what clients can make the listeners hold: memory for request messages, goroutines for
// streams, connections, and time. The config file's server.* keys of the same names set them; DefaultLimits
// holds the defaults, which the config's defaults equal (a test keeps them in step).
//
// Memory held by request messages that have not fully arrived is at most
// MaxReceivingRequests × MaxRecvMsgSize across all connections (64 MiB with the defaults), and for at most
// ReceiveTimeout: gRPC widens a stream's flow-control window to the whole message once its length prefix
// has arrived, so without these a client could park many large half-sent messages on one connection.
type Limits struct {
	// MaxRecvMsgSize bounds one gRPC request message. Envoy's CheckRequest carries the request's headers,
	// which Envoy itself caps at max_request_headers_kb (60 KiB by default), so real Checks are a few KiB.
	MaxRecvMsgSize int
	// MaxConcurrentStreams is SETTINGS_MAX_CONCURRENT_STREAMS on each gRPC connection. Above it Envoy
	// opens another connection and gRPC clients queue; a stream over the limit is refused before it costs
	// a goroutine.
	MaxConcurrentStreams uint32
	// MaxReceivingRequests bounds, across all gRPC connections, the streams whose request message has not fully
	// arrived yet; a stream beyond it is refused with RESOURCE_EXHAUSTED at its headers.
	MaxReceivingRequests int
	// ReceiveTimeout is how long a gRPC request message may take to arrive, from its stream's headers to
	// its last byte; a stream still receiving then is cancelled. It does not bound the handling of a
	// request that has arrived (Envoy's own timeout, sent as grpc-timeout, does that).
	ReceiveTimeout time.Duration
	// MaxConnections bounds the open connections on each ext_authz listener (gRPC and HTTP, separately).
	// Beyond it new connections wait in the kernel's accept queue until one closes.
	MaxConnections int
	// ConnectionTimeout bounds a new gRPC connection's TLS and HTTP/2 handshake.
	ConnectionTimeout time.Duration
	// MaxConnectionIdle closes a connection that has had no request for this long: gRPC with GOAWAY, HTTP
	// keep-alive connections (ext_authz and admin) by closing them.
	MaxConnectionIdle time.Duration
	// MaxConnectionAge sends GOAWAY to a gRPC connection after this long (gRPC adds ±10% jitter so a fleet's
	// connections do not all reconnect at once), so clients reconnect and spread over the replicas that
	// exist now; 0 never ages connections.
	MaxConnectionAge time.Duration
	// MaxConnectionAgeGrace is how long RPCs in flight on an aged connection may still run before it is
	// closed.
	MaxConnectionAgeGrace time.Duration
	// KeepaliveTime and KeepaliveTimeout: after KeepaliveTime without activity the server pings the
	// client, and closes the connection if no answer comes within KeepaliveTimeout (a peer that vanished
	// without a FIN stops holding a connection slot).
	KeepaliveTime    time.Duration
	KeepaliveTimeout time.Duration
	// KeepaliveMinTime and KeepalivePermitWithoutStream are the ping policy: a client pinging more often
	// than KeepaliveMinTime (or, unless permitted, while it has no stream) is sent GOAWAY.
	KeepaliveMinTime             time.Duration
	KeepalivePermitWithoutStream bool
}

// DefaultLimits returns the limits a zero Options.Limits stands for. README "Listener bounds" gives the
// reasoning behind each number.
func DefaultLimits() Limits {
	return Limits{
		MaxRecvMsgSize:               256 << 10,
		MaxConcurrentStreams:         256,
		MaxReceivingRequests:         256,
		ReceiveTimeout:               10 * time.Second,
		MaxConnections:               1024,
		ConnectionTimeout:            5 * time.Second,
		MaxConnectionIdle:            2 * time.Minute,
		MaxConnectionAge:             5 * time.Minute,
		MaxConnectionAgeGrace:        30 * time.Second,
		KeepaliveTime:                time.Minute,
		KeepaliveTimeout:             20 * time.Second,
		KeepaliveMinTime:             10 * time.Second,
		KeepalivePermitWithoutStream: true,
	}
}

// validate reports every limit that cannot be served; config.Validate checks the operator's ranges.
func (l Limits) validate() error {
	var errs []error
	for _, f := range []struct {
		name string
		ok   bool
	}{
		{"MaxRecvMsgSize", l.MaxRecvMsgSize > 0}, {"MaxConcurrentStreams", l.MaxConcurrentStreams > 0},
		{"MaxReceivingRequests", l.MaxReceivingRequests > 0}, {"ReceiveTimeout", l.ReceiveTimeout > 0},
		{"MaxConnections", l.MaxConnections > 0}, {"ConnectionTimeout", l.ConnectionTimeout > 0},
		{"MaxConnectionIdle", l.MaxConnectionIdle > 0}, {"MaxConnectionAge", l.MaxConnectionAge >= 0},
		{"MaxConnectionAgeGrace", l.MaxConnectionAgeGrace > 0}, {"KeepaliveTime", l.KeepaliveTime > 0},
		{"KeepaliveTimeout", l.KeepaliveTimeout > 0}, {"KeepaliveMinTime", l.KeepaliveMinTime > 0},
	} {
		if !f.ok {
			errs = append(errs, fmt.Errorf("server: Limits.%s must be positive", f.name))
		}
	}
	return errors.Join(errs...)
}

// grpcOptions are the gRPC server options that apply l.
func (l Limits) grpcOptions(r *receiving) []grpc.ServerOption {
	age := l.MaxConnectionAge
	if age == 0 {
		age = time.Duration(1<<63 - 1) // gRPC's "infinity"
	}
	return []grpc.ServerOption{
		grpc.MaxRecvMsgSize(l.MaxRecvMsgSize),
		grpc.MaxConcurrentStreams(l.MaxConcurrentStreams),
		// gRPC metadata from Envoy is a few hundred bytes (the request's headers travel in the message).
		grpc.MaxHeaderListSize(grpcMaxHeaderListBytes),
		// Static flow-control windows: gRPC's dynamic (BDP) window can grow every stream's window to
		// 16 MiB, which a client could fill with data no handler reads. CheckRequests are small, so a
		// 64 KiB stream window costs nothing; a pending message still gets a window of its own length.
		grpc.StaticStreamWindowSize(streamWindowBytes),
		grpc.StaticConnWindowSize(connWindowBytes),
		grpc.ConnectionTimeout(l.ConnectionTimeout),
		grpc.KeepaliveParams(keepalive.ServerParameters{
			MaxConnectionIdle:     l.MaxConnectionIdle,
			MaxConnectionAge:      age,
			MaxConnectionAgeGrace: l.MaxConnectionAgeGrace,
			Time:                  l.KeepaliveTime,
			Timeout:               l.KeepaliveTimeout,
		}),
		grpc.KeepaliveEnforcementPolicy(keepalive.EnforcementPolicy{MinTime: l.KeepaliveMinTime, PermitWithoutStream: l.KeepalivePermitWithoutStream}),
		grpc.InTapHandle(r.tap),
		grpc.ChainUnaryInterceptor(r.unary),
		grpc.ChainStreamInterceptor(r.stream),
	}
}

// grpcMaxHeaderListBytes bounds a gRPC stream's metadata (gRPC's own default is 16 MiB). The windows are
// HTTP/2 flow control's: per stream, and per connection (which gRPC credits on receipt, so it bounds data
// in flight, not memory).
const (
	grpcMaxHeaderListBytes = 64 << 10
	streamWindowBytes      = 64 << 10
	connWindowBytes        = 1 << 20
)

// errReceiveTimeout cancels a stream whose request message did not arrive within ReceiveTimeout.
var errReceiveTimeout = errors.New("server: request message did not arrive within the receive timeout")

// receiving is the receive deadline and the global bound on streams still receiving their request. A
// stream is armed from its headers (the tap, on the connection's reader goroutine, before any goroutine is
// spent on it) until its handler starts, which gRPC does only once a unary request has fully arrived. A
// streaming handler's stream is armed again for each RecvMsg that waits.
type receiving struct {
	timeout time.Duration
	max     int64
	onCut   func(limit string)
	n       atomic.Int64 // streams armed now
}

// The limits Options.OnStreamCut reports, named as their config keys.
const (
	LimitMaxReceiving   = "max_receiving_requests"
	LimitReceiveTimeout = "receive_timeout"
)

type arrivalKey struct{}

// arrival is one stream's receive deadline, and the stream's context (so that finding it costs no
// context.WithValue of its own). Each arm is undone exactly once: by the timer firing, or by a Stop that
// catches the timer before it fires.
type arrival struct {
	context.Context // the stream's, cancelled with errReceiveTimeout at the deadline
	r               *receiving
	cancel          context.CancelCauseFunc
	timer           *time.Timer
	stopAfter       func() bool // unregisters the disarm on stream end
}

// Value finds the arrival itself under arrivalKey.
func (a *arrival) Value(key any) any {
	if key == (arrivalKey{}) {
		return a
	}
	return a.Context.Value(key)
}

// tap arms a new stream, or refuses it when MaxReceivingRequests streams are already receiving.
func (r *receiving) tap(ctx context.Context, _ *tap.Info) (context.Context, error) {
	if r.n.Add(1) > r.max {
		r.n.Add(-1)
		r.onCut(LimitMaxReceiving)
		return nil, status.Error(codes.ResourceExhausted, "too many requests still arriving")
	}
	a := &arrival{r: r}
	a.Context, a.cancel = context.WithCancelCause(ctx)
	a.timer = time.AfterFunc(r.timeout, a.fire)
	// A stream that ends before its handler runs (the client reset it, its message was too large) is
	// disarmed at once, so a client cannot hold the budget with streams it has abandoned.
	a.stopAfter = context.AfterFunc(a.Context, a.disarm)
	return a, nil
}

// fire is the deadline: the stream's pending read fails and gRPC ends the stream.
func (a *arrival) fire() {
	a.r.n.Add(-1)
	a.r.onCut(LimitReceiveTimeout)
	a.cancel(errReceiveTimeout)
}

func (a *arrival) disarm() {
	if a.timer.Stop() {
		a.r.n.Add(-1)
	}
}

// arm starts the deadline again for a streaming handler's RecvMsg; the timer is stopped when it is called.
func (a *arrival) arm() {
	a.r.n.Add(1)
	a.timer.Reset(a.r.timeout)
}

func arrivalOf(ctx context.Context) *arrival {
	a, _ := ctx.Value(arrivalKey{}).(*arrival)
	return a
}

// unary disarms the stream: its request has arrived.
func (r *receiving) unary(ctx context.Context, req any, _ *grpc.UnaryServerInfo, h grpc.UnaryHandler) (any, error) {
	if a := arrivalOf(ctx); a != nil {
		a.stopAfter()
		a.disarm()
	}
	return h(ctx, req)
}

// stream disarms the stream while its handler runs and arms it for every RecvMsg.
func (r *receiving) stream(srv any, ss grpc.ServerStream, _ *grpc.StreamServerInfo, h grpc.StreamHandler) error {
	a := arrivalOf(ss.Context())
	if a == nil {
		return h(srv, ss)
	}
	a.stopAfter()
	a.disarm()
	return h(srv, &armedStream{ServerStream: ss, a: a})
}

type armedStream struct {
	grpc.ServerStream
	a *arrival
}

// RecvMsg waits for the next message under the receive deadline.
func (s *armedStream) RecvMsg(m any) error {
	s.a.arm()
	defer s.a.disarm()
	return s.ServerStream.RecvMsg(m)
}
