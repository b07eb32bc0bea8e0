package config

import (
	"strings"
	"testing"
	"time"
)

func TestValidateLimits(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name   string
		mutate func(s *Server)
		want   []string // every problem expected, in order; empty: valid
	}{
		{name: "defaults", mutate: func(*Server) {}},
		{name: "age_off", mutate: func(s *Server) { s.MaxConnectionAge = 0 }},
		{name: "smallest", mutate: func(s *Server) {
			s.MaxRecvMsgSize, s.MaxConcurrentStreams, s.MaxReceivingRequests, s.MaxConnections = 64<<10, 16, 16, 16
			s.ReceiveTimeout, s.ConnectionTimeout, s.MaxConnectionIdle = Duration(time.Second), Duration(time.Second), Duration(10*time.Second)
			s.MaxConnectionAge, s.MaxConnectionAgeGrace = Duration(30*time.Second), Duration(time.Second)
			s.Keepalive = Keepalive{Time: Duration(10 * time.Second), Timeout: Duration(time.Second), MinTime: Duration(time.Second)}
		}},
		{name: "msg_size_too_small", mutate: func(s *Server) { s.MaxRecvMsgSize = 4 << 10 }, want: []string{"server.max_recv_msg_size 4KiB: want 64KiB to 16MiB"}},
		{name: "msg_size_too_large", mutate: func(s *Server) { s.MaxRecvMsgSize = 32 << 20 }, want: []string{"server.max_recv_msg_size 32MiB: want 64KiB to 16MiB"}},
		{name: "no_unlimited_counts", mutate: func(s *Server) { s.MaxConcurrentStreams, s.MaxReceivingRequests, s.MaxConnections = 0, 0, 0 },
			want: []string{"server.max_concurrent_streams 0: want 16 to 65536", "server.max_receiving_requests 0: want 16 to 65536", "server.max_connections 0: want 16 to 1048576"}},
		{name: "streams_too_many", mutate: func(s *Server) { s.MaxConcurrentStreams = 1 << 17 }, want: []string{"server.max_concurrent_streams 131072: want 16 to 65536"}},
		{name: "zero_timeouts_all_reported", mutate: func(s *Server) {
			s.ReceiveTimeout, s.ConnectionTimeout, s.MaxConnectionIdle, s.MaxConnectionAgeGrace = 0, 0, 0, 0
			s.Keepalive = Keepalive{}
		}, want: []string{
			"server.receive_timeout 0s: want 1s to 5m", "server.connection_timeout 0s: want 1s to 2m",
			"server.max_connection_idle 0s: want 10s to 24h", "server.max_connection_age_grace 0s: want 1s to 10m",
			"server.keepalive.time 0s: want 10s to 2h", "server.keepalive.timeout 0s: want 1s to 5m", "server.keepalive.min_time 0s: want 1s to 1h",
		}},
		{name: "age_too_short", mutate: func(s *Server) { s.MaxConnectionAge = Duration(time.Second) },
			want: []string{"server.max_connection_age 1s: want 30s to 24h, or 0s to never age connections"}},
		{name: "age_negative", mutate: func(s *Server) { s.MaxConnectionAge = Duration(-time.Minute) },
			want: []string{"server.max_connection_age -1m0s: want 30s to 24h"}},
		{name: "idle_too_long", mutate: func(s *Server) { s.MaxConnectionIdle = Duration(48 * time.Hour) },
			want: []string{"server.max_connection_idle 48h0m0s: want 10s to 24h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := Default()
			c.Pools = []Pool{mainPool()}
			tt.mutate(&c.Server)
			got := problems(t, c.Validate())
			if len(got) != len(tt.want) {
				t.Fatalf("problems = %q, want %d matching %q", got, len(tt.want), tt.want)
			}
			for i, w := range tt.want {
				if !strings.Contains(got[i], w) {
					t.Errorf("problem %d = %q, want it to contain %q", i, got[i], w)
				}
			}
		})
	}
}

func TestParseLimitKeys(t *testing.T) {
	t.Parallel()
	c, err := Parse([]byte(minimal + `
server:
  max_recv_msg_size: 1MiB
  max_connection_age: 0s
  keepalive: {min_time: 30s}
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default().Server
	want.MaxRecvMsgSize, want.MaxConnectionAge, want.Keepalive.MinTime = 1<<20, 0, Duration(30*time.Second)
	if c.Server != want {
		t.Errorf("server = %+v, want %+v (keys not set keep their defaults)", c.Server, want)
	}
	if _, err := Parse([]byte(minimal + "server: {keepalive: {interval: 1m}}\n")); err == nil || !strings.Contains(err.Error(), "interval") {
		t.Errorf("Parse(unknown keepalive key) error = %v, want it named", err)
	}
}
