// Package session is browser sign-in for cognito-authz: the Cognito Hosted UI authorization-code flow with
// PKCE (S256), state and nonce in a per-attempt encrypted transaction cookie, stateless AES-256-GCM session
// cookies (a key ring for rotation, split across numbered cookies when large), inline refresh
// (single-flight per session per replica) and logout through Cognito's /logout.
//
// It is transport-free: handlers take the facts of a request (Request) and return what to answer
// (Response: a status, headers with each Set-Cookie on its own, a body). It imports no Envoy types and no
// config; its Options are mapped from the config by the caller. A session is a credential source for
// authz like a Bearer token: its access token still goes through the token verifier on every request.
//
// Security invariants: a cookie that does not open or parse is no session, never an error; the state is
// compared in constant time; return URLs are re-serialised from parsed parts and limited to this origin or
// an allowed https host; redirect_uri is built only from a listed Host; no error leads to an automatic
// redirect, so nothing loops; tokens and cookie values are never logged.
package session

import (
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/token"
	"github.com/maypok86/otter/v2"
	"golang.org/x/oauth2"
	"golang.org/x/sync/singleflight"
)

// Sentinels of the flow. Response.Err wraps one; authz maps them onto its reasons.
var (
	ErrHost          = errors.New("host not in allowed_hosts")         // redirect_uri would be built from an unlisted Host
	ErrTransaction   = errors.New("sign-in transaction unknown")       // no, expired or tampered transaction cookie
	ErrState         = errors.New("state mismatch")                    // the callback's state is not the transaction's
	ErrProvider      = errors.New("identity provider refused sign-in") // error= on the callback
	ErrExchange      = errors.New("code exchange failed")              // the token endpoint refused the code
	ErrVerify        = errors.New("tokens did not verify")             // ID or access token invalid, nonce or client mismatch
	ErrTooLarge      = errors.New("session too large for its cookies") // more than maxChunks cookies
	ErrSessionEnded  = errors.New("session ended")                     // invalid_grant on refresh: the refresh token is dead
	ErrUnavailable   = errors.New("token endpoint unavailable")        // timeout, 5xx, network, concurrency bound
	ErrOrigin        = errors.New("cross-origin logout refused")       // logout without a same-origin Origin
	ErrMethod        = errors.New("method not allowed")                // e.g. GET logout when only POST is allowed
	ErrLoginRequired = errors.New("sign-in required")                  // a login route without a session
)

// Verifier verifies a raw JWT; *token.Verifier is one. The ID-token verifier must accept ID tokens of the
// browser client's pool and keep the "nonce" claim (token.WithClaims("nonce", ...)) plus the claims the
// identity headers take from the ID token.
type Verifier interface {
	Verify(ctx context.Context, raw string) (*token.Identity, error)
}

// Endpoints override the Hosted UI endpoints derived from the domain (emulators, tests).
type Endpoints struct {
	Authorize, Token, Logout, Revoke string
}

// Options configure a Flow. The config's browser: block maps onto them one to one.
type Options struct {
	Domain       string // Hosted UI base, e.g. https://myapp.auth.eu-west-1.amazoncognito.com
	ClientID     string
	ClientSecret string   // optional: HTTP Basic at the token endpoint when set
	Scopes       []string // default openid email profile
	Pool         string   // the pool whose tokens this client gets; "" accepts any pool the verifiers accept
	AllowedHosts []string
	CallbackPath string // default /_authz/callback
	LoginPath    string // default /_authz/login
	LogoutPath   string // default /_authz/logout
	// LogoutRedirect is Cognito's logout_uri: one of the app client's sign-out URLs.
	LogoutRedirect string
	// LogoutGET also accepts GET on the logout path (default: POST only, with an Origin check).
	LogoutGET     bool
	Keys          *KeyRing
	MaxAge        time.Duration // default 12h
	RefreshBefore time.Duration // default 2m
	Cookie        CookieOptions
	Endpoints     Endpoints
	InsecureHTTP  bool // dev only: http:// hosts, cookies without Secure

	AccessVerifier, IDVerifier Verifier

	// Bounds of token-endpoint calls: each one's timeout (default 5s) and how many run at once per replica
	// (default 32; beyond it a call fails fast as ErrUnavailable).
	TokenTimeout  time.Duration
	MaxConcurrent int
	// TransactionTTL is how long a sign-in attempt may take (default 10m).
	TransactionTTL time.Duration
	// CacheBytes bounds the cache of opened sessions by cookie hash (default 8 MiB; negative: none), so a
	// signed-in request costs a hash and a lookup, not an AES-GCM open and a decode.
	CacheBytes int64
	Transport  http.RoundTripper // default a clone of http.DefaultTransport
	Now        func() time.Time
	Logger     *slog.Logger
}

// Flow answers the browser side. It is safe for concurrent use.
type Flow struct {
	o       Options
	hosts   Hosts
	cookies cookies
	scheme  string
	oauth   oauth2.Config
	client  *http.Client
	sem     chan struct{}
	group   singleflight.Group
	recent  recentRefreshes
	opened  *otter.Cache[[sha256.Size]byte, *Session] // nil: no cache
	now     func() time.Time
	log     *slog.Logger
}

// maxTokenResponse bounds what the token and revoke endpoints may answer.
const maxTokenResponse = 64 << 10

// New checks the options and builds a Flow. Every problem is reported at once.
func New(o Options) (*Flow, error) {
	if o.Scopes == nil {
		o.Scopes = []string{"openid", "email", "profile"}
	}
	def := func(s *string, d string) {
		if *s == "" {
			*s = d
		}
	}
	def(&o.CallbackPath, "/_authz/callback")
	def(&o.LoginPath, "/_authz/login")
	def(&o.LogoutPath, "/_authz/logout")
	d := strings.TrimSuffix(o.Domain, "/")
	def(&o.Endpoints.Authorize, d+"/oauth2/authorize")
	def(&o.Endpoints.Token, d+"/oauth2/token")
	def(&o.Endpoints.Logout, d+"/logout")
	def(&o.Endpoints.Revoke, d+"/oauth2/revoke")
	if o.MaxAge == 0 {
		o.MaxAge = 12 * time.Hour
	}
	if o.RefreshBefore == 0 {
		o.RefreshBefore = 2 * time.Minute
	}
	if o.TokenTimeout == 0 {
		o.TokenTimeout = 5 * time.Second
	}
	if o.MaxConcurrent == 0 {
		o.MaxConcurrent = 32
	}
	if o.TransactionTTL == 0 {
		o.TransactionTTL = 10 * time.Minute
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CacheBytes == 0 {
		o.CacheBytes = 8 << 20
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	var problems []error
	bad := func(format string, a ...any) { problems = append(problems, fmt.Errorf(format, a...)) }
	if o.ClientID == "" {
		bad("client_id is required")
	}
	if len(o.AllowedHosts) == 0 {
		bad("allowed_hosts is required")
	}
	if o.Keys == nil {
		bad("session keys are required")
	}
	if o.AccessVerifier == nil || o.IDVerifier == nil {
		bad("access and ID token verifiers are required")
	}
	for name, e := range map[string]string{"authorize": o.Endpoints.Authorize, "token": o.Endpoints.Token,
		"logout": o.Endpoints.Logout, "revoke": o.Endpoints.Revoke} {
		u, err := url.Parse(e)
		if err != nil || u.Host == "" || (u.Scheme != "https" && !(u.Scheme == "http" && (o.InsecureHTTP || loopback(u.Hostname())))) {
			bad("%s endpoint %q: want an https URL, http only on loopback or with insecure_http (set domain)", name, e)
		}
	}
	for name, p := range map[string]string{"callback_path": o.CallbackPath, "login_path": o.LoginPath,
		"logout_path": o.LogoutPath} {
		if !strings.HasPrefix(p, "/") || strings.ContainsAny(p, "?#%\\ ") {
			bad("%s %q: want an absolute path without query or escapes", name, p)
		}
	}
	if o.CallbackPath == o.LoginPath || o.CallbackPath == o.LogoutPath || o.LoginPath == o.LogoutPath {
		bad("callback_path, login_path and logout_path must differ")
	}
	if u, err := url.Parse(o.LogoutRedirect); o.LogoutRedirect != "" && (err != nil || u.Host == "") {
		bad("logout_redirect %q: want an absolute URL", o.LogoutRedirect)
	}
	if o.MaxAge < 0 || o.RefreshBefore < 0 || o.TokenTimeout < 0 || o.MaxConcurrent < 0 || o.TransactionTTL < 0 {
		bad("durations and bounds must not be negative")
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("session: %w", errors.Join(problems...))
	}
	tr := o.Transport
	if tr == nil {
		tr = http.DefaultTransport.(*http.Transport).Clone()
	}
	f := &Flow{
		o: o, hosts: NewHosts(o.AllowedHosts), cookies: newCookies(o.Cookie, !o.InsecureHTTP),
		scheme: "https", sem: make(chan struct{}, o.MaxConcurrent), now: o.Now, log: o.Logger,
		client: &http.Client{
			Transport: limitBody{tr},
			Timeout:   o.TokenTimeout,
			// The token endpoint answers directly; a redirect is never followed with a code or a secret.
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		},
	}
	if o.InsecureHTTP {
		f.scheme = "http"
	}
	if o.CacheBytes > 0 {
		c, err := newOpenedCache(o.CacheBytes)
		if err != nil {
			return nil, err
		}
		f.opened = c
	}
	style := oauth2.AuthStyleInParams
	if o.ClientSecret != "" {
		style = oauth2.AuthStyleInHeader
	}
	f.oauth = oauth2.Config{ClientID: o.ClientID, ClientSecret: o.ClientSecret, Scopes: o.Scopes,
		Endpoint: oauth2.Endpoint{AuthURL: o.Endpoints.Authorize, TokenURL: o.Endpoints.Token, AuthStyle: style}}
	return f, nil
}

// loopback reports whether host is localhost or a loopback IP: an emulator on this machine may speak http.
func loopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// limitBody bounds every token-endpoint response body at maxTokenResponse.
type limitBody struct{ rt http.RoundTripper }

func (l limitBody) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := l.rt.RoundTrip(r)
	if err == nil {
		resp.Body = struct {
			io.Reader
			io.Closer
		}{io.LimitReader(resp.Body, maxTokenResponse), resp.Body}
	}
	return resp, err
}

// Request is what the flow needs of a request. Headers are read by lower-case name.
type Request struct {
	Method  string
	Host    string // the authority the client sent, port included
	Path    string // path and query as received, undecoded
	Headers token.Headers
}

func (r Request) cookieJar(prefix string) jar { return readJar(r.Headers.Get("cookie"), prefix) }

func (r Request) splitPath() (path, query string) {
	path, query, _ = strings.Cut(r.Path, "?")
	return path, query
}

// Header is one response header.
type Header struct{ Name, Value string }

// Response is what to answer. Each Set-Cookie is its own Header, as the transports must send them.
type Response struct {
	Status  int
	Headers []Header
	Body    string
	// Err is the cause of an error answer, wrapping a sentinel, for logs and reasons; nil on success.
	Err error
}

// SetCookies returns the Set-Cookie values of the response.
func (r *Response) SetCookies() []string {
	var out []string
	for _, h := range r.Headers {
		if h.Name == "Set-Cookie" {
			out = append(out, h.Value)
		}
	}
	return out
}

// Paths reports whether the request is for one of the flow's own paths on an allowed host: those are
// answered by Serve whatever the rules say.
func (f *Flow) Paths(r Request) bool {
	p, _ := r.splitPath()
	if p != f.o.CallbackPath && p != f.o.LoginPath && p != f.o.LogoutPath {
		return false
	}
	_, ok := f.hosts.Canonical(r.Host)
	return ok
}

// IsLogout reports whether the request is for the logout path (on any host).
func (f *Flow) IsLogout(r Request) bool {
	p, _ := r.splitPath()
	return p == f.o.LogoutPath
}

// Serve answers the login, callback and logout paths. ok is false for any other request (see Paths).
func (f *Flow) Serve(ctx context.Context, r Request) (resp Response, ok bool) {
	if !f.Paths(r) {
		return Response{}, false
	}
	p, q := r.splitPath()
	switch p {
	case f.o.LoginPath:
		vals, _ := url.ParseQuery(q)
		return f.login(r, vals.Get("rd")), true
	case f.o.CallbackPath:
		return f.callback(ctx, r), true
	default:
		return f.logout(ctx, r), true
	}
}

// Challenge answers a request to a login route that has no session: a browser navigation is sent to sign
// in (back to this very URL afterwards); anything else gets 401 JSON naming the login URL.
func (f *Flow) Challenge(r Request) Response {
	if IsNavigation(r.Method, r.Headers) {
		return f.login(r, r.Path)
	}
	return f.loginRequired(r.Path)
}

// loginRequired is the 401 a program gets: {"error":"login_required","login":"<login_path>?rd=…"}.
func (f *Flow) loginRequired(returnPath string) Response {
	login := f.o.LoginPath + "?rd=" + url.QueryEscape(SafeReturn(returnPath, f.hosts, f.o.InsecureHTTP))
	body := `{"error":"login_required","error_description":"sign in first","login":` + jsonString(login) + "}"
	return Response{Status: http.StatusUnauthorized, Body: body, Err: ErrLoginRequired, Headers: []Header{
		{"Content-Type", "application/json"}, {"Cache-Control", "no-store"},
	}}
}

// newOpenedCache is the cache of opened sessions, bounded by their weight.
func newOpenedCache(bytes int64) (*otter.Cache[[sha256.Size]byte, *Session], error) {
	c, err := otter.New(&otter.Options[[sha256.Size]byte, *Session]{
		MaximumWeight: uint64(bytes),
		Weigher:       func(_ [sha256.Size]byte, s *Session) uint32 { return uint32(s.weight()) },
		// Eviction only: every hit is still checked against the session's own expiry.
		ExpiryCalculator: otter.ExpiryCreating[[sha256.Size]byte, *Session](openedTTL),
	})
	if err != nil {
		return nil, fmt.Errorf("session: cache: %w", err)
	}
	return c, nil
}

// openedTTL is how long an opened session stays cached after it was opened.
const openedTTL = 10 * time.Minute

// Load returns the request's session, or nil when it has none that opens, parses and has not expired.
// The access token may have expired: see RefreshDue and Refresh. The session may be shared with other
// requests (it comes from a cache of opened sessions): treat it as read-only.
func (f *Flow) Load(r Request) *Session {
	header := r.Headers.Get("cookie")
	now := f.now()
	if f.opened == nil || !strings.Contains(header, f.cookies.base) {
		return f.cookies.readSession(f.o.Keys, readJar(header, f.cookies.base), now)
	}
	k, ok := f.cookies.sessionKey(header)
	if !ok {
		return f.cookies.readSession(f.o.Keys, readJar(header, f.cookies.base), now)
	}
	if s, ok := f.opened.GetIfPresent(k); ok && s.Valid(now) {
		return s
	}
	s := f.cookies.readSession(f.o.Keys, readJar(header, f.cookies.base), now)
	if s != nil {
		f.opened.Set(k, s) // only what opened: garbage costs its own decrypt every time, never memory
	}
	return s
}

// RefreshDue reports whether s should be refreshed now (within refresh_before of the access token's exp).
func (f *Flow) RefreshDue(s *Session) bool { return s.RefreshDue(f.now(), f.o.RefreshBefore) }

// StripCookies returns a Cookie header without our cookies: what the upstream may see.
func (f *Flow) StripCookies(header string) string { return f.cookies.strip(header) }

// ClearCookies returns the Set-Cookie lines that remove the session (every chunk the request carries).
func (f *Flow) ClearCookies(r Request) []string {
	return f.cookies.clearSession(r.cookieJar(f.cookies.base))
}

// redirectURI is https://<Host><callback_path> for an allowed Host only.
func (f *Flow) redirectURI(host string) (string, error) {
	h, ok := f.hosts.Canonical(host)
	if !ok {
		return "", fmt.Errorf("%w: %.100q", ErrHost, host)
	}
	return f.scheme + "://" + h + f.o.CallbackPath, nil
}

// acquire takes a token-endpoint slot, or fails fast when all are busy: a slow Cognito must not pile up
// goroutines, and a request that cannot get a slot now would not get its answer in time anyway.
func (f *Flow) acquire(ctx context.Context) (func(), error) {
	select {
	case f.sem <- struct{}{}:
		return func() { <-f.sem }, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, ctx.Err())
	default:
		return nil, fmt.Errorf("%w: %d calls in flight", ErrUnavailable, cap(f.sem))
	}
}

// tokenContext bounds one token-endpoint call and hands oauth2 our client.
func (f *Flow) tokenContext(ctx context.Context) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithTimeout(ctx, f.o.TokenTimeout)
	return context.WithValue(ctx, oauth2.HTTPClient, f.client), cancel
}
