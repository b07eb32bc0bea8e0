package config

import (
	"fmt"
	"os"
	"time"
)

// TLS serves the ext_authz listeners (gRPC, and HTTP when it is on) over TLS: the files are PEM and are
// read again when they change, so a rotated certificate needs no restart. With client_ca_file set every
// client (Envoy) must present a certificate signed by one of its CAs (mTLS). The admin listener stays
// plain: kubelet probes and Prometheus scrape it.
type TLS struct {
	CertFile     string `yaml:"cert_file"`
	KeyFile      string `yaml:"key_file"`
	ClientCAFile string `yaml:"client_ca_file"`
}

// Enabled reports whether TLS is configured.
func (t TLS) Enabled() bool { return t.CertFile != "" }

// validateOps checks the shutdown and TLS keys of server.
//
// drain_period is how long the service keeps answering after SIGTERM with health NOT_SERVING;
// shutdown_timeout bounds the whole stop, drain included, so it must be longer than the drain.
func (s Server) validateOps(bad func(string, ...any)) {
	if d := s.DrainPeriod.Std(); d < 0 || d > 5*time.Minute {
		bad("server.drain_period %s: want 0s to 5m", d)
	}
	if d := s.ShutdownTimeout.Std(); d < time.Second || d > 10*time.Minute {
		bad("server.shutdown_timeout %s: want 1s to 10m", d)
	} else if d <= s.DrainPeriod.Std() {
		bad("server.shutdown_timeout %s must be longer than server.drain_period %s: in-flight Checks need time after the drain", d, s.DrainPeriod.Std())
	}
	s.validateLimits(bad)
	t := s.TLS
	switch {
	case t.CertFile == "" && t.KeyFile == "" && t.ClientCAFile != "":
		bad("server.tls.client_ca_file needs server.tls.cert_file and server.tls.key_file")
	case t.CertFile == "" && t.KeyFile != "":
		bad("server.tls.key_file needs server.tls.cert_file")
	case t.CertFile != "" && t.KeyFile == "":
		bad("server.tls.cert_file needs server.tls.key_file")
	}
	for _, f := range []struct{ key, path string }{
		{"server.tls.cert_file", t.CertFile}, {"server.tls.key_file", t.KeyFile}, {"server.tls.client_ca_file", t.ClientCAFile},
	} {
		if f.path == "" {
			continue
		}
		if err := readable(f.path); err != nil {
			bad("%s: %v", f.key, err)
		}
	}
}

// readable reports whether path is a regular file this process can open. The contents are checked when
// the listener starts (a bad pair fails start-up), and again at every reload.
func readable(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("%s is not a regular file", path)
	}
	return nil
}
