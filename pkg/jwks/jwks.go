// Package jwks keeps one pool's JSON Web Key Set: fetched at start, refreshed periodically and on an unknown
// kid, and read on the request path without ever waiting for a rate limiter.
//
// It builds on jwkset (JWK parsing and validation) and keeps, per kid, the key prepared for verification
// (rs256.PublicKey: the modulus precomputed once per key, not once per token). keyfunc's jwt.Keyfunc and
// its HTTP refresher are not used: the verifier asks for the prepared key, not for a *rsa.PublicKey, and
// keyfunc's refresher waits on its rate limiter for up to a minute inside the request (a random-kid flood
// parks every Check until Envoy's deadline), runs the fetch under that same short wait bound, and reports
// neither readiness nor successful refreshes.
//
// Unknown kids: at most one fetch per UnknownKIDWindow. The request that starts it waits for it at most
// WaitMax (default 1s) or its own deadline, whichever is first; every other request for an unknown kid,
// while that fetch runs or outside the window, is answered at once with ErrKeyUnknown.
//
// Only keys that can verify an RS256 token safely are held: RSA, use "sig" (or unset), alg RS256 (or
// unset), no x5u, e = 65537 and 2048 to 8192 bits (rs256.NewPublicKey). Others are skipped; the weak or
// malformed RSA keys among them are logged (kid and reason, never key material) and reported to OnRejected.
//
// The fetch follows redirects only within the JWKS URL's origin (scheme, host and port), at most
// maxRedirects times: the keys are trusted because of where they come from, and a redirect elsewhere would
// hand that trust to whoever the first origin points at.
package jwks

import (
	"context"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/MicahParks/jwkset"
	"go.opentelemetry.io/otel/attribute"
	"go.opentelemetry.io/otel/codes"
	"golang.org/x/time/rate"

	"github.com/cognito-authz/cognito-authz/pkg/rs256"
	"github.com/cognito-authz/cognito-authz/pkg/tracing"
)

var (
	// ErrKeyUnknown means the token's kid is not in the set, and no refresh could be had that finds it.
	ErrKeyUnknown = errors.New("signing key unknown")
	// ErrUnavailable means the set has never been loaded, so no token of the pool can be checked.
	ErrUnavailable = errors.New("signing keys unavailable")
	// ErrFetch wraps every failure to fetch or decode the set.
	ErrFetch = errors.New("jwks fetch failed")
)

// maxBytes bounds a JWKS document: Cognito's is under 2 KiB.
const maxBytes = 1 << 20

// maxRedirects bounds the same-origin redirects one fetch follows.
const maxRedirects = 3

// Reasons OnRejected is given: why an RSA key offered for RS256 was refused.
const (
	RejectedExponent = "exponent"  // e is not 65537
	RejectedTooSmall = "too_small" // under 2048 bits
	RejectedTooLarge = "too_large" // over 8192 bits
	RejectedInvalid  = "invalid"   // not a valid RSA public key (bad encoding, even modulus, ...)
)

// Options configure a Set. URL is required; zero durations take the defaults shown.
type Options struct {
	URL              string
	Client           *http.Client  // default: a client with FetchTimeout; its redirects are limited to URL's origin either way
	RefreshInterval  time.Duration // periodic refresh, default 1h
	UnknownKIDWindow time.Duration // at most one unknown-kid fetch per window, default 1m
	FetchTimeout     time.Duration // one fetch, default 5s
	WaitMax          time.Duration // how long the request that starts an unknown-kid fetch waits for it, default 1s
	Logger           *slog.Logger  // default: slog.Default()
	// OnRefresh, when set, is told the outcome of every fetch ("ok" or "error") and the keys now held.
	OnRefresh func(result string, keys int)
	// OnRejected, when set, is told of every RSA key of a fetched set that was refused as unsafe, with one
	// of the Rejected* reasons. It is called at every fetch that still serves the key.
	OnRejected func(reason string)
}

// Set is one pool's key set. Run must be running for the set to load and refresh.
type Set struct {
	opts    Options
	limiter *rate.Limiter

	loaded atomic.Bool
	keys   atomic.Pointer[map[string]*rs256.PublicKey] // replaced whole on refresh, never changed in place

	refreshMu sync.Mutex // one fetch-and-replace at a time, so an older answer never overwrites a newer one
	mu        sync.Mutex
	inflight  bool // an unknown-kid fetch is running
}

// New makes a Set; nothing is fetched until Run.
func New(opts Options) (*Set, error) {
	u, err := url.Parse(opts.URL)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
		return nil, fmt.Errorf("jwks: URL %q: want an absolute http(s) URL", opts.URL)
	}
	if opts.RefreshInterval <= 0 {
		opts.RefreshInterval = time.Hour
	}
	if opts.UnknownKIDWindow <= 0 {
		opts.UnknownKIDWindow = time.Minute
	}
	if opts.FetchTimeout <= 0 {
		opts.FetchTimeout = 5 * time.Second
	}
	if opts.WaitMax <= 0 {
		opts.WaitMax = time.Second
	}
	if opts.Client == nil {
		opts.Client = &http.Client{Timeout: opts.FetchTimeout}
	}
	c := *opts.Client // a copy: the caller's client keeps its own redirect policy for its other uses
	c.CheckRedirect = sameOrigin(u)
	opts.Client = &c
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Set{opts: opts, limiter: rate.NewLimiter(rate.Every(opts.UnknownKIDWindow), 1)}
	s.keys.Store(&map[string]*rs256.PublicKey{})
	return s, nil
}

// errRedirect is a refused redirect of the JWKS fetch.
var errRedirect = errors.New("redirect refused")

// sameOrigin allows redirects to the origin of u only (scheme, host and port, default ports made
// explicit), and at most maxRedirects of them.
func sameOrigin(u *url.URL) func(*http.Request, []*http.Request) error {
	want := origin(u)
	return func(req *http.Request, via []*http.Request) error {
		if len(via) > maxRedirects {
			return fmt.Errorf("%w: more than %d redirects", errRedirect, maxRedirects)
		}
		if got := origin(req.URL); got != want {
			return fmt.Errorf("%w: %s is not the JWKS origin %s", errRedirect, got, want)
		}
		return nil
	}
}

func origin(u *url.URL) string {
	port := u.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[u.Scheme]
	}
	return u.Scheme + "://" + u.Hostname() + ":" + port
}

// URL is where the set is fetched from.
func (s *Set) URL() string { return s.opts.URL }

// Ready reports whether the set has been loaded at least once.
func (s *Set) Ready() bool { return s.loaded.Load() }

// Has reports whether kid is in the set as last loaded.
func (s *Set) Has(kid string) bool {
	_, ok := (*s.keys.Load())[kid]
	return ok
}

// Holds reports whether k is the key held under kid now, without fetching: a verified-token cache asks it
// on every hit, so that a key removed from the JWKS, or replaced under the same kid, stops its tokens
// within one refresh. A refresh that serves the same key again keeps the same *rs256.PublicKey.
func (s *Set) Holds(kid string, k *rs256.PublicKey) bool {
	cur, ok := (*s.keys.Load())[kid]
	return ok && k != nil && cur == k
}

// Len is the number of keys held.
func (s *Set) Len() int { return len(*s.keys.Load()) }

// Key returns the key for kid. On an unknown kid it starts a fetch if the window allows and waits for it
// within ctx and WaitMax; while such a fetch is running, and outside the window, it fails at once. The
// error wraps ErrUnavailable while the set has never loaded, ErrKeyUnknown otherwise.
func (s *Set) Key(ctx context.Context, kid string) (*rs256.PublicKey, error) {
	if k, ok := (*s.keys.Load())[kid]; ok {
		return k, nil
	}
	if s.refreshUnknown(ctx) {
		if k, ok := (*s.keys.Load())[kid]; ok {
			return k, nil
		}
	}
	if !s.Ready() {
		return nil, ErrUnavailable
	}
	return nil, fmt.Errorf("%w: kid %.80q", ErrKeyUnknown, kid)
}

// Run loads the set, retrying with backoff until it succeeds, then refreshes it every RefreshInterval until
// ctx ends. A failed refresh keeps the keys already held.
func (s *Set) Run(ctx context.Context) {
	backoff := 250 * time.Millisecond
	for !s.Ready() {
		if err := s.Refresh(ctx); err != nil {
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "jwks not loaded yet", slog.String("url", s.opts.URL),
				slog.String("error", err.Error()), slog.Duration("retry_in", backoff))
		}
		if s.Ready() {
			break
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(backoff*2, 30*time.Second, s.opts.RefreshInterval) // never later than a refresh would be
	}
	t := time.NewTicker(s.opts.RefreshInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if err := s.Refresh(ctx); err != nil {
				s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "jwks refresh failed; serving cached keys",
					slog.String("url", s.opts.URL), slog.String("error", err.Error()), slog.Int("keys", s.Len()))
			}
		}
	}
}

// Refresh fetches the set now and, if it holds at least one usable key, replaces the keys held. A key
// served again unchanged under its kid keeps its prepared form (and so the cache entries bound to it).
func (s *Set) Refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	keys, err := s.fetch(ctx)
	if err != nil {
		s.observe("error")
		return err
	}
	old := *s.keys.Load()
	for kid, k := range keys {
		if o, ok := old[kid]; ok && o.Equal(k) {
			keys[kid] = o
		}
	}
	s.keys.Store(&keys)
	s.loaded.Store(true)
	s.observe("ok")
	return nil
}

func (s *Set) observe(result string) {
	if s.opts.OnRefresh != nil {
		s.opts.OnRefresh(result, s.Len())
	}
}

func (s *Set) fetch(ctx context.Context) (keys map[string]*rs256.PublicKey, err error) {
	// A root span: a fetch is detached from the request that may have triggered it.
	ctx, span := tracing.StartRoot(ctx, "jwks.fetch")
	if span.IsRecording() {
		defer func() {
			span.SetAttributes(attribute.String("jwks.url", s.opts.URL), attribute.Int("jwks.keys", len(keys)))
			if err != nil {
				span.SetStatus(codes.Error, err.Error())
			}
			span.End()
		}()
	}
	ctx, cancel := context.WithTimeout(ctx, s.opts.FetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, s.opts.URL, nil)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	req.Header.Set("Accept", "application/json")
	resp, err := s.opts.Client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrFetch, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%w: %s answered %d", ErrFetch, s.opts.URL, resp.StatusCode)
	}
	var doc jwkset.JWKSMarshal
	dec := json.NewDecoder(io.LimitReader(resp.Body, maxBytes))
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("%w: decode: %w", ErrFetch, err)
	}
	keys = make(map[string]*rs256.PublicKey, len(doc.Keys))
	dups := map[string]struct{}{}
	for _, m := range doc.Keys {
		// Cognito signs with RS256 only. Keys of other types, algorithms or uses, and keys that point at
		// certificates elsewhere (x5u), are skipped: they can never verify a token we accept.
		if m.KTY != jwkset.KtyRSA || (m.ALG != "" && m.ALG != jwkset.AlgRS256) || (m.USE != "" && m.USE != jwkset.UseSig) ||
			m.KID == "" || m.X5U != "" {
			continue
		}
		k, reason, err := prepare(m)
		if err != nil {
			// The kid and the reason only: a key is public, but a log is no place for key material.
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "jwks: refusing key", slog.String("kid", m.KID),
				slog.String("reason", reason), slog.String("error", err.Error()))
			if s.opts.OnRejected != nil {
				s.opts.OnRejected(reason)
			}
			continue
		}
		if _, dup := keys[m.KID]; dup {
			dups[m.KID] = struct{}{}
		}
		keys[m.KID] = k
	}
	for kid := range dups {
		// Two keys under one kid: which one a token means cannot be told, so neither is held.
		s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "jwks: refusing kid listed twice", slog.String("kid", kid))
		delete(keys, kid)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: %s holds no usable RS256 key", ErrFetch, s.opts.URL)
	}
	return keys, nil
}

// prepare validates one RSA JWK and precomputes it for verification; on error it says which Rejected*
// reason applies.
func prepare(m jwkset.JWKMarshal) (*rs256.PublicKey, string, error) {
	jwk, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
	if err != nil {
		return nil, RejectedInvalid, err
	}
	pub, ok := jwk.Key().(*rsa.PublicKey)
	if !ok {
		return nil, RejectedInvalid, fmt.Errorf("not an RSA public key: %T", jwk.Key())
	}
	k, err := rs256.NewPublicKey(pub)
	switch {
	case errors.Is(err, rs256.ErrExponent):
		return nil, RejectedExponent, err
	case errors.Is(err, rs256.ErrKeyTooSmall):
		return nil, RejectedTooSmall, err
	case errors.Is(err, rs256.ErrKeyTooLarge):
		return nil, RejectedTooLarge, err
	case err != nil:
		return nil, RejectedInvalid, err
	}
	return k, "", nil
}

// refreshUnknown starts an unknown-kid fetch if none is running and the window allows, and waits for it
// within ctx and WaitMax; it reports whether a fetch it started has ended. While a fetch runs, every other
// caller returns false at once: a flood of unknown kids never queues behind a slow JWKS endpoint. The
// fetch runs detached from the request, bounded by FetchTimeout, so a cancelled request does not waste
// the window for everyone else.
func (s *Set) refreshUnknown(ctx context.Context) bool {
	s.mu.Lock()
	if s.inflight || !s.limiter.Allow() {
		s.mu.Unlock()
		return false
	}
	s.inflight = true
	s.mu.Unlock()
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := s.Refresh(context.WithoutCancel(ctx)); err != nil {
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "jwks refresh on unknown kid failed",
				slog.String("url", s.opts.URL), slog.String("error", err.Error()))
		}
		s.mu.Lock()
		s.inflight = false
		s.mu.Unlock()
	}()
	t := time.NewTimer(s.opts.WaitMax)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
	case <-ctx.Done():
	}
	return false
}
