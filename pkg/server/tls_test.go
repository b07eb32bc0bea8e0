package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"testing"
	"time"

	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/cognito-authz/cognito-authz/pkg/server"
)

// pki is a CA that issues server and client certificates, in memory.
type pki struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pem  []byte
}

func newPKI(t *testing.T, name string) *pki {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: name},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return &pki{cert: cert, key: key, pem: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// issue returns a leaf certificate and its key as PEM.
func (p *pki) issue(t *testing.T, serial int64, client bool) (certPEM, keyPEM []byte) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: "leaf"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		KeyUsage: x509.KeyUsageDigitalSignature, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, DNSNames: []string{"localhost"},
	}
	if client {
		tmpl.ExtKeyUsage = []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, p.cert, &key.PublicKey, p.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: kder})
}

func (p *pki) pool() *x509.CertPool {
	cp := x509.NewCertPool()
	cp.AddCert(p.cert)
	return cp
}

func write(t *testing.T, path string, b []byte) {
	t.Helper()
	// Write then rename, as a secret update does: a reader never sees half a file.
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, path); err != nil {
		t.Fatal(err)
	}
}

type tlsFixture struct {
	ca                *pki
	certFile, keyFile string
	addr              string
}

// serveTLS serves gRPC with TLS from files in a temp dir, with mTLS when mtls is set, reloading every 50ms.
func serveTLS(t *testing.T, mtls bool) *tlsFixture {
	t.Helper()
	ca := newPKI(t, "test-ca")
	dir := t.TempDir()
	f := &tlsFixture{ca: ca, certFile: filepath.Join(dir, "tls.crt"), keyFile: filepath.Join(dir, "tls.key")}
	c, k := ca.issue(t, 100, false)
	write(t, f.certFile, c)
	write(t, f.keyFile, k)
	opts := server.TLSOptions{CertFile: f.certFile, KeyFile: f.keyFile, ReloadInterval: 50 * time.Millisecond}
	if mtls {
		opts.ClientCAFile = filepath.Join(dir, "ca.crt")
		write(t, opts.ClientCAFile, ca.pem)
	}
	cfg, reload, err := opts.ServerConfig()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { reload(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	srv, _ := serveWith(t, server.Options{Register: register(okServer{}), TLS: cfg})
	f.addr = srv.GRPCAddr()
	return f
}

// check sends one Check over TLS with cfg.
func check(t *testing.T, addr string, cfg *tls.Config) error {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(credentials.NewTLS(cfg)))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	ctx, cancel := context.WithTimeout(t.Context(), 5*time.Second)
	defer cancel()
	_, err = authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{})
	return err
}

// serial returns the serial of the certificate a new handshake sees.
func serial(t *testing.T, addr string, cfg *tls.Config) int64 {
	t.Helper()
	cfg = cfg.Clone()
	cfg.NextProtos = []string{"h2"}
	c, err := tls.Dial("tcp", addr, cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestMTLS(t *testing.T) {
	t.Parallel()
	f := serveTLS(t, true)
	cc, ck := f.ca.issue(t, 200, true)
	clientCert, err := tls.X509KeyPair(cc, ck)
	if err != nil {
		t.Fatal(err)
	}
	withCert := &tls.Config{RootCAs: f.ca.pool(), Certificates: []tls.Certificate{clientCert}, ServerName: "127.0.0.1"}

	t.Run("accepts_a_client_cert_of_the_ca", func(t *testing.T) {
		if err := check(t, f.addr, withCert); err != nil {
			t.Fatalf("Check with a client cert: %v", err)
		}
	})
	t.Run("rejects_no_client_cert", func(t *testing.T) {
		if err := check(t, f.addr, &tls.Config{RootCAs: f.ca.pool(), ServerName: "127.0.0.1"}); err == nil {
			t.Fatal("Check without a client cert succeeded")
		}
	})
	t.Run("rejects_a_client_cert_of_another_ca", func(t *testing.T) {
		oc, ok := newPKI(t, "other-ca").issue(t, 300, true)
		other, err := tls.X509KeyPair(oc, ok)
		if err != nil {
			t.Fatal(err)
		}
		if err := check(t, f.addr, &tls.Config{RootCAs: f.ca.pool(), Certificates: []tls.Certificate{other}, ServerName: "127.0.0.1"}); err == nil {
			t.Fatal("Check with a client cert of another CA succeeded")
		}
	})
	t.Run("rejects_plaintext", func(t *testing.T) {
		conn := dial(t, f.addr)
		ctx, cancel := context.WithTimeout(t.Context(), 2*time.Second)
		defer cancel()
		if _, err := authv3.NewAuthorizationClient(conn).Check(ctx, &authv3.CheckRequest{}); err == nil {
			t.Fatal("plaintext Check succeeded on a TLS listener")
		}
	})
	t.Run("reloads_the_cert", func(t *testing.T) {
		if got := serial(t, f.addr, withCert); got != 100 {
			t.Fatalf("serial before reload = %d, want 100", got)
		}
		c, k := f.ca.issue(t, 101, false)
		write(t, f.keyFile, k)
		write(t, f.certFile, c)
		waitSerial(t, f.addr, withCert, 101)
		if err := check(t, f.addr, withCert); err != nil {
			t.Fatalf("Check after reload: %v", err)
		}
		// A broken file is not loaded: the last good certificate keeps serving.
		write(t, f.certFile, []byte("not a certificate"))
		time.Sleep(200 * time.Millisecond)
		if got := serial(t, f.addr, withCert); got != 101 {
			t.Fatalf("serial after a broken write = %d, want 101", got)
		}
	})
}

func waitSerial(t *testing.T, addr string, cfg *tls.Config, want int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		got := serial(t, addr, cfg)
		if got == want {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("serial = %d, want %d after the files changed", got, want)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

func TestTLSWithoutClientCA(t *testing.T) {
	t.Parallel()
	f := serveTLS(t, false)
	if err := check(t, f.addr, &tls.Config{RootCAs: f.ca.pool(), ServerName: "127.0.0.1"}); err != nil {
		t.Fatalf("Check over TLS without a client cert: %v", err)
	}
}

func TestTLSOptionsErrors(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ca := newPKI(t, "ca")
	c, k := ca.issue(t, 1, false)
	cert, key := filepath.Join(dir, "c"), filepath.Join(dir, "k")
	write(t, cert, c)
	write(t, key, k)
	bad := filepath.Join(dir, "bad")
	write(t, bad, []byte("junk"))
	for _, tt := range []struct {
		name string
		o    server.TLSOptions
	}{
		{name: "no_files", o: server.TLSOptions{}},
		{name: "missing_key", o: server.TLSOptions{CertFile: cert, KeyFile: filepath.Join(dir, "nope")}},
		{name: "cert_is_junk", o: server.TLSOptions{CertFile: bad, KeyFile: key}},
		{name: "key_does_not_match", o: server.TLSOptions{CertFile: cert, KeyFile: bad}},
		{name: "client_ca_is_junk", o: server.TLSOptions{CertFile: cert, KeyFile: key, ClientCAFile: bad}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if _, _, err := tt.o.ServerConfig(); err == nil {
				t.Fatal("ServerConfig succeeded")
			}
		})
	}
}
