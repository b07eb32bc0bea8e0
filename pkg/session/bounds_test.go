package session

import (
	"errors"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"
)

// hungEndpoint is a real TCP listener that accepts and never answers; accepted reports each connection.
func hungEndpoint(t *testing.T) (url string, accepted <-chan struct{}) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ch := make(chan struct{}, 16)
	var conns []net.Conn
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
			ch <- struct{}{}
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return "http://" + ln.Addr().String() + "/oauth2/token", ch
}

// hugeEndpoint is a real HTTP server answering every token request with a body over the bound.
func hugeEndpoint(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Write([]byte(`{"access_token":"` + strings.Repeat("a", 2*maxTokenResponse) + `","token_type":"Bearer"}`))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	return "http://" + ln.Addr().String() + "/oauth2/token"
}

func TestTokenEndpointBounds(t *testing.T) {
	t.Run("timeout", func(t *testing.T) {
		hung, _ := hungEndpoint(t)
		fx := newFixture(t, func(o *Options) { o.TokenTimeout = 100 * time.Millisecond })
		b := newBrowser()
		fx.signedIn(t, b, "/", user("jo"))
		fx.flow.oauth.Endpoint.TokenURL = hung
		s := fx.flow.Load(b.nav("/"))
		if _, lines, err := fx.flow.Refresh(t.Context(), b.nav("/"), s); !errors.Is(err, ErrUnavailable) || lines != nil {
			t.Fatalf("Refresh against a hung endpoint = %v (%d cookies), want ErrUnavailable and the session kept", err, len(lines))
		}
	})
	t.Run("response_size", func(t *testing.T) {
		fx := newFixture(t)
		b := newBrowser()
		fx.signedIn(t, b, "/", user("jo"))
		fx.flow.oauth.Endpoint.TokenURL = hugeEndpoint(t)
		s := fx.flow.Load(b.nav("/"))
		if _, _, err := fx.flow.Refresh(t.Context(), b.nav("/"), s); !errors.Is(err, ErrUnavailable) {
			t.Fatalf("Refresh with a %d-byte answer = %v, want ErrUnavailable", 2*maxTokenResponse, err)
		}
	})
	t.Run("concurrency", func(t *testing.T) {
		hung, accepted := hungEndpoint(t)
		fx := newFixture(t, func(o *Options) { o.MaxConcurrent = 1; o.TokenTimeout = 30 * time.Second })
		b1, b2 := newBrowser(), newBrowser()
		fx.signedIn(t, b1, "/", user("kim"))
		fx.signedIn(t, b2, "/", user("lee"))
		fx.flow.oauth.Endpoint.TokenURL = hung
		s1, s2 := fx.flow.Load(b1.nav("/")), fx.flow.Load(b2.nav("/"))
		first := make(chan error, 1)
		go func() {
			_, _, err := fx.flow.Refresh(t.Context(), b1.nav("/"), s1)
			first <- err
		}()
		<-accepted // the first refresh holds the only slot
		if _, _, err := fx.flow.Refresh(t.Context(), b2.nav("/"), s2); !errors.Is(err, ErrUnavailable) || !strings.Contains(err.Error(), "in flight") {
			t.Fatalf("second session's refresh = %v, want a fast ErrUnavailable: calls in flight", err)
		}
		fx.flow.client.CloseIdleConnections()
		t.Cleanup(func() { <-first })
	})
}
