package server

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"sync/atomic"
	"time"
)

// TLSOptions configure TLS on a listener: a server certificate and, with ClientCAFile, mutual TLS.
type TLSOptions struct {
	CertFile, KeyFile string // PEM; required
	// ClientCAFile, when set, makes the listener require a client certificate signed by one of its CAs.
	ClientCAFile string
	// ReloadInterval is how often the files are read again; a change is picked up by new handshakes
	// (default 5s). The files are small: they are hashed, so a Kubernetes secret's symlink swap, a copy that
	// keeps the mtime and a cert-manager rewrite are all seen.
	ReloadInterval time.Duration
	Logger         *slog.Logger // default: slog.Default()
}

// ServerConfig loads the files and returns a tls.Config for a listener, and the reloader to run for the
// listener's lifetime (it returns when ctx ends). Every handshake reads the current certificate and CA pool
// from an atomic pointer, so a reload needs no restart and no lock on the handshake path. A reload that
// fails (a file missing, a cert written before its key) keeps the last good certificate and is retried at
// the next interval.
//
// The gRPC listener takes the config in Options.TLS. An HTTP listener takes it as http.Server.TLSConfig
// with ServeTLS(ln, "", "") or as tls.NewListener(ln, cfg).
func (o TLSOptions) ServerConfig() (*tls.Config, func(ctx context.Context), error) {
	if o.CertFile == "" || o.KeyFile == "" {
		return nil, nil, errors.New("server: tls: cert_file and key_file are required")
	}
	if o.ReloadInterval <= 0 {
		o.ReloadInterval = 5 * time.Second
	}
	if o.Logger == nil {
		o.Logger = slog.Default()
	}
	r := &tlsReloader{o: o}
	if _, err := r.load(); err != nil {
		return nil, nil, err
	}
	cfg := &tls.Config{
		MinVersion: tls.VersionTLS12,
		NextProtos: []string{"h2", "http/1.1"},
		GetConfigForClient: func(*tls.ClientHelloInfo) (*tls.Config, error) {
			return r.cur.Load(), nil
		},
		// Also answered from the current config, for servers that look for a certificate on the outer one.
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			return &r.cur.Load().Certificates[0], nil
		},
	}
	return cfg, r.run, nil
}

type tlsReloader struct {
	o   TLSOptions
	cur atomic.Pointer[tls.Config]
	sum [sha256.Size]byte // of the files last loaded
}

// run reloads every ReloadInterval until ctx ends.
func (r *tlsReloader) run(ctx context.Context) {
	t := time.NewTicker(r.o.ReloadInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		changed, err := r.load()
		switch {
		case err != nil:
			r.o.Logger.Warn("tls: reload failed; serving the certificate already loaded", "error", err.Error())
		case changed:
			leaf := r.cur.Load().Certificates[0].Leaf
			r.o.Logger.Info("tls: certificate reloaded", "serial", leaf.SerialNumber.String(),
				"not_after", leaf.NotAfter, "mtls", r.o.ClientCAFile != "")
		}
	}
}

// load reads the files and, if they changed and are valid, makes them the current config.
func (r *tlsReloader) load() (changed bool, err error) {
	certPEM, err := os.ReadFile(r.o.CertFile)
	if err != nil {
		return false, fmt.Errorf("server: tls: %w", err)
	}
	keyPEM, err := os.ReadFile(r.o.KeyFile)
	if err != nil {
		return false, fmt.Errorf("server: tls: %w", err)
	}
	var caPEM []byte
	if r.o.ClientCAFile != "" {
		if caPEM, err = os.ReadFile(r.o.ClientCAFile); err != nil {
			return false, fmt.Errorf("server: tls: %w", err)
		}
	}
	h := sha256.New()
	for _, b := range [][]byte{certPEM, keyPEM, caPEM} {
		fmt.Fprintf(h, "%d:", len(b))
		h.Write(b)
	}
	var sum [sha256.Size]byte
	h.Sum(sum[:0])
	if r.cur.Load() != nil && bytes.Equal(sum[:], r.sum[:]) {
		return false, nil
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return false, fmt.Errorf("server: tls: %s and %s: %w", r.o.CertFile, r.o.KeyFile, err)
	}
	cfg := &tls.Config{
		MinVersion:   tls.VersionTLS12,
		NextProtos:   []string{"h2", "http/1.1"}, // gRPC requires h2 to be negotiated
		Certificates: []tls.Certificate{cert},
	}
	if caPEM != nil {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(caPEM) {
			return false, fmt.Errorf("server: tls: %s holds no PEM certificate", r.o.ClientCAFile)
		}
		cfg.ClientCAs, cfg.ClientAuth = pool, tls.RequireAndVerifyClientCert
	}
	r.cur.Store(cfg)
	r.sum = sum
	return true, nil
}
