package session

import (
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/token"
	"golang.org/x/oauth2"
)

func TestSignInRoundTrip(t *testing.T) {
	fx := newFixture(t)
	b := newBrowser()
	resp := fx.signedIn(t, b, "/orders?id=7&x=a%2Fb#top", user("bob", "admins", "users"))
	if resp.Status != http.StatusFound || location(t, resp) != "/orders?id=7&x=a%2Fb#top" {
		t.Fatalf("callback = %d %q (err %v), want 302 to the original URL", resp.Status, location(t, resp), resp.Err)
	}
	for name := range b.cookies {
		if strings.Contains(name, ".tx.") {
			t.Errorf("transaction cookie %s survived the callback", name)
		}
	}
	s := fx.flow.Load(b.nav("/orders"))
	if s == nil {
		t.Fatal("no session after sign-in")
	}
	id, err := fx.opts.AccessVerifier.Verify(t.Context(), s.AccessToken)
	if err != nil {
		t.Fatalf("session access token: %v", err)
	}
	if id.Username != "bob" || strings.Join(id.Groups, ",") != "admins,users" {
		t.Errorf("identity = %s %v, want bob [admins users]", id.Username, id.Groups)
	}
	if s.Email != "bob@example.com" || s.Claims["custom:tenant"][0] != "acme" || s.Claims["nonce"] != nil {
		t.Errorf("ID claims = %q %v, want bob's e-mail and tenant, no nonce", s.Email, s.Claims)
	}
	if s.RefreshToken == "" || !s.Expires.After(fx.clock.now().Add(11*time.Hour)) {
		t.Errorf("refresh token %d bytes, expires %v", len(s.RefreshToken), s.Expires)
	}
	if again := fx.flow.Load(b.nav("/")); again != s {
		t.Error("a second Load of the same cookie did not come from the cache of opened sessions")
	}
	tampered := newBrowser()
	for n, v := range b.cookies {
		tampered.cookies[n], tampered.order = flip(v), append(tampered.order, n)
	}
	if fx.flow.Load(tampered.nav("/")) != nil {
		t.Error("a tampered copy of a cached session cookie loads")
	}
	fx.clock.advance(12*time.Hour + time.Second)
	if fx.flow.Load(b.nav("/")) != nil {
		t.Error("a session past session_max_age loads (from the cache)")
	}
	cookie := b.header()
	if got := fx.flow.StripCookies("theme=dark; " + cookie + "; lang=en"); got != "theme=dark; lang=en" {
		t.Errorf("StripCookies = %q, want the foreign cookies only", got)
	}
}

func TestLoginRedirect(t *testing.T) {
	fx := newFixture(t, func(o *Options) { o.ClientSecret = "s3cret" })
	fx.iss.SetClientSecret("s3cret")
	resp, _ := fx.flow.Serve(t.Context(), newBrowser().nav("/_authz/login?rd=/x"))
	loc, err := url.Parse(location(t, resp))
	if err != nil {
		t.Fatal(err)
	}
	q := loc.Query()
	want := map[string]string{"response_type": "code", "client_id": fx.iss.ClientID, "code_challenge_method": "S256",
		"redirect_uri": "https://" + appHost + "/_authz/callback", "scope": "openid email profile"}
	for k, v := range want {
		if q.Get(k) != v {
			t.Errorf("authorize %s = %q, want %q", k, q.Get(k), v)
		}
	}
	if len(q.Get("state")) < 43 || len(q.Get("nonce")) < 43 || q.Get("state") == q.Get("nonce") {
		t.Errorf("state %q / nonce %q: want two distinct 256-bit randoms", q.Get("state"), q.Get("nonce"))
	}
	// The challenge is S256 of the verifier kept in the transaction (PKCE even with a client secret).
	tx := openTx(t, fx, resp, q.Get("state"))
	sum := sha256.Sum256([]byte(tx.verifier))
	if q.Get("code_challenge") != base64.RawURLEncoding.EncodeToString(sum[:]) {
		t.Error("code_challenge is not S256(verifier)")
	}
	if got := header(resp, "Cache-Control"); got != "no-store" {
		t.Errorf("Cache-Control = %q", got)
	}
	set := resp.SetCookies()[0]
	for _, attr := range []string{"__Host-cognito_authz.tx.", "Path=/", "HttpOnly", "Secure", "SameSite=Lax", "Max-Age=600"} {
		if !strings.Contains(set, attr) {
			t.Errorf("transaction cookie %q lacks %s", set, attr)
		}
	}
	// And the confidential client signs in through HTTP Basic.
	b := newBrowser()
	if resp := fx.signedIn(t, b, "/", user("carol")); resp.Status != http.StatusFound {
		t.Fatalf("sign-in with a client secret: %d %v", resp.Status, resp.Err)
	}
}

func header(r Response, name string) string {
	for _, h := range r.Headers {
		if h.Name == name {
			return h.Value
		}
	}
	return ""
}

func openTx(t *testing.T, fx *fixture, resp Response, state string) *transaction {
	t.Helper()
	b := newBrowser()
	b.apply(t, resp)
	name := fx.flow.txName(state)
	tx := fx.flow.openTransaction(name, []string{b.cookies[name]}, fx.clock.now())
	if tx == nil {
		t.Fatal("transaction cookie does not open")
	}
	return tx
}

func TestTwoTabsSignInAtOnce(t *testing.T) {
	fx := newFixture(t)
	b := newBrowser()
	r1, _ := fx.flow.Serve(t.Context(), b.nav("/_authz/login?rd=/one"))
	b.apply(t, r1)
	r2, _ := fx.flow.Serve(t.Context(), b.nav("/_authz/login?rd=/two"))
	b.apply(t, r2)
	cb1 := signIn(t, location(t, r1), user("dave"))
	cb2 := signIn(t, location(t, r2), user("dave"))
	for _, c := range []struct{ cb, want string }{{cb2, "/two"}, {cb1, "/one"}} {
		resp, _ := fx.flow.Serve(t.Context(), b.nav(c.cb))
		if resp.Status != http.StatusFound || location(t, resp) != c.want {
			t.Fatalf("callback = %d %v, want 302 %s", resp.Status, resp.Err, c.want)
		}
		b.apply(t, resp)
	}
}

func TestCallbackFailures(t *testing.T) {
	tests := []struct {
		name    string
		mangle  func(t *testing.T, fx *fixture, b *browser, cb string) Request
		wantErr error
		status  int
	}{
		{name: "no_transaction_cookie", wantErr: ErrTransaction, status: 400, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			return newBrowser().nav(cb)
		}},
		{name: "state_of_another_attempt", wantErr: ErrTransaction, status: 400, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			return b.nav(replaceParam(cb, "state", random()))
		}},
		{name: "expired_transaction", wantErr: ErrTransaction, status: 400, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			fx.clock.advance(11 * time.Minute)
			return b.nav(cb)
		}},
		{name: "tampered_transaction_cookie", wantErr: ErrTransaction, status: 400, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			for n, v := range b.cookies {
				if strings.Contains(n, ".tx.") {
					b.cookies[n] = flip(v)
				}
			}
			return b.nav(cb)
		}},
		{name: "provider_error", wantErr: ErrProvider, status: 401, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			u, _ := url.Parse(cb)
			return b.nav(u.Path + "?error=access_denied&error_description=%3Cscript%3E&state=" + u.Query().Get("state"))
		}},
		{name: "code_used_twice", wantErr: ErrExchange, status: 401, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			// The first callback consumes the code (and the transaction); a replay with a fresh
			// transaction of the same state cannot happen, so replay the code under a new attempt.
			b2 := newBrowser()
			r, _ := fx.flow.Serve(t.Context(), b2.nav("/_authz/login"))
			b2.apply(t, r)
			if resp, _ := fx.flow.Serve(t.Context(), b.nav(cb)); resp.Status != http.StatusFound {
				t.Fatalf("first use: %d %v", resp.Status, resp.Err)
			}
			state := mustQuery(t, location(t, r)).Get("state")
			return b2.nav(replaceParam(cb, "state", state))
		}},
		{name: "wrong_pkce_verifier", wantErr: ErrExchange, status: 401, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			return resealTx(t, fx, b, cb, func(tx *transaction) { tx.verifier = strings.Repeat("a", 43) })
		}},
		{name: "nonce_mismatch", wantErr: ErrVerify, status: 401, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			return resealTx(t, fx, b, cb, func(tx *transaction) { tx.nonce = random() })
		}},
		{name: "token_endpoint_down", wantErr: ErrUnavailable, status: 502, mangle: func(t *testing.T, fx *fixture, b *browser, cb string) Request {
			fx.iss.FailTokenWith(http.StatusServiceUnavailable)
			return b.nav(cb)
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t)
			b := newBrowser()
			r, _ := fx.flow.Serve(t.Context(), b.nav("/_authz/login?rd=/back"))
			b.apply(t, r)
			cb := signIn(t, location(t, r), user("erin"))
			req := tt.mangle(t, fx, b, cb)
			resp, _ := fx.flow.Serve(t.Context(), req)
			if !errors.Is(resp.Err, tt.wantErr) || resp.Status != tt.status {
				t.Fatalf("callback = %d %v, want %d %v", resp.Status, resp.Err, tt.status, tt.wantErr)
			}
			if header(resp, "Location") != "" {
				t.Error("a failed callback redirects: it could loop")
			}
			if !strings.Contains(resp.Body, `<a href="/_authz/login?rd=`) || strings.Contains(resp.Body, "<script>") {
				t.Errorf("error page lacks the sign-in-again link or is not escaped: %s", resp.Body)
			}
			b.apply(t, resp)
			if fx.flow.Load(b.nav("/")) != nil {
				t.Error("a failed callback left a session")
			}
			// A program gets JSON, not HTML.
			req.Headers = token.HeaderMap{"accept": "application/json", "cookie": req.Headers.Get("cookie")}
			if resp, _ := fx.flow.Serve(t.Context(), req); !strings.HasPrefix(resp.Body, "{") {
				t.Errorf("non-browser error body = %q, want JSON", resp.Body)
			}
		})
	}
}

func flip(v string) string {
	b := []byte(v)
	i := len(b) / 2
	if b[i] == 'A' {
		b[i] = 'B'
	} else {
		b[i] = 'A'
	}
	return string(b)
}

func mustQuery(t *testing.T, raw string) url.Values {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func replaceParam(cb, k, v string) string {
	u, _ := url.Parse(cb)
	q := u.Query()
	q.Set(k, v)
	u.RawQuery = q.Encode()
	return u.RequestURI()
}

// resealTx rewrites the browser's transaction for cb with the flow's own keys: what a bug that lost the
// verifier or nonce would look like.
func resealTx(t *testing.T, fx *fixture, b *browser, cb string, change func(*transaction)) Request {
	t.Helper()
	state := mustQuery(t, cb).Get("state")
	name := fx.flow.txName(state)
	tx := fx.flow.openTransaction(name, []string{b.cookies[name]}, fx.clock.now())
	if tx == nil {
		t.Fatal("no transaction")
	}
	change(tx)
	b.cookies[name] = base64.RawURLEncoding.EncodeToString(fx.flow.o.Keys.seal(tx.encode(), name))
	return b.nav(cb)
}

func TestChallenge(t *testing.T) {
	fx := newFixture(t)
	nav := fx.flow.Challenge(newBrowser().nav("/reports?q=1"))
	if nav.Status != http.StatusFound || !strings.HasPrefix(location(t, nav), fx.iss.DomainURL()+"/oauth2/authorize?") {
		t.Fatalf("navigation challenge = %d, want 302 to authorize", nav.Status)
	}
	if tx := openTx(t, fx, nav, mustQuery(t, location(t, nav)).Get("state")); tx.returnTo != "/reports?q=1" {
		t.Errorf("return URL = %q", tx.returnTo)
	}
	api := fx.flow.Challenge(Request{Method: "GET", Host: appHost, Path: "/api/x?y=1", Headers: token.HeaderMap{"accept": "*/*"}})
	if api.Status != 401 || api.Body != `{"error":"login_required","error_description":"sign in first","login":"/_authz/login?rd=%2Fapi%2Fx%3Fy%3D1"}` {
		t.Errorf("API challenge = %d %s", api.Status, api.Body)
	}
	if r := fx.flow.Challenge(Request{Method: "GET", Host: "evil.example", Path: "/", Headers: token.HeaderMap{"sec-fetch-mode": "navigate"}}); !errors.Is(r.Err, ErrHost) || header(r, "Location") != "" {
		t.Errorf("unlisted host: %d %v, want ErrHost and no redirect_uri built", r.Status, r.Err)
	}
}

func TestTransactionCookiesBounded(t *testing.T) {
	fx := newFixture(t)
	b := newBrowser()
	for range 10 {
		r, _ := fx.flow.Serve(t.Context(), b.nav("/_authz/login"))
		b.apply(t, r)
		fx.clock.advance(time.Second)
	}
	n := 0
	for name := range b.cookies {
		if strings.Contains(name, ".tx.") {
			n++
		}
	}
	if n != maxTransactions {
		t.Errorf("%d transaction cookies after 10 logins, want %d", n, maxTransactions)
	}
}

func TestRefresh(t *testing.T) {
	tests := []struct {
		name        string
		rotate      bool
		fail        int
		revoke      bool
		wantErr     error
		wantClears  bool
		wantRefresh string // "old" or "new"
	}{
		{name: "keeps_old_refresh_token", wantRefresh: "old"},
		{name: "rotated_refresh_token", rotate: true, wantRefresh: "new"},
		{name: "invalid_grant_ends_session", revoke: true, wantErr: ErrSessionEnded, wantClears: true},
		{name: "endpoint_down_keeps_session", fail: http.StatusInternalServerError, wantErr: ErrUnavailable},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t)
			fx.iss.SetTokenTTL(3 * time.Minute)
			b := newBrowser()
			fx.signedIn(t, b, "/", user("frank"))
			s := fx.flow.Load(b.nav("/"))
			if fx.flow.RefreshDue(s) {
				t.Fatal("refresh due right after sign-in")
			}
			fx.clock.advance(90 * time.Second)
			if !fx.flow.RefreshDue(s) {
				t.Fatal("refresh not due within refresh_before of exp")
			}
			fx.iss.RotateRefreshTokens(tt.rotate)
			fx.iss.FailTokenWith(tt.fail)
			if tt.revoke {
				if err := fx.flow.revoke(t.Context(), s.RefreshToken); err != nil {
					t.Fatal(err)
				}
			}
			ns, lines, err := fx.flow.Refresh(t.Context(), b.nav("/"), s)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("Refresh error = %v, want %v", err, tt.wantErr)
			}
			if tt.wantErr != nil {
				if tt.wantClears != (len(lines) > 0) {
					t.Errorf("Refresh Set-Cookie = %q, want clearing %v", lines, tt.wantClears)
				}
				if tt.fail != 0 {
					calls := fx.iss.TokenCalls()
					if _, _, err := fx.flow.Refresh(t.Context(), b.nav("/"), s); !errors.Is(err, ErrUnavailable) || fx.iss.TokenCalls() != calls {
						t.Errorf("second refresh while down: %v, %d more token calls; want the remembered failure", err, fx.iss.TokenCalls()-calls)
					}
				}
				return
			}
			if ns.AccessToken == s.AccessToken || !ns.Expires.Equal(s.Expires) || ns.Email != s.Email {
				t.Error("refresh: want a new access token, the same session expiry and ID claims")
			}
			if same := ns.RefreshToken == s.RefreshToken; same != (tt.wantRefresh == "old") {
				t.Errorf("refresh token kept = %v, want %s", same, tt.wantRefresh)
			}
			b.apply(t, Response{Headers: cookieHeaders(lines)})
			if got := fx.flow.Load(b.nav("/")); got == nil || got.AccessToken != ns.AccessToken {
				t.Error("the refreshed cookie does not load the new session")
			}
		})
	}
}

func cookieHeaders(lines []string) []Header {
	var h []Header
	for _, l := range lines {
		h = append(h, Header{"Set-Cookie", l})
	}
	return h
}

func TestRefreshSingleFlight(t *testing.T) {
	fx := newFixture(t)
	b := newBrowser()
	fx.signedIn(t, b, "/", user("gina"))
	s := fx.flow.Load(b.nav("/"))
	before := fx.iss.TokenCalls()
	var wg sync.WaitGroup
	tokens := make([]string, 20)
	errs := make([]error, 20)
	for i := range tokens {
		wg.Go(func() {
			ns, _, err := fx.flow.Refresh(t.Context(), b.nav("/"), s)
			errs[i] = err
			if err == nil {
				tokens[i] = ns.AccessToken
			}
		})
	}
	wg.Wait()
	if calls := fx.iss.TokenCalls() - before; calls != 1 {
		t.Errorf("%d token calls for 20 parallel refreshes of one session, want 1", calls)
	}
	for i := range tokens {
		if errs[i] != nil || tokens[i] != tokens[0] {
			t.Fatalf("refresh %d: %v, or a different token", i, errs[i])
		}
	}
}

func TestLogout(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		get     bool
		headers map[string]string
		wantErr error
	}{
		{name: "post_same_origin", method: "POST", headers: map[string]string{"origin": "https://" + appHost}},
		{name: "post_fetch_metadata", method: "POST", headers: map[string]string{"sec-fetch-site": "same-origin"}},
		{name: "post_cross_origin", method: "POST", headers: map[string]string{"origin": "https://evil.example"}, wantErr: ErrOrigin},
		{name: "post_lookalike_origin", method: "POST", headers: map[string]string{"origin": "https://" + appHost + ".evil.example"}, wantErr: ErrOrigin},
		{name: "post_no_origin", method: "POST", wantErr: ErrOrigin},
		{name: "get_refused_by_default", method: "GET", wantErr: ErrMethod},
		{name: "get_when_configured", method: "GET", get: true},
		{name: "get_cross_site", method: "GET", get: true, headers: map[string]string{"sec-fetch-site": "cross-site"}, wantErr: ErrOrigin},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t, func(o *Options) { o.LogoutGET = tt.get })
			b := newBrowser()
			fx.signedIn(t, b, "/", user("hank"))
			r, _ := fx.flow.Serve(t.Context(), b.nav("/_authz/login")) // a pending attempt too
			b.apply(t, r)
			h := token.HeaderMap{"cookie": b.header()}
			for k, v := range tt.headers {
				h[k] = v
			}
			resp, _ := fx.flow.Serve(t.Context(), Request{Method: tt.method, Host: appHost, Path: "/_authz/logout", Headers: h})
			if !errors.Is(resp.Err, tt.wantErr) {
				t.Fatalf("logout error = %v, want %v", resp.Err, tt.wantErr)
			}
			b.apply(t, resp)
			if tt.wantErr != nil {
				if fx.flow.Load(b.nav("/")) == nil {
					t.Error("a refused logout cleared the session")
				}
				return
			}
			want := fx.iss.DomainURL() + "/logout?" + url.Values{"client_id": {fx.iss.ClientID}, "logout_uri": {"https://" + appHost + "/"}}.Encode()
			if resp.Status != http.StatusFound || location(t, resp) != want {
				t.Errorf("logout = %d %q, want 302 %q", resp.Status, location(t, resp), want)
			}
			if len(b.cookies) != 0 {
				t.Errorf("cookies left after logout: %v", b.cookies)
			}
			if fx.iss.Revokes() != 1 {
				t.Errorf("%d refresh tokens revoked, want 1", fx.iss.Revokes())
			}
		})
	}
}

func TestNewReportsEveryProblem(t *testing.T) {
	_, err := New(Options{CallbackPath: "/x", LoginPath: "/x", Domain: "http://cognito.example"})
	if err == nil {
		t.Fatal("New accepted empty options")
	}
	for _, want := range []string{"client_id", "allowed_hosts", "session keys", "verifiers", "endpoint", "must differ"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("New error %q does not mention %s", err, want)
		}
	}
}

// cookieSizes signs in users with few and many groups and reports the cookie bytes a browser stores.
func TestCookieSizes(t *testing.T) {
	fx := newFixture(t)
	for _, tc := range []struct {
		name   string
		groups int
	}{{"typical", 2}, {"groups_50", 50}} {
		var groups []string
		for i := range tc.groups {
			groups = append(groups, fmt.Sprintf("team-%02d-engineering", i))
		}
		b := newBrowser()
		resp := fx.signedIn(t, b, "/", user("user.name@example.com", groups...))
		var total, chunks int
		for _, l := range resp.SetCookies() {
			c, _ := http.ParseSetCookie(l)
			if c.MaxAge > 0 {
				total += len(c.Name) + 1 + len(c.Value)
				chunks++
				if len(l) > cookieLimit {
					t.Errorf("Set-Cookie line of %d bytes exceeds %d", len(l), cookieLimit)
				}
			}
		}
		s := fx.flow.Load(b.nav("/"))
		if s == nil {
			t.Fatalf("%s: no session", tc.name)
		}
		t.Logf("%s: access %d B, refresh %d B; Cookie header %d B in %d cookie(s)", tc.name, len(s.AccessToken), len(s.RefreshToken), total, chunks)
	}
}

func TestCallbackOnlyGET(t *testing.T) {
	fx := newFixture(t)
	b := newBrowser()
	r, _ := fx.flow.Serve(t.Context(), b.nav("/_authz/login"))
	b.apply(t, r)
	cb := signIn(t, location(t, r), user("mo"))
	post := b.nav(cb)
	post.Method = http.MethodPost
	if resp, _ := fx.flow.Serve(t.Context(), post); resp.Status != http.StatusMethodNotAllowed || !errors.Is(resp.Err, ErrMethod) {
		t.Fatalf("POST callback = %d %v, want 405", resp.Status, resp.Err)
	}
	// The code was not spent: the GET still signs in.
	if resp, _ := fx.flow.Serve(t.Context(), b.nav(cb)); resp.Status != http.StatusFound || resp.Err != nil {
		t.Fatalf("GET callback after a refused POST = %d %v", resp.Status, resp.Err)
	}
}

// TestVerifyTokenResponse checks what the callback demands of real tokens signed by the dev issuer's key,
// beyond what the verifier itself checks.
func TestVerifyTokenResponse(t *testing.T) {
	fx := newFixture(t)
	iss := fx.iss
	// Verifiers that also accept a second app client of the pool: the flow must still insist on its own.
	wide := func(use string) *token.Verifier {
		v, err := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{iss.URL},
			ClientIDs: []string{iss.ClientID, "other-client"}, TokenUse: use, Keys: keysOf(t, iss)}}, token.WithClaims("nonce"))
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	fx.flow.o.AccessVerifier, fx.flow.o.IDVerifier = wide("access"), wide("id")
	mint := func(c map[string]any) string { return iss.MustMint(t, c) }
	idClaims := func(mod func(map[string]any)) string {
		c := iss.IDToken()
		c["nonce"] = "n1"
		if mod != nil {
			mod(c)
		}
		return mint(c)
	}
	accessClaims := func(mod func(map[string]any)) string {
		c := iss.Access()
		if mod != nil {
			mod(c)
		}
		return mint(c)
	}
	tests := []struct {
		name    string
		access  string
		id      string
		nonce   string
		wantErr error
	}{
		{name: "ok", access: accessClaims(nil), id: idClaims(nil), nonce: "n1"},
		{name: "no_id_token", access: accessClaims(nil), nonce: "n1", wantErr: ErrVerify},
		{name: "nonce_mismatch", access: accessClaims(nil), id: idClaims(nil), nonce: "n2", wantErr: ErrVerify},
		{name: "nonce_missing", access: accessClaims(nil), id: idClaims(func(c map[string]any) { delete(c, "nonce") }), nonce: "n1", wantErr: ErrVerify},
		{name: "id_aud_other_client", access: accessClaims(nil), id: idClaims(func(c map[string]any) { c["aud"] = "other-client" }), nonce: "n1", wantErr: ErrVerify},
		{name: "access_other_client", access: accessClaims(func(c map[string]any) { c["client_id"] = "other-client" }), id: idClaims(nil), nonce: "n1", wantErr: ErrVerify},
		{name: "subject_mismatch", access: accessClaims(func(c map[string]any) { c["sub"] = "someone-else" }), id: idClaims(nil), nonce: "n1", wantErr: ErrVerify},
		{name: "access_as_id_token", access: accessClaims(nil), id: accessClaims(nil), nonce: "n1", wantErr: ErrVerify},
		{name: "expired_access", access: accessClaims(func(c map[string]any) {
			c["exp"] = time.Now().Add(-time.Hour).Unix()
			c["iat"] = time.Now().Add(-2 * time.Hour).Unix()
		}), id: idClaims(nil), nonce: "n1", wantErr: ErrVerify},
		{name: "refresh_needs_no_nonce", access: accessClaims(nil), id: idClaims(func(c map[string]any) { delete(c, "nonce") })},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := (&oauth2.Token{AccessToken: tt.access, RefreshToken: "r"}).WithExtra(map[string]any{"id_token": tt.id})
			s, err := fx.flow.verify(t.Context(), tok, tt.nonce)
			if !errors.Is(err, tt.wantErr) {
				t.Fatalf("verify error = %v, want %v", err, tt.wantErr)
			}
			if err == nil && (s.Email != "alice@example.com" || s.AccessToken != tt.access) {
				t.Errorf("session = %+v", s)
			}
		})
	}
}

func keysOf(t *testing.T, iss *devissuer.Issuer) *jwks.Set {
	t.Helper()
	set, err := jwks.New(jwks.Options{URL: iss.JWKSURL(), Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	return set
}

func TestCredential(t *testing.T) {
	tests := []struct {
		name        string
		advance     time.Duration
		fail        int
		revoke      bool
		wantToken   string // "old", "new" or ""
		wantCookies bool
		wantEnded   bool
		wantErr     error
	}{
		{name: "fresh_session", wantToken: "old"},
		{name: "refresh_due", advance: 90 * time.Second, wantToken: "new", wantCookies: true},
		{name: "refresh_due_endpoint_down", advance: 90 * time.Second, fail: 503, wantToken: "old", wantErr: ErrUnavailable},
		{name: "refresh_due_revoked", advance: 90 * time.Second, revoke: true, wantCookies: true, wantEnded: true, wantErr: ErrSessionEnded},
		{name: "past_max_age", advance: 13 * time.Hour},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			fx := newFixture(t)
			fx.iss.SetTokenTTL(3 * time.Minute)
			b := newBrowser()
			fx.signedIn(t, b, "/", user("nia"))
			old := fx.flow.Load(b.nav("/"))
			if tt.revoke {
				if err := fx.flow.revoke(t.Context(), old.RefreshToken); err != nil {
					t.Fatal(err)
				}
			}
			fx.clock.advance(tt.advance)
			fx.iss.FailTokenWith(tt.fail)
			c := fx.flow.Credential(t.Context(), b.nav("/"))
			var got string
			switch c.AccessToken {
			case "":
			case old.AccessToken:
				got = "old"
			default:
				got = "new"
			}
			if got != tt.wantToken || (len(c.SetCookies) > 0) != tt.wantCookies || c.Ended != tt.wantEnded || !errors.Is(c.Err, tt.wantErr) {
				t.Fatalf("Credential = token %q, %d cookies, ended %v, err %v; want %q, cookies %v, ended %v, %v",
					got, len(c.SetCookies), c.Ended, c.Err, tt.wantToken, tt.wantCookies, tt.wantEnded, tt.wantErr)
			}
			if got == "new" {
				if _, err := fx.opts.AccessVerifier.Verify(t.Context(), c.AccessToken); err != nil {
					t.Errorf("refreshed access token: %v", err)
				}
			}
		})
	}
}
