package jwks_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/big"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
)

var discard = slog.New(slog.NewTextHandler(io.Discard, nil))

// server is a devissuer behind a switch that can make its JWKS endpoint misbehave in ways FailWith cannot.
type server struct {
	iss  *devissuer.Issuer
	url  string
	mode atomic.Value // "" (serve the issuer), "garbage", "slow" or "body"
	body atomic.Value // []byte served in mode "body"
}

func newServer(t *testing.T) *server {
	t.Helper()
	s := &server{iss: testkit.Start(t)}
	s.mode.Store("")
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch s.mode.Load().(string) {
		case "garbage":
			w.Header().Set("Content-Type", "application/json")
			io.WriteString(w, `{"keys": [{"kty": "RSA", "kid"`)
		case "slow":
			select { // hold the request until the client gives up
			case <-r.Context().Done():
			case <-time.After(10 * time.Second):
			}
		case "body":
			w.Header().Set("Content-Type", "application/json")
			w.Write(s.body.Load().([]byte))
		default:
			s.iss.ServeHTTP(w, r)
		}
	}))
	t.Cleanup(srv.Close)
	s.url = srv.URL + "/" + devissuer.DefaultPoolID + "/.well-known/jwks.json"
	return s
}

func (s *server) serve(body []byte) {
	s.body.Store(body)
	s.mode.Store("body")
}

func newSet(t *testing.T, opts jwks.Options) *jwks.Set {
	t.Helper()
	if opts.Logger == nil {
		opts.Logger = discard
	}
	set, err := jwks.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	return set
}

// verify checks tok's RS256 signature as the verifier does: the key for its kid from the set, then rs256.
func verify(ctx context.Context, set *jwks.Set, tok string) error {
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		return fmt.Errorf("not a compact JWS: %q", tok)
	}
	var h struct {
		KID string `json:"kid"`
	}
	hb, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return err
	}
	if err := json.Unmarshal(hb, &h); err != nil {
		return err
	}
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		return err
	}
	k, err := set.Key(ctx, h.KID)
	if err != nil {
		return err
	}
	return k.Verify([]byte(parts[0]+"."+parts[1]), sig)
}

// lookup asks the set for kid without a signed token.
func lookup(ctx context.Context, set *jwks.Set, kid string) error {
	_, err := set.Key(ctx, kid)
	return err
}

// waitFor polls cond until it holds or the bound passes: for conditions driven by a background goroutine.
func waitFor(t *testing.T, bound time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(bound)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %s: %s", bound, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

type jwk struct {
	KTY string `json:"kty"`
	KID string `json:"kid,omitempty"`
	ALG string `json:"alg,omitempty"`
	USE string `json:"use,omitempty"`
	N   string `json:"n,omitempty"`
	E   string `json:"e,omitempty"`
	CRV string `json:"crv,omitempty"`
	X   string `json:"x,omitempty"`
	Y   string `json:"y,omitempty"`
	X5U string `json:"x5u,omitempty"`
}

func rsaJWK(k *devissuer.Key, kid, alg, use string) jwk {
	pub := k.Private.PublicKey
	return jwk{
		KTY: "RSA", KID: kid, ALG: alg, USE: use,
		N: base64.RawURLEncoding.EncodeToString(pub.N.Bytes()),
		E: base64.RawURLEncoding.EncodeToString(big.NewInt(int64(pub.E)).Bytes()),
	}
}

func jwksJSON(t *testing.T, keys ...jwk) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"keys": keys})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestNew(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name    string
		url     string
		wantErr bool
	}{
		{name: "https", url: "https://cognito-idp.us-east-1.amazonaws.com/us-east-1_x/.well-known/jwks.json"},
		{name: "http_loopback", url: "http://127.0.0.1:9000/jwks.json"},
		{name: "empty", url: "", wantErr: true},
		{name: "relative", url: "/.well-known/jwks.json", wantErr: true},
		{name: "no_host", url: "https:///jwks.json", wantErr: true},
		{name: "file_scheme", url: "file:///etc/passwd", wantErr: true},
		{name: "unparsable", url: "http://[::1", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if _, err := jwks.New(jwks.Options{URL: tt.url}); (err != nil) != tt.wantErr {
				t.Errorf("New(%q) error = %v, wantErr %v", tt.url, err, tt.wantErr)
			}
		})
	}
}

func TestReady(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set := newSet(t, jwks.Options{URL: iss.JWKSURL()})
	kid := iss.SigningKey().ID
	if set.Ready() || set.Len() != 0 || set.Has(kid) {
		t.Fatalf("before load: Ready() = %v, Len() = %d, Has(%q) = %v; want false, 0, false", set.Ready(), set.Len(), kid, set.Has(kid))
	}
	if iss.Fetches() != 0 {
		t.Fatalf("New fetched %d times, want 0: nothing is fetched until Run or Refresh", iss.Fetches())
	}
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh() error = %v", err)
	}
	if !set.Ready() || set.Len() != 1 || !set.Has(kid) {
		t.Fatalf("after load: Ready() = %v, Len() = %d, Has(%q) = %v; want true, 1, true", set.Ready(), set.Len(), kid, set.Has(kid))
	}
	if err := verify(t.Context(), set, iss.MustMint(t, iss.Access())); err != nil {
		t.Errorf("verify() error = %v", err)
	}
}

// TestNeverLoaded: before the first load every lookup is ErrUnavailable, not ErrKeyUnknown.
func TestNeverLoaded(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	iss.FailWith(http.StatusInternalServerError)
	set := newSet(t, jwks.Options{URL: iss.JWKSURL()})
	for i := range 2 { // the first spends the unknown-kid window on a fetch that fails; the second may not fetch
		if err := lookup(t.Context(), set, iss.SigningKey().ID); !errors.Is(err, jwks.ErrUnavailable) {
			t.Fatalf("lookup #%d error = %v, want %v", i, err, jwks.ErrUnavailable)
		}
	}
	if got := iss.Fetches(); got != 1 {
		t.Errorf("JWKS fetches = %d, want 1 (one per unknown-kid window)", got)
	}
}

// TestRun: Run retries a failing first load until the server recovers, then refreshes periodically, and
// returns when its context ends.
func TestRun(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	iss.FailWith(http.StatusInternalServerError)
	set := newSet(t, jwks.Options{URL: iss.JWKSURL(), RefreshInterval: 20 * time.Millisecond})
	ctx, cancel := context.WithCancel(t.Context())
	done := make(chan struct{})
	go func() {
		defer close(done)
		set.Run(ctx)
	}()
	t.Cleanup(func() { cancel(); <-done })

	waitFor(t, 5*time.Second, "Run did not retry the first load", func() bool { return iss.Fetches() >= 2 })
	if set.Ready() {
		t.Fatal("Ready() = true while the JWKS fails")
	}
	iss.FailWith(0)
	waitFor(t, 10*time.Second, "Run did not load once the server recovered", set.Ready)

	// Periodic refresh picks up a rotated key without any request asking for it.
	rotated := &devissuer.Key{ID: "rotated", Private: iss.SigningKey().Private}
	iss.SetKeys(rotated, rotated)
	waitFor(t, 5*time.Second, "periodic refresh did not pick up the rotated key", func() bool { return set.Has("rotated") })

	cancel()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Run did not return after its context ended")
	}
}

// TestRefreshFailureKeepsKeys: once loaded, a failed refresh of any kind keeps the keys held.
func TestRefreshFailureKeepsKeys(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name  string
		brk   func(t *testing.T, s *server)
		bound time.Duration // Refresh must fail within this
	}{
		{name: "status_500", brk: func(t *testing.T, s *server) { s.iss.FailWith(http.StatusInternalServerError) }},
		{name: "status_404", brk: func(t *testing.T, s *server) { s.iss.FailWith(http.StatusNotFound) }},
		{name: "garbage_json", brk: func(t *testing.T, s *server) { s.mode.Store("garbage") }},
		{name: "not_json", brk: func(t *testing.T, s *server) { s.serve([]byte("<html>maintenance</html>")) }},
		{name: "slower_than_fetch_timeout", brk: func(t *testing.T, s *server) { s.mode.Store("slow") }, bound: 2 * time.Second},
		{name: "empty_set", brk: func(t *testing.T, s *server) { s.serve([]byte(`{"keys":[]}`)) }},
		{
			name: "no_rs256_key",
			brk: func(t *testing.T, s *server) {
				s.serve(jwksJSON(t, rsaJWK(s.iss.SigningKey(), "rs512", "RS512", "sig"), rsaJWK(s.iss.SigningKey(), "enc", "RS256", "enc")))
			},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := newServer(t)
			set := newSet(t, jwks.Options{URL: s.url, FetchTimeout: 200 * time.Millisecond})
			if err := set.Refresh(t.Context()); err != nil {
				t.Fatalf("first Refresh() error = %v", err)
			}
			tok := s.iss.MustMint(t, s.iss.Access())
			tt.brk(t, s)
			start := time.Now()
			if err := set.Refresh(t.Context()); !errors.Is(err, jwks.ErrFetch) {
				t.Fatalf("Refresh() error = %v, want %v", err, jwks.ErrFetch)
			}
			if tt.bound > 0 && time.Since(start) > tt.bound {
				t.Errorf("Refresh() took %s, want under %s", time.Since(start), tt.bound)
			}
			if kid := s.iss.SigningKey().ID; !set.Ready() || set.Len() != 1 || !set.Has(kid) {
				t.Errorf("after failed refresh: Ready() = %v, Len() = %d, Has(%q) = %v; want true, 1, true", set.Ready(), set.Len(), kid, set.Has(kid))
			}
			if err := verify(t.Context(), set, tok); err != nil {
				t.Errorf("verify() with the kept keys error = %v", err)
			}
		})
	}
}

// TestUnusableKeys: only RSA keys for RS256 signatures are held; a set of nothing else is an error.
func TestUnusableKeys(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	key := s.iss.SigningKey()
	ec, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	ecJWK := jwk{
		KTY: "EC", KID: "ec", ALG: "ES256", USE: "sig", CRV: "P-256",
		X: base64.RawURLEncoding.EncodeToString(ec.X.FillBytes(make([]byte, 32))),
		Y: base64.RawURLEncoding.EncodeToString(ec.Y.FillBytes(make([]byte, 32))),
	}
	x5u := rsaJWK(key, "x5u", "RS256", "sig")
	x5u.X5U = "https://evil.example/cert.pem"
	unusable := []jwk{rsaJWK(key, "rs512", "RS512", "sig"), rsaJWK(key, "enc", "RS256", "enc"), ecJWK, x5u, rsaJWK(key, "", "RS256", "sig")}

	t.Run("only_unusable_keys", func(t *testing.T) {
		s.serve(jwksJSON(t, unusable...))
		set := newSet(t, jwks.Options{URL: s.url})
		if err := set.Refresh(t.Context()); !errors.Is(err, jwks.ErrFetch) {
			t.Fatalf("Refresh() error = %v, want %v", err, jwks.ErrFetch)
		}
		if set.Ready() {
			t.Error("Ready() = true after loading no usable key")
		}
	})

	t.Run("skipped", func(t *testing.T) {
		s.serve(jwksJSON(t, append(unusable, rsaJWK(key, key.ID, "RS256", "sig"), rsaJWK(key, "no-alg-no-use", "", ""))...))
		set := newSet(t, jwks.Options{URL: s.url})
		if err := set.Refresh(t.Context()); err != nil {
			t.Fatalf("Refresh() error = %v", err)
		}
		got := map[string]bool{}
		for _, kid := range []string{key.ID, "no-alg-no-use", "rs512", "enc", "ec", "x5u", ""} {
			got[kid] = set.Has(kid)
		}
		want := map[string]bool{key.ID: true, "no-alg-no-use": true, "rs512": false, "enc": false, "ec": false, "x5u": false, "": false}
		if diff := cmp.Diff(want, got); diff != "" {
			t.Errorf("Has() mismatch (-want +got):\n%s", diff)
		}
		if set.Len() != 2 {
			t.Errorf("Len() = %d, want 2", set.Len())
		}
		// A token naming a skipped key does not verify, though the same RSA key is held under another kid.
		for _, kid := range []string{"rs512", "enc", "x5u"} {
			tok, err := devissuer.Sign(&devissuer.Key{ID: kid, Private: key.Private}, nil, s.iss.Access())
			if err != nil {
				t.Fatal(err)
			}
			if err := verify(t.Context(), set, tok); !errors.Is(err, jwks.ErrKeyUnknown) {
				t.Errorf("verify(kid %q) error = %v, want %v", kid, err, jwks.ErrKeyUnknown)
			}
		}
	})
}

// TestRotation: a new kid is found through the unknown-kid path; a removed kid stops verifying after a refresh.
func TestRotation(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set := newSet(t, jwks.Options{URL: iss.JWKSURL()})
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	old := iss.SigningKey()
	oldTok := iss.MustMint(t, iss.Access())
	next := testkit.Key(t, 1, "rotated-2")

	iss.SetKeys(next, old, next)
	before := iss.Fetches()
	if err := verify(t.Context(), set, iss.MustMint(t, iss.Access())); err != nil {
		t.Fatalf("verify(new kid) error = %v", err)
	}
	if got := iss.Fetches() - before; got != 1 {
		t.Errorf("fetches for the new kid = %d, want 1", got)
	}
	if !set.Has(next.ID) || !set.Has(old.ID) {
		t.Errorf("Has(new) = %v, Has(old) = %v, want both true", set.Has(next.ID), set.Has(old.ID))
	}

	iss.SetKeys(next, next)
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if set.Has(old.ID) || set.Len() != 1 {
		t.Errorf("after removal: Has(old) = %v, Len() = %d; want false, 1", set.Has(old.ID), set.Len())
	}
	if err := verify(t.Context(), set, oldTok); !errors.Is(err, jwks.ErrKeyUnknown) {
		t.Errorf("verify(removed kid) error = %v, want %v", err, jwks.ErrKeyUnknown)
	}
}

// TestUnknownKIDWaitIsBounded: a request never waits on a hanging unknown-kid fetch longer than WaitMax
// or its own context, and the fetch it started does not end with it.
func TestUnknownKIDWaitIsBounded(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	set := newSet(t, jwks.Options{URL: s.url, WaitMax: 100 * time.Millisecond, FetchTimeout: 3 * time.Second})
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	s.mode.Store("slow")

	start := time.Now()
	if err := lookup(t.Context(), set, "unknown-1"); !errors.Is(err, jwks.ErrKeyUnknown) {
		t.Fatalf("lookup error = %v, want %v", err, jwks.ErrKeyUnknown)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("lookup waited %s on a hanging fetch, WaitMax is 100ms", d)
	}

	// The fetch is still in flight: a request with a cancelled context shares it and returns at once.
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	start = time.Now()
	if err := lookup(ctx, set, "unknown-2"); !errors.Is(err, jwks.ErrKeyUnknown) {
		t.Fatalf("lookup(cancelled) error = %v, want %v", err, jwks.ErrKeyUnknown)
	}
	if d := time.Since(start); d > time.Second {
		t.Errorf("lookup(cancelled) took %s", d)
	}
	if err := lookup(t.Context(), set, s.iss.SigningKey().ID); err != nil {
		t.Errorf("lookup(known kid) during a hanging fetch error = %v", err)
	}
}

// TestUnknownKIDFlood: random kids from many goroutines cost at most one fetch per window, fail fast, do
// not disturb a known kid, and leave no goroutine behind. Not parallel: it counts goroutines.
func TestUnknownKIDFlood(t *testing.T) {
	iss := testkit.Start(t)
	client := &http.Client{Timeout: 5 * time.Second}
	set := newSet(t, jwks.Options{URL: iss.JWKSURL(), Client: client})
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	client.CloseIdleConnections()
	baseline := runtime.NumGoroutine()
	before := iss.Fetches()

	const n = 200
	var (
		wg    sync.WaitGroup
		start = make(chan struct{})
		errs  = make([]error, n)
		known error
	)
	for i := range n {
		wg.Go(func() {
			<-start
			errs[i] = lookup(t.Context(), set, fmt.Sprintf("random-%d-%d", i, time.Now().UnixNano()))
		})
	}
	wg.Go(func() {
		<-start
		known = lookup(t.Context(), set, iss.SigningKey().ID)
	})
	began := time.Now()
	close(start)
	wg.Wait()
	elapsed := time.Since(began)

	// A limiter that waited (keyfunc's default) would park the flood for the 1m window; failing fast
	// takes milliseconds. 10s tells the two apart with room for a loaded CI machine.
	if elapsed > 10*time.Second {
		t.Errorf("flood took %s: requests waited on the rate limiter instead of failing fast", elapsed)
	}
	for i, err := range errs {
		if !errors.Is(err, jwks.ErrKeyUnknown) {
			t.Fatalf("lookup #%d error = %v, want %v", i, err, jwks.ErrKeyUnknown)
		}
	}
	if known != nil {
		t.Errorf("lookup(known kid) during the flood error = %v", known)
	}
	if got := iss.Fetches() - before; got > 1 {
		t.Errorf("fetches during the flood = %d, want at most 1", got)
	}
	// The window is spent: another unknown kid fails without fetching.
	if err := lookup(t.Context(), set, "one-more"); !errors.Is(err, jwks.ErrKeyUnknown) {
		t.Errorf("lookup after the flood error = %v, want %v", err, jwks.ErrKeyUnknown)
	}
	if got := iss.Fetches() - before; got > 1 {
		t.Errorf("fetches after the flood = %d, want at most 1", got)
	}

	client.CloseIdleConnections()
	waitFor(t, 5*time.Second, fmt.Sprintf("goroutines did not return to the baseline %d", baseline), func() bool {
		client.CloseIdleConnections()
		return runtime.NumGoroutine() <= baseline
	})
}

func TestOnRefresh(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	type call struct {
		Result string
		Keys   int
	}
	var (
		mu    sync.Mutex
		calls []call
	)
	set := newSet(t, jwks.Options{URL: iss.JWKSURL(), OnRefresh: func(result string, keys int) {
		mu.Lock()
		defer mu.Unlock()
		calls = append(calls, call{result, keys})
	}})

	iss.FailWith(http.StatusInternalServerError)
	set.Refresh(t.Context()) // error, nothing held yet
	iss.FailWith(0)
	set.Refresh(t.Context()) // ok, one key
	second := &devissuer.Key{ID: "second", Private: iss.SigningKey().Private}
	iss.SetKeys(iss.SigningKey(), iss.SigningKey(), second)
	set.Refresh(t.Context()) // ok, two keys
	iss.FailWith(http.StatusBadGateway)
	set.Refresh(t.Context()) // error, two keys kept

	want := []call{{"error", 0}, {"ok", 1}, {"ok", 2}, {"error", 2}}
	mu.Lock()
	defer mu.Unlock()
	if diff := cmp.Diff(want, calls); diff != "" {
		t.Errorf("OnRefresh calls mismatch (-want +got):\n%s", diff)
	}
}

// TestRedirects: the fetch follows redirects within the JWKS URL's origin only, and only a few of them.
func TestRedirects(t *testing.T) {
	t.Parallel()
	good := testkit.Start(t) // the origin's own keys
	evil := testkit.Start(t) // another origin, serving its own key under the same kid
	evilKey := mustOther(t, good.SigningKey().ID)
	evil.SetKeys(evilKey, evilKey)
	var hops atomic.Int64
	var origin *httptest.Server
	origin = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/same":
			http.Redirect(w, r, "/keys", http.StatusFound)
		case "/same-absolute":
			http.Redirect(w, r, origin.URL+"/keys", http.StatusFound)
		case "/cross":
			http.Redirect(w, r, strings.Replace(evil.JWKSURL(), "127.0.0.1", "localhost", 1), http.StatusFound)
		case "/other-port": // 127.0.0.1 like the origin, another port
			http.Redirect(w, r, evil.JWKSURL(), http.StatusMovedPermanently)
		case "/other-scheme":
			http.Redirect(w, r, strings.Replace(origin.URL, "http://", "https://", 1)+"/keys", http.StatusFound)
		case "/loop":
			hops.Add(1)
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/keys":
			r.URL.Path = "/" + devissuer.DefaultPoolID + "/.well-known/jwks.json"
			good.ServeHTTP(w, r)
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(origin.Close)
	tests := []struct {
		name    string
		path    string
		wantErr error
	}{
		{name: "same_origin_relative", path: "/same"},
		{name: "same_origin_absolute", path: "/same-absolute"},
		{name: "cross_origin", path: "/cross", wantErr: jwks.ErrFetch},
		{name: "same_host_other_scheme", path: "/other-scheme", wantErr: jwks.ErrFetch},
		{name: "same_host_other_port", path: "/other-port", wantErr: jwks.ErrFetch},
		{name: "redirect_loop", path: "/loop", wantErr: jwks.ErrFetch},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			client := &http.Client{Timeout: 5 * time.Second}
			set := newSet(t, jwks.Options{URL: origin.URL + tt.path, Client: client})
			err := set.Refresh(t.Context())
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Refresh() error = %v, want %v", err, tt.wantErr)
			}
			if set.Ready() != (tt.wantErr == nil) {
				t.Errorf("Ready() = %v after Refresh() error %v", set.Ready(), err)
			}
			if client.CheckRedirect != nil {
				t.Error("New changed the caller's http.Client")
			}
		})
	}
	if evil.Fetches() != 0 {
		t.Errorf("the other origin was fetched %d times, want 0", evil.Fetches())
	}
	if n := hops.Load(); n > 4 {
		t.Errorf("redirect loop followed %d times, want at most 4", n)
	}
}

// weak is a 1024-bit key, once per test binary.
var weak = sync.OnceValues(func() (*devissuer.Key, error) {
	k, err := rsa.GenerateKey(rand.Reader, 1024)
	return &devissuer.Key{ID: "weak", Private: k}, err
})

// TestUnsafeKeysRefused: RSA keys with e other than 65537 or under 2048 bits are not held, are reported
// to OnRejected, and are logged without key material; the safe keys beside them still load.
func TestUnsafeKeysRefused(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	key := s.iss.SigningKey()
	small, err := weak()
	if err != nil {
		t.Fatal(err)
	}
	e3 := rsaJWK(key, "e3", "RS256", "sig")
	e3.E = base64.RawURLEncoding.EncodeToString([]byte{3})
	badN := rsaJWK(key, "bad-n", "RS256", "sig")
	badN.N = "!!not-base64!!"
	s.serve(jwksJSON(t, e3, rsaJWK(small, "small", "RS256", "sig"), badN, rsaJWK(key, key.ID, "RS256", "sig")))

	var logs strings.Builder
	var mu sync.Mutex
	got := map[string]int{}
	set := newSet(t, jwks.Options{URL: s.url, Logger: slog.New(slog.NewTextHandler(&lockedWriter{w: &logs, mu: &mu}, nil)),
		OnRejected: func(reason string) { mu.Lock(); got[reason]++; mu.Unlock() }})
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatalf("Refresh() error = %v", err)
	}
	held := map[string]bool{}
	for _, kid := range []string{"e3", "small", "bad-n", key.ID} {
		held[kid] = set.Has(kid)
	}
	if diff := cmp.Diff(map[string]bool{"e3": false, "small": false, "bad-n": false, key.ID: true}, held); diff != "" {
		t.Errorf("Has() mismatch (-want +got):\n%s", diff)
	}
	mu.Lock()
	defer mu.Unlock()
	want := map[string]int{jwks.RejectedExponent: 1, jwks.RejectedTooSmall: 1, jwks.RejectedInvalid: 1}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("OnRejected reasons mismatch (-want +got):\n%s", diff)
	}
	for _, secret := range []string{e3.N[:40], rsaJWK(small, "", "", "").N[:40]} {
		if strings.Contains(logs.String(), secret) {
			t.Errorf("log holds key material %q:\n%s", secret, logs.String())
		}
	}
	for _, kid := range []string{"e3", "small"} {
		tok, err := devissuer.Sign(&devissuer.Key{ID: kid, Private: key.Private}, nil, s.iss.Access())
		if err != nil {
			t.Fatal(err)
		}
		if err := verify(t.Context(), set, tok); !errors.Is(err, jwks.ErrKeyUnknown) {
			t.Errorf("verify(kid %q) error = %v, want %v", kid, err, jwks.ErrKeyUnknown)
		}
	}
}

type lockedWriter struct {
	w  io.Writer
	mu *sync.Mutex
}

func (l *lockedWriter) Write(b []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.w.Write(b)
}

// TestHoldsBindsTheKey: Holds is true for the key held under a kid, false once the JWKS serves another key
// under the same kid, and a refresh serving the same key keeps Holds true.
func TestHoldsBindsTheKey(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set := newSet(t, jwks.Options{URL: iss.JWKSURL()})
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	kid := iss.SigningKey().ID
	k, err := set.Key(t.Context(), kid)
	if err != nil {
		t.Fatal(err)
	}
	if !set.Holds(kid, k) || set.Holds("other", k) || set.Holds(kid, nil) {
		t.Fatalf("Holds(kid, k), Holds(other, k), Holds(kid, nil) = %v, %v, %v; want true, false, false",
			set.Holds(kid, k), set.Holds("other", k), set.Holds(kid, nil))
	}
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !set.Holds(kid, k) {
		t.Error("Holds() = false after a refresh that served the same key")
	}
	replaced := mustOther(t, kid)
	iss.SetKeys(replaced, replaced)
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !set.Has(kid) || set.Holds(kid, k) {
		t.Errorf("after the key under %q was replaced: Has() = %v, Holds(old) = %v; want true, false", kid, set.Has(kid), set.Holds(kid, k))
	}
}

var otherKey = sync.OnceValues(func() (*devissuer.Key, error) { return devissuer.NewKey("other") })

func mustOther(t *testing.T, kid string) *devissuer.Key {
	t.Helper()
	k, err := otherKey()
	if err != nil {
		t.Fatal(err)
	}
	return &devissuer.Key{ID: kid, Private: k.Private}
}

// TestUnknownKIDAnsweredAtOnceDuringFetch: while an unknown-kid fetch hangs, every other unknown-kid
// request is answered with ErrKeyUnknown at once, not after the starter's wait bound (a minute here).
func TestUnknownKIDAnsweredAtOnceDuringFetch(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	arrived, release := make(chan struct{}, 1), make(chan struct{})
	var hold atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if hold.Load() {
			arrived <- struct{}{}
			<-release
		}
		r.URL.Path = "/" + devissuer.DefaultPoolID + "/.well-known/jwks.json"
		iss.ServeHTTP(w, r)
	}))
	t.Cleanup(srv.Close)
	set := newSet(t, jwks.Options{URL: srv.URL, WaitMax: time.Minute, FetchTimeout: time.Minute})
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	hold.Store(true)
	starter := make(chan error, 1)
	go func() { starter <- lookup(context.Background(), set, "unknown-starter") }()
	<-arrived // the fetch is in flight and hangs
	others := make(chan error, 1)
	go func() { others <- lookup(context.Background(), set, "unknown-other") }()
	select {
	case err := <-others:
		if !errors.Is(err, jwks.ErrKeyUnknown) {
			t.Errorf("lookup during the fetch error = %v, want %v", err, jwks.ErrKeyUnknown)
		}
	case <-time.After(10 * time.Second): // the old code waited WaitMax, a minute here
		t.Error("an unknown-kid lookup waited on a fetch another request started")
	}
	if err := lookup(t.Context(), set, iss.SigningKey().ID); err != nil {
		t.Errorf("lookup(known kid) during the fetch error = %v", err)
	}
	close(release)
	if err := <-starter; !errors.Is(err, jwks.ErrKeyUnknown) {
		t.Errorf("starter lookup error = %v, want %v", err, jwks.ErrKeyUnknown)
	}
}
