package devissuer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
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

// TB is the part of testing.TB that MustMint needs: this package is linked into the service, which must
// not link package testing.
type TB interface {
	Helper()
	Fatal(args ...any)
}

// MustMint signs claims or fails the test (testkit.Mint does the same).
func (i *Issuer) MustMint(tb TB, claims map[string]any) string {
	tb.Helper()
	s, err := i.Mint(claims)
	if err != nil {
		tb.Fatal(err)
	}
	return s
}
