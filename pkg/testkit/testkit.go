// Package testkit is the one home of the test helpers (not internal/: cmd tests use it too): a dev issuer served on 127.0.0.1 for the life of a
// test, minting, tampering, loaded key sets, and pre-generated RSA keys (testdata/*.pem) so that no test
// generates one (slow, and slower still under -race).
//
// Only tests import it: the production binary links neither it nor testing nor net/http/httptest (a test
// in cmd/cognito-authz checks that).
package testkit

import (
	"crypto/x509"
	"embed"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
)

//go:embed testdata/*.pem
var pems embed.FS

// Keys is the number of pre-generated keys Key serves.
const Keys = 4

var keys = sync.OnceValues(func() ([]*devissuer.Key, error) {
	out := make([]*devissuer.Key, Keys)
	for n := range Keys {
		b, err := pems.ReadFile(fmt.Sprintf("testdata/rsa%d.pem", n+1))
		if err != nil {
			return nil, err
		}
		blk, _ := pem.Decode(b)
		if blk == nil {
			return nil, fmt.Errorf("testkit: rsa%d.pem is not PEM", n+1)
		}
		k, err := x509.ParsePKCS1PrivateKey(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("testkit: rsa%d.pem: %w", n+1, err)
		}
		out[n] = &devissuer.Key{Private: k}
	}
	return out, nil
})

// Key returns pre-generated 2048-bit RSA key n (0 to Keys-1) under kid. Key 0 is the one Start signs with;
// the others stand for rotated, foreign or forged keys. The same n is the same key in every call.
func Key(tb testing.TB, n int, kid string) *devissuer.Key {
	tb.Helper()
	ks, err := keys()
	if err != nil {
		tb.Fatal(err)
	}
	if n < 0 || n >= len(ks) {
		tb.Fatalf("testkit: key %d: there are %d", n, len(ks))
	}
	return &devissuer.Key{ID: kid, Private: ks[n].Private}
}

// SigningKID is the kid of the key Start's issuers sign with.
const SigningKID = "test-key-1"

// Start serves a new dev issuer on an httptest server on 127.0.0.1 for the life of the test. Every issuer
// Start makes signs with pre-generated key 0 under SigningKID; a test that needs another key calls Key and
// SetKeys.
func Start(tb testing.TB) *devissuer.Issuer {
	tb.Helper()
	i := &devissuer.Issuer{PoolID: devissuer.DefaultPoolID, ClientID: devissuer.DefaultClientID}
	k := Key(tb, 0, SigningKID)
	i.SetKeys(k, k)
	srv := httptest.NewServer(i)
	tb.Cleanup(srv.Close)
	i.URL = srv.URL + "/" + i.PoolID
	return i
}

// Mint signs claims with iss's signing key or fails the test.
func Mint(tb testing.TB, iss *devissuer.Issuer, claims map[string]any) string {
	tb.Helper()
	s, err := iss.Mint(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}

// Tamper changes one character in the middle of tok's signature, keeping the base64 well-formed: the token
// then fails signature verification and nothing else.
func Tamper(tok string) string {
	i := strings.LastIndexByte(tok, '.') + 10
	c := byte('A')
	if tok[i] == 'A' {
		c = 'B'
	}
	return tok[:i] + string(c) + tok[i+1:]
}

// WithKID returns tok with its header's kid replaced: the signature no longer matches, but the key lookup,
// which comes first, sees that kid.
func WithKID(tok, kid string) string {
	h, _ := json.Marshal(map[string]string{"alg": "RS256", "typ": "JWT", "kid": kid})
	_, rest, _ := strings.Cut(tok, ".")
	return base64.RawURLEncoding.EncodeToString(h) + "." + rest
}

// LoadedSet is a real key set over iss's JWKS, fetched once (it does not refresh).
func LoadedSet(tb testing.TB, iss *devissuer.Issuer) *jwks.Set {
	tb.Helper()
	set, err := jwks.New(jwks.Options{URL: iss.JWKSURL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	if err := set.Refresh(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	return set
}
