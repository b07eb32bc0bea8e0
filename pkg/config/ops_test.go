package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestParseOpsKeys(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	for _, f := range []string{"tls.crt", "tls.key", "ca.crt"} {
		if err := os.WriteFile(filepath.Join(dir, f), []byte("pem"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Parse([]byte(minimal + `
dry_run: true
server:
  drain_period: 10s
  shutdown_timeout: 40s
  tls:
    cert_file: ` + filepath.Join(dir, "tls.crt") + `
    key_file: ` + filepath.Join(dir, "tls.key") + `
    client_ca_file: ` + filepath.Join(dir, "ca.crt") + `
`))
	if err != nil {
		t.Fatal(err)
	}
	want := Default().Server
	want.DrainPeriod, want.ShutdownTimeout = Duration(10*time.Second), Duration(40*time.Second)
	want.TLS = TLS{CertFile: filepath.Join(dir, "tls.crt"), KeyFile: filepath.Join(dir, "tls.key"), ClientCAFile: filepath.Join(dir, "ca.crt")}
	if diff := cmp.Diff(want, c.Server); diff != "" {
		t.Errorf("server mismatch (-want +got):\n%s", diff)
	}
	if !c.DryRun || !c.Server.TLS.Enabled() {
		t.Errorf("dry_run = %v, tls enabled = %v, want both true", c.DryRun, c.Server.TLS.Enabled())
	}
}

func TestValidateOps(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	file := filepath.Join(dir, "f.pem")
	if err := os.WriteFile(file, []byte("pem"), 0o600); err != nil {
		t.Fatal(err)
	}
	missing := filepath.Join(dir, "missing.pem")
	tests := []struct {
		name   string
		mutate func(s *Server)
		want   []string // every problem expected; empty: valid
	}{
		{name: "defaults", mutate: func(*Server) {}},
		{name: "no_drain", mutate: func(s *Server) { s.DrainPeriod = 0 }},
		{name: "drain_negative", mutate: func(s *Server) { s.DrainPeriod = Duration(-time.Second) }, want: []string{"server.drain_period -1s: want 0s to 5m"}},
		{name: "drain_too_long", mutate: func(s *Server) { s.DrainPeriod, s.ShutdownTimeout = Duration(6*time.Minute), Duration(7*time.Minute) },
			want: []string{"server.drain_period 6m0s: want 0s to 5m"}},
		{name: "shutdown_too_short", mutate: func(s *Server) { s.ShutdownTimeout, s.DrainPeriod = Duration(time.Millisecond), 0 },
			want: []string{"server.shutdown_timeout 1ms: want 1s to 10m"}},
		{name: "shutdown_not_after_drain", mutate: func(s *Server) { s.ShutdownTimeout = Duration(5 * time.Second) },
			want: []string{"server.shutdown_timeout 5s must be longer than server.drain_period 5s"}},
		{name: "tls_pair", mutate: func(s *Server) { s.TLS = TLS{CertFile: file, KeyFile: file} }},
		{name: "mtls", mutate: func(s *Server) { s.TLS = TLS{CertFile: file, KeyFile: file, ClientCAFile: file} }},
		{name: "cert_without_key", mutate: func(s *Server) { s.TLS = TLS{CertFile: file} }, want: []string{"server.tls.cert_file needs server.tls.key_file"}},
		{name: "key_without_cert", mutate: func(s *Server) { s.TLS = TLS{KeyFile: file} }, want: []string{"server.tls.key_file needs server.tls.cert_file"}},
		{name: "ca_alone", mutate: func(s *Server) { s.TLS = TLS{ClientCAFile: file} },
			want: []string{"server.tls.client_ca_file needs server.tls.cert_file and server.tls.key_file"}},
		{name: "files_missing_all_reported", mutate: func(s *Server) { s.TLS = TLS{CertFile: missing, KeyFile: missing, ClientCAFile: dir} },
			want: []string{"server.tls.cert_file: open " + missing, "server.tls.key_file: open " + missing, "server.tls.client_ca_file: " + dir + " is not a regular file"}},
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
