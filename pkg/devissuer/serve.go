package devissuer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"
)

// Serve listens on addr (loopback in dev), sets the issuer's URL to http://ADDR/POOLID and serves until ctx
// ends. It returns once the listener is bound; errors while serving are sent to the returned channel.
func (i *Issuer) Serve(ctx context.Context, addr string) (<-chan error, error) {
	ln, err := (&net.ListenConfig{}).Listen(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("devissuer: %w", err)
	}
	i.URL = "http://" + ln.Addr().String() + "/" + i.PoolID
	srv := &http.Server{Handler: i, ReadHeaderTimeout: 5 * time.Second}
	errc := make(chan error, 1)
	go func() {
		if err := srv.Serve(ln); !errors.Is(err, http.ErrServerClosed) {
			errc <- err
		}
		close(errc)
	}()
	go func() {
		<-ctx.Done()
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Second)
		defer cancel()
		srv.Shutdown(sctx)
	}()
	return errc, nil
}

var (
	testKeyOnce sync.Once
	testKey     *Key
	testKeyErr  error
)

// Start serves a new issuer on an httptest server on 127.0.0.1 for the life of the test. Issuers started by
// Start share one signing key (generating RSA keys is slow under -race); tests that need their own key call
// NewKey and SetKeys.
func Start(tb testing.TB) *Issuer {
	tb.Helper()
	testKeyOnce.Do(func() { testKey, testKeyErr = NewKey("test-key-1") })
	if testKeyErr != nil {
		tb.Fatal(testKeyErr)
	}
	i := &Issuer{PoolID: DefaultPoolID, ClientID: DefaultClientID}
	i.SetKeys(testKey, testKey)
	srv := httptest.NewServer(i)
	tb.Cleanup(srv.Close)
	i.URL = srv.URL + "/" + i.PoolID
	return i
}

// MustMint signs claims or fails the test.
func (i *Issuer) MustMint(tb testing.TB, claims map[string]any) string {
	tb.Helper()
	s, err := i.Mint(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
