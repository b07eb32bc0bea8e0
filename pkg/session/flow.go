package session

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"maps"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
)

// stateSize is the random bytes of a state and a nonce.
const stateSize = 32

// transaction is one sign-in attempt, kept in its own encrypted cookie (named after its state, so two tabs
// can sign in at once) until the callback.
type transaction struct {
	expires     time.Time
	state       string
	nonce       string
	verifier    string // PKCE code_verifier; the authorize request carries its S256 challenge
	returnTo    string // already validated by SafeReturn
	redirectURI string // the exact redirect_uri sent, which the code exchange must repeat
}

func (t *transaction) encode() []byte {
	b := []byte{codecVersion}
	b = binary.AppendUvarint(b, uint64(t.expires.Unix()))
	for _, s := range []string{t.state, t.nonce, t.verifier, t.returnTo, t.redirectURI} {
		b = appendString(b, s)
	}
	return b
}

func decodeTransaction(b []byte) (*transaction, error) {
	if len(b) == 0 || b[0] != codecVersion {
		return nil, errCodec
	}
	d := &decoder{b: b[1:]}
	t := &transaction{expires: d.time(), state: d.string(), nonce: d.string(), verifier: d.string(),
		returnTo: d.string(), redirectURI: d.string()}
	if d.err != nil || len(d.b) != 0 {
		return nil, errCodec
	}
	return t, nil
}

// txName is the transaction cookie of a state: a hash, so the name reveals nothing of the state.
func (f *Flow) txName(state string) string {
	h := sha256.Sum256([]byte(state))
	return f.cookies.tx + base64.RawURLEncoding.EncodeToString(h[:12])
}

// txSameSite is the transaction cookie's SameSite: Lax unless the session's is None, because the
// callback arrives as a cross-site top-level navigation.
func (f *Flow) txSameSite() http.SameSite {
	if f.cookies.sameSite == http.SameSiteNoneMode {
		return http.SameSiteNoneMode
	}
	return http.SameSiteLaxMode
}

func random() string {
	b := make([]byte, stateSize)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// login starts a sign-in attempt: a fresh state, nonce and PKCE verifier in a transaction cookie, and a
// 302 to /oauth2/authorize. rd is validated here; the redirect_uri is built only from an allowed Host.
func (f *Flow) login(r Request, rd string) Response {
	redirectURI, err := f.redirectURI(r.Host)
	if err != nil {
		return f.errorPage(r, http.StatusBadRequest, "This host is not set up for sign-in.", "/", err)
	}
	now := f.now()
	t := &transaction{expires: now.Add(f.o.TransactionTTL), state: random(), nonce: random(),
		verifier: oauth2.GenerateVerifier(), returnTo: SafeReturn(rd, f.hosts, f.o.InsecureHTTP),
		redirectURI: redirectURI}
	name := f.txName(t.state)
	value := base64.RawURLEncoding.EncodeToString(f.o.Keys.seal(t.encode(), name))
	headers := []Header{
		{"Location", f.oauth.AuthCodeURL(t.state, oauth2.S256ChallengeOption(t.verifier),
			oauth2.SetAuthURLParam("nonce", t.nonce), oauth2.SetAuthURLParam("redirect_uri", redirectURI))},
		{"Cache-Control", "no-store"},
		{"Set-Cookie", f.cookies.line(name, value, f.o.TransactionTTL, f.txSameSite())},
	}
	for _, old := range f.staleTransactions(r, now) {
		headers = append(headers, Header{"Set-Cookie", f.cookies.line(old, "", 0, f.txSameSite())})
	}
	return Response{Status: http.StatusFound, Headers: headers}
}

// staleTransactions names the transaction cookies to expire when a new attempt starts: those that no
// longer open or have expired, and beyond maxTransactions-1 the ones expiring first, so endless login
// clicks cannot grow the cookie header.
func (f *Flow) staleTransactions(r Request, now time.Time) []string {
	type live struct {
		name    string
		expires time.Time
	}
	var stale []string
	var alive []live
	for name, vals := range r.cookieJar(f.cookies.tx) {
		t := f.openTransaction(name, vals, now)
		if t == nil {
			stale = append(stale, name)
			continue
		}
		alive = append(alive, live{name, t.expires})
	}
	slices.SortFunc(alive, func(a, b live) int { return a.expires.Compare(b.expires) })
	for len(alive) > maxTransactions-1 {
		stale, alive = append(stale, alive[0].name), alive[1:]
	}
	slices.Sort(stale)
	return stale
}

// openTransaction opens the transaction cookie name; nil when it does not open, parse, or has expired.
func (f *Flow) openTransaction(name string, vals []string, now time.Time) *transaction {
	for _, v := range vals {
		sealed, err := base64.RawURLEncoding.Strict().DecodeString(v)
		if err != nil {
			continue
		}
		pt, ok := f.o.Keys.open(sealed, name)
		if !ok {
			continue
		}
		t, err := decodeTransaction(pt)
		if err != nil || !now.Before(t.expires) {
			continue
		}
		return t
	}
	return nil
}

// callback finishes a sign-in: the transaction by its state (compared in constant time), the code
// exchanged with the PKCE verifier, the ID token (nonce, aud) and access token verified, the session
// written, the transaction cookie deleted, and a 302 to the return URL. Every failure is a page with a
// link to sign in again, never an automatic redirect.
func (f *Flow) callback(ctx context.Context, r Request) Response {
	if r.Method != http.MethodGet {
		// Only the Hosted UI's redirect, a GET, may spend a code.
		return Response{Status: http.StatusMethodNotAllowed, Err: ErrMethod, Headers: []Header{
			{"Allow", "GET"}, {"Cache-Control", "no-store"}}}
	}
	_, rawQuery := r.splitPath()
	q, err := url.ParseQuery(rawQuery)
	if err != nil || len(rawQuery) > 8<<10 {
		return f.errorPage(r, http.StatusBadRequest, "The sign-in response was malformed.", "/", fmt.Errorf("%w: bad query", ErrTransaction))
	}
	state := q.Get("state")
	if state == "" || len(state) > 128 {
		return f.errorPage(r, http.StatusBadRequest, "The sign-in attempt is unknown or has expired.", "/", fmt.Errorf("%w: no state", ErrTransaction))
	}
	now := f.now()
	name := f.txName(state)
	t := f.openTransaction(name, r.cookieJar(name)[name], now)
	if t == nil {
		return f.errorPage(r, http.StatusBadRequest, "The sign-in attempt is unknown or has expired.", "/", ErrTransaction)
	}
	// Whatever happens next, this attempt is over.
	clear := Header{"Set-Cookie", f.cookies.line(name, "", 0, f.txSameSite())}
	page := func(status int, msg string, err error) Response {
		resp := f.errorPage(r, status, msg, t.returnTo, err)
		resp.Headers = append(resp.Headers, clear)
		return resp
	}
	// The name is derived from the state, so a match is implied; the constant-time compare keeps it so
	// should the naming ever change.
	if subtle.ConstantTimeCompare([]byte(state), []byte(t.state)) != 1 {
		return page(http.StatusBadRequest, "The sign-in attempt is unknown or has expired.", ErrState)
	}
	if e := q.Get("error"); e != "" {
		return page(http.StatusUnauthorized, "Sign-in was refused: "+truncate(e, 64)+".",
			fmt.Errorf("%w: %.64q", ErrProvider, e))
	}
	code := q.Get("code")
	if code == "" || len(code) > 1024 {
		return page(http.StatusBadRequest, "The sign-in response had no code.", fmt.Errorf("%w: no code", ErrExchange))
	}
	s, err := f.exchange(ctx, t, code)
	if err != nil {
		status := http.StatusUnauthorized
		if errors.Is(err, ErrUnavailable) {
			status = http.StatusBadGateway
		}
		return page(status, "Sign-in could not be completed.", err)
	}
	s.Issued, s.Expires = now, now.Add(f.o.MaxAge)
	lines, ok := f.cookies.writeSession(f.o.Keys, s, now, r.cookieJar(f.cookies.base))
	if !ok {
		return page(http.StatusInternalServerError, "The session is too large for browser cookies.", ErrTooLarge)
	}
	headers := []Header{{"Location", t.returnTo}, {"Cache-Control", "no-store"}, clear}
	for _, l := range lines {
		headers = append(headers, Header{"Set-Cookie", l})
	}
	return Response{Status: http.StatusFound, Headers: headers}
}

// exchange trades the code for tokens and verifies them into a session (times other than the access
// token's exp left for the caller).
func (f *Flow) exchange(ctx context.Context, t *transaction, code string) (*Session, error) {
	release, err := f.acquire(ctx)
	if err != nil {
		return nil, err
	}
	defer release()
	tctx, cancel := f.tokenContext(ctx)
	defer cancel()
	tok, err := f.oauth.Exchange(tctx, code, oauth2.VerifierOption(t.verifier),
		oauth2.SetAuthURLParam("redirect_uri", t.redirectURI))
	if err != nil {
		var re *oauth2.RetrieveError
		if errors.As(err, &re) && re.Response != nil && re.Response.StatusCode < 500 {
			return nil, fmt.Errorf("%w: %d %.40q", ErrExchange, re.Response.StatusCode, re.ErrorCode)
		}
		return nil, fmt.Errorf("%w: %w", ErrUnavailable, tokenError(err))
	}
	return f.verify(ctx, tok, t.nonce)
}

// verify checks a token response: the ID token (for this client, with the nonce when one is expected)
// and the access token (for this client, same subject and pool). nonce is empty on refresh, where Cognito
// sends none.
func (f *Flow) verify(ctx context.Context, tok *oauth2.Token, nonce string) (*Session, error) {
	rawID, _ := tok.Extra("id_token").(string)
	if rawID == "" {
		return nil, fmt.Errorf("%w: no id_token (is openid among the scopes?)", ErrVerify)
	}
	id, err := f.o.IDVerifier.Verify(ctx, rawID)
	if err != nil {
		return nil, fmt.Errorf("%w: id token: %w", ErrVerify, err)
	}
	if id.TokenUse != "id" || id.ClientID != f.o.ClientID {
		return nil, fmt.Errorf("%w: id token is not for client %s", ErrVerify, f.o.ClientID)
	}
	if nonce != "" {
		got := id.Claims["nonce"]
		if len(got) != 1 || subtle.ConstantTimeCompare([]byte(got[0]), []byte(nonce)) != 1 {
			return nil, fmt.Errorf("%w: nonce mismatch", ErrVerify)
		}
	}
	acc, err := f.o.AccessVerifier.Verify(ctx, tok.AccessToken)
	if err != nil {
		return nil, fmt.Errorf("%w: access token: %w", ErrVerify, err)
	}
	switch {
	case acc.TokenUse != "access" || acc.ClientID != f.o.ClientID:
		return nil, fmt.Errorf("%w: access token is not for client %s", ErrVerify, f.o.ClientID)
	case acc.Subject != id.Subject || acc.Pool != id.Pool:
		return nil, fmt.Errorf("%w: access and id tokens name different users", ErrVerify)
	case f.o.Pool != "" && acc.Pool != f.o.Pool:
		return nil, fmt.Errorf("%w: tokens of pool %s, want %s", ErrVerify, acc.Pool, f.o.Pool)
	}
	claims := map[string][]string{}
	for k, v := range id.Claims {
		if k != "nonce" {
			claims[k] = v
		}
	}
	if len(claims) == 0 {
		claims = nil
	}
	exp := acc.Expires
	if !tok.Expiry.IsZero() && tok.Expiry.Before(exp) {
		exp = tok.Expiry
	}
	return &Session{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, Email: id.Email,
		Claims: claims, AccessExpires: exp.Truncate(time.Second)}, nil
}

// logout clears every cookie of ours, revokes the refresh token (best effort, bounded), and sends the
// browser to Cognito's /logout so the Hosted UI's own session ends too. POST with a same-origin Origin
// by default; GET only when configured.
func (f *Flow) logout(ctx context.Context, r Request) Response {
	switch {
	case r.Method == http.MethodPost:
		if !f.sameOrigin(r) {
			return f.errorPage(r, http.StatusForbidden, "Sign-out must come from this site.", "/", ErrOrigin)
		}
	case r.Method == http.MethodGet && f.o.LogoutGET:
		if site := r.Headers.Get("sec-fetch-site"); site == "cross-site" {
			return f.errorPage(r, http.StatusForbidden, "Sign-out must come from this site.", "/", ErrOrigin)
		}
	default:
		return Response{Status: http.StatusMethodNotAllowed, Err: ErrMethod, Headers: []Header{
			{"Allow", "POST"}, {"Cache-Control", "no-store"}}}
	}
	if s := f.Load(r); s != nil && s.RefreshToken != "" {
		if err := f.revoke(ctx, s.RefreshToken); err != nil {
			f.log.WarnContext(ctx, "session: revoke failed", "err", err)
		}
	}
	target := f.o.LogoutRedirect
	if target == "" {
		target = "/"
	}
	if f.o.Endpoints.Logout != "" && f.o.LogoutRedirect != "" {
		target = f.o.Endpoints.Logout + "?" + url.Values{"client_id": {f.o.ClientID}, "logout_uri": {f.o.LogoutRedirect}}.Encode()
	}
	headers := []Header{{"Location", target}, {"Cache-Control", "no-store"}}
	for _, l := range f.ClearCookies(r) {
		headers = append(headers, Header{"Set-Cookie", l})
	}
	txs := r.cookieJar(f.cookies.tx)
	for _, name := range slices.Sorted(maps.Keys(txs)) {
		headers = append(headers, Header{"Set-Cookie", f.cookies.line(name, "", 0, f.txSameSite())})
	}
	return Response{Status: http.StatusFound, Headers: headers}
}

// sameOrigin reports whether a POST's Origin is this request's own origin on an allowed host.
func (f *Flow) sameOrigin(r Request) bool {
	origin := r.Headers.Get("origin")
	if origin == "" {
		// Browsers send Origin on every POST; without it only a same-origin fetch metadata passes.
		return r.Headers.Get("sec-fetch-site") == "same-origin"
	}
	host, ok := f.hosts.Canonical(r.Host)
	return ok && strings.EqualFold(origin, f.scheme+"://"+host)
}

// revoke revokes a refresh token at /oauth2/revoke (RFC 7009), bounded like every token-endpoint call.
func (f *Flow) revoke(ctx context.Context, refresh string) error {
	release, err := f.acquire(ctx)
	if err != nil {
		return err
	}
	defer release()
	tctx, cancel := context.WithTimeout(ctx, f.o.TokenTimeout)
	defer cancel()
	form := url.Values{"token": {refresh}}
	if f.o.ClientSecret == "" {
		form.Set("client_id", f.o.ClientID)
	}
	req, err := http.NewRequestWithContext(tctx, http.MethodPost, f.o.Endpoints.Revoke, strings.NewReader(form.Encode()))
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if f.o.ClientSecret != "" {
		req.SetBasicAuth(url.QueryEscape(f.o.ClientID), url.QueryEscape(f.o.ClientSecret))
	}
	resp, err := f.client.Do(req)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrUnavailable, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%w: revoke answered %d", ErrUnavailable, resp.StatusCode)
	}
	return nil
}

var errorTemplate = template.Must(template.New("error").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><meta name="robots" content="noindex"><title>Sign-in problem</title></head>
<body><h1>Sign-in problem</h1><p>{{.Message}}</p><p><a href="{{.Again}}">Sign in again</a></p></body></html>
`))

// errorPage is a small HTML page with a "sign in again" link (a click, never an automatic redirect, so
// nothing loops), or the same as 401/4xx JSON for a program.
func (f *Flow) errorPage(r Request, status int, msg, returnTo string, err error) Response {
	again := f.o.LoginPath + "?rd=" + url.QueryEscape(SafeReturn(returnTo, f.hosts, f.o.InsecureHTTP))
	if !IsNavigation(r.Method, r.Headers) {
		body, _ := json.Marshal(map[string]string{"error": "login_failed", "error_description": msg, "login": again})
		return Response{Status: status, Body: string(body), Err: err, Headers: []Header{
			{"Content-Type", "application/json"}, {"Cache-Control", "no-store"}}}
	}
	var sb strings.Builder
	errorTemplate.Execute(&sb, struct{ Message, Again string }{msg, again})
	return Response{Status: status, Body: sb.String(), Err: err, Headers: []Header{
		{"Content-Type", "text/html; charset=utf-8"}, {"Cache-Control", "no-store"},
		{"Content-Security-Policy", "default-src 'none'"}, {"X-Content-Type-Options", "nosniff"}}}
}

// tokenError keeps a token-endpoint error fit for logs: for an error answer its status and OAuth error
// code only, never the body (a misbehaving endpoint could echo the code or refresh token sent to it).
func tokenError(err error) error {
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && re.Response != nil {
		return fmt.Errorf("token endpoint answered %d %.40q", re.Response.StatusCode, re.ErrorCode)
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

func jsonString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}
