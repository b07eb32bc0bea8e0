package config

import (
	"strconv"
	"time"
)

// Keepalive is the gRPC listener's ping policy: the server pings a connection idle for Time and closes it
// when no answer comes within Timeout; a client pinging more often than MinTime (or, unless
// PermitWithoutStream, while it has no RPC) is sent GOAWAY.
type Keepalive struct {
	Time                Duration `yaml:"time"`
	Timeout             Duration `yaml:"timeout"`
	MinTime             Duration `yaml:"min_time"`
	PermitWithoutStream bool     `yaml:"permit_without_stream"`
}

// validateLimits checks the listener bounds and connection ageing keys of server. Every bound is required:
// there is no "unlimited", and only max_connection_age may be 0s (never age connections).
func (s Server) validateLimits(bad func(string, ...any)) {
	if b := s.MaxRecvMsgSize; b < 64<<10 || b > 16<<20 {
		bad("server.max_recv_msg_size %s: want 64KiB to 16MiB", b)
	}
	for _, n := range []struct {
		key       string
		v, lo, hi int
	}{
		{"server.max_concurrent_streams", s.MaxConcurrentStreams, 16, 1 << 16},
		{"server.max_receiving_requests", s.MaxReceivingRequests, 16, 1 << 16},
		{"server.max_connections", s.MaxConnections, 16, 1 << 20},
	} {
		if n.v < n.lo || n.v > n.hi {
			bad("%s %d: want %d to %d", n.key, n.v, n.lo, n.hi)
		}
	}
	for _, d := range []struct {
		key    string
		v      Duration
		lo, hi time.Duration
	}{
		{"server.receive_timeout", s.ReceiveTimeout, time.Second, 5 * time.Minute},
		{"server.connection_timeout", s.ConnectionTimeout, time.Second, 2 * time.Minute},
		{"server.max_connection_idle", s.MaxConnectionIdle, 10 * time.Second, 24 * time.Hour},
		{"server.max_connection_age_grace", s.MaxConnectionAgeGrace, time.Second, 10 * time.Minute},
		{"server.keepalive.time", s.Keepalive.Time, 10 * time.Second, 2 * time.Hour},
		{"server.keepalive.timeout", s.Keepalive.Timeout, time.Second, 5 * time.Minute},
		{"server.keepalive.min_time", s.Keepalive.MinTime, time.Second, time.Hour},
	} {
		if v := d.v.Std(); v < d.lo || v > d.hi {
			bad("%s %s: want %s to %s", d.key, v, fmtDuration(d.lo), fmtDuration(d.hi))
		}
	}
	if a := s.MaxConnectionAge.Std(); a != 0 && (a < 30*time.Second || a > 24*time.Hour) {
		bad("server.max_connection_age %s: want 30s to 24h, or 0s to never age connections", a)
	}
}

// fmtDuration writes a bound the way the README does: 10s, 5m, 2h rather than 5m0s.
func fmtDuration(d time.Duration) string {
	switch {
	case d >= time.Hour && d%time.Hour == 0:
		return strconv.FormatInt(int64(d/time.Hour), 10) + "h"
	case d >= time.Minute && d%time.Minute == 0:
		return strconv.FormatInt(int64(d/time.Minute), 10) + "m"
	}
	return d.String()
}
