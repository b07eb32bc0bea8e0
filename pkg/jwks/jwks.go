// Package jwks keeps one pool's JSON Web Key Set: fetched at start, refreshed periodically and on an unknown
// kid, and read on the request path without ever waiting for a rate limiter.
//
// It builds on jwkset (JWK parsing, validation, storage) and keyfunc (the jwt.Keyfunc that matches a token's
// kid and alg to a key). It does not use keyfunc's own HTTP refresher, because that one waits on its rate
// limiter for up to a minute inside the request (a random-kid flood parks every Check until Envoy's
// deadline), runs the fetch under that same short wait bound, and reports neither readiness nor successful
// refreshes. Here an unknown kid triggers at most one fetch per window; concurrent requests for unknown kids
// share that fetch, and a request outside the window fails at once with ErrKeyUnknown.
package jwks

import (
	"context"
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
	"github.com/MicahParks/keyfunc/v3"
	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/time/rate"
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

// Options configure a Set. URL is required; zero durations take the defaults shown.
type Options struct {
	URL              string
	Client           *http.Client  // default: a client with FetchTimeout
	RefreshInterval  time.Duration // periodic refresh, default 1h
	UnknownKIDWindow time.Duration // at most one unknown-kid fetch per window, default 1m
	FetchTimeout     time.Duration // one fetch, default 5s
	WaitMax          time.Duration // how long a request waits on a fetch it shares, default 1s
	Logger           *slog.Logger  // default: slog.Default()
	// OnRefresh, when set, is told the outcome of every fetch ("ok" or "error") and the keys now held.
	OnRefresh func(result string, keys int)
}

// Set is one pool's key set. Run must be running for the set to load and refresh.
type Set struct {
	opts    Options
	mem     *jwkset.MemoryJWKSet
	kf      keyfunc.Keyfunc
	limiter *rate.Limiter

	loaded atomic.Bool
	kids   atomic.Pointer[map[string]struct{}]

	refreshMu sync.Mutex // one fetch-and-replace at a time, so an older answer never overwrites a newer one
	mu        sync.Mutex
	inflight  chan struct{} // closed when the current unknown-kid fetch ends
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
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	s := &Set{
		opts:    opts,
		mem:     jwkset.NewMemoryStorage(),
		limiter: rate.NewLimiter(rate.Every(opts.UnknownKIDWindow), 1),
	}
	s.kids.Store(&map[string]struct{}{})
	// Only signature keys: a JWKS key marked for encryption must never verify a token.
	s.kf, err = keyfunc.New(keyfunc.Options{Storage: storage{s}, UseWhitelist: []jwkset.USE{jwkset.UseSig, ""}})
	if err != nil {
		return nil, fmt.Errorf("jwks: %w", err)
	}
	return s, nil
}

// URL is where the set is fetched from.
func (s *Set) URL() string { return s.opts.URL }

// Ready reports whether the set has been loaded at least once.
func (s *Set) Ready() bool { return s.loaded.Load() }

// Has reports whether kid is in the set as last loaded: a verified-token cache asks it on every hit, so that
// a key removed from the JWKS stops its tokens within one refresh.
func (s *Set) Has(kid string) bool {
	_, ok := (*s.kids.Load())[kid]
	return ok
}

// Len is the number of keys held.
func (s *Set) Len() int { return len(*s.kids.Load()) }

// Keyfunc returns the jwt.Keyfunc for one request: it reads the key for the token's kid, and on an unknown
// kid shares or starts a rate-limited fetch, waiting no longer than ctx and WaitMax allow.
func (s *Set) Keyfunc(ctx context.Context) jwt.Keyfunc { return s.kf.KeyfuncCtx(ctx) }

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

// Refresh fetches the set now and, if it holds at least one usable key, replaces the keys held.
func (s *Set) Refresh(ctx context.Context) error {
	s.refreshMu.Lock()
	defer s.refreshMu.Unlock()
	keys, err := s.fetch(ctx)
	if err != nil {
		s.observe("error")
		return err
	}
	kids := make(map[string]struct{}, len(keys))
	for _, k := range keys {
		kids[k.Marshal().KID] = struct{}{}
	}
	if err := s.mem.KeyReplaceAll(ctx, keys); err != nil {
		s.observe("error")
		return fmt.Errorf("%w: %w", ErrFetch, err)
	}
	s.kids.Store(&kids)
	s.loaded.Store(true)
	s.observe("ok")
	return nil
}

func (s *Set) observe(result string) {
	if s.opts.OnRefresh != nil {
		s.opts.OnRefresh(result, s.Len())
	}
}

func (s *Set) fetch(ctx context.Context) ([]jwkset.JWK, error) {
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
	var keys []jwkset.JWK
	for _, m := range doc.Keys {
		// Cognito signs with RS256 only. Keys of other types, algorithms or uses, and keys that point at
		// certificates elsewhere (x5u), are skipped: they can never verify a token we accept.
		if m.KTY != jwkset.KtyRSA || (m.ALG != "" && m.ALG != jwkset.AlgRS256) || (m.USE != "" && m.USE != jwkset.UseSig) ||
			m.KID == "" || m.X5U != "" {
			continue
		}
		k, err := jwkset.NewJWKFromMarshal(m, jwkset.JWKMarshalOptions{}, jwkset.JWKValidateOptions{})
		if err != nil {
			s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "jwks: skipping invalid key", slog.String("kid", m.KID),
				slog.String("error", err.Error()))
			continue
		}
		keys = append(keys, k)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("%w: %s holds no usable RS256 key", ErrFetch, s.opts.URL)
	}
	return keys, nil
}

// refreshUnknown shares the fetch in flight, or starts one if the window allows, and waits for it within
// ctx and WaitMax. The fetch itself runs detached from any one request, bounded by FetchTimeout, so a
// cancelled request does not waste the window for everyone else.
func (s *Set) refreshUnknown(ctx context.Context) error {
	s.mu.Lock()
	done := s.inflight
	if done == nil {
		if !s.limiter.Allow() {
			s.mu.Unlock()
			return ErrKeyUnknown
		}
		done = make(chan struct{})
		s.inflight = done
		go func() {
			if err := s.Refresh(context.WithoutCancel(ctx)); err != nil {
				s.opts.Logger.LogAttrs(ctx, slog.LevelWarn, "jwks refresh on unknown kid failed",
					slog.String("url", s.opts.URL), slog.String("error", err.Error()))
			}
			s.mu.Lock()
			s.inflight = nil
			s.mu.Unlock()
			close(done)
		}()
	}
	s.mu.Unlock()
	t := time.NewTimer(s.opts.WaitMax)
	defer t.Stop()
	select {
	case <-done:
		return nil
	case <-t.C:
		return ErrKeyUnknown
	case <-ctx.Done():
		return ErrKeyUnknown
	}
}

// storage is the jwkset.Storage keyfunc reads: the in-memory set, plus the fail-fast unknown-kid refresh.
type storage struct{ s *Set }

var _ jwkset.Storage = storage{}

// KeyRead returns the key for kid, refreshing at most once per window when it is unknown.
func (st storage) KeyRead(ctx context.Context, kid string) (jwkset.JWK, error) {
	s := st.s
	k, err := s.mem.KeyRead(ctx, kid)
	if err == nil {
		return k, nil
	}
	if err := s.refreshUnknown(ctx); err == nil {
		if k, err := s.mem.KeyRead(ctx, kid); err == nil {
			return k, nil
		}
	}
	if !s.Ready() {
		return jwkset.JWK{}, ErrUnavailable
	}
	return jwkset.JWK{}, fmt.Errorf("%w: kid %.80q", ErrKeyUnknown, kid)
}

func (st storage) KeyDelete(ctx context.Context, kid string) (bool, error) {
	return st.s.mem.KeyDelete(ctx, kid)
}
func (st storage) KeyReadAll(ctx context.Context) ([]jwkset.JWK, error) {
	return st.s.mem.KeyReadAll(ctx)
}
func (st storage) KeyReplaceAll(ctx context.Context, g []jwkset.JWK) error {
	return st.s.mem.KeyReplaceAll(ctx, g)
}
func (st storage) KeyWrite(ctx context.Context, k jwkset.JWK) error  { return st.s.mem.KeyWrite(ctx, k) }
func (st storage) JSON(ctx context.Context) (json.RawMessage, error) { return st.s.mem.JSON(ctx) }
func (st storage) JSONPublic(ctx context.Context) (json.RawMessage, error) {
	return st.s.mem.JSONPublic(ctx)
}
func (st storage) JSONPrivate(ctx context.Context) (json.RawMessage, error) {
	return nil, errors.New("jwks: private keys are never exported")
}
func (st storage) JSONWithOptions(ctx context.Context, m jwkset.JWKMarshalOptions, v jwkset.JWKValidateOptions) (json.RawMessage, error) {
	return st.s.mem.JSONWithOptions(ctx, m, v)
}
func (st storage) Marshal(ctx context.Context) (jwkset.JWKSMarshal, error) {
	return st.s.mem.Marshal(ctx)
}
func (st storage) MarshalWithOptions(ctx context.Context, m jwkset.JWKMarshalOptions, v jwkset.JWKValidateOptions) (jwkset.JWKSMarshal, error) {
	return st.s.mem.MarshalWithOptions(ctx, m, v)
}
