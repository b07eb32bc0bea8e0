package authz_test

import (
	"crypto/rand"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/session"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

const app = "app.example.com"

// browserFixture is an Authorizer with browser sign-in over a real dev issuer (its real Hosted UI, token
// endpoint and JWKS), with rules of every action that reads a credential.
type browserFixture struct {
	iss  *devissuer.Issuer
	a    *authz.Authorizer
	hits atomic.Int64
}

func newBrowserFixture(t testing.TB, forward bool, mod ...func(*session.Options)) *browserFixture {
	t.Helper()
	return newBrowserFixtureDry(t, forward, false, mod...)
}

func newBrowserFixtureDry(t testing.TB, forward, dryRun bool, mod ...func(*session.Options)) *browserFixture {
	t.Helper()
	fx := &browserFixture{iss: testkit.Start(t)}
	set := testkit.LoadedSet(t, fx.iss)
	pool := token.Pool{Name: "main", Issuers: []string{fx.iss.URL}, ClientIDs: []string{fx.iss.ClientID}, TokenUse: "any", Keys: set}
	v, err := token.NewVerifier([]token.Pool{pool}, token.WithClaims("custom:tenant"))
	if err != nil {
		t.Fatal(err)
	}
	idPool := pool
	idPool.TokenUse = "id"
	idv, err := token.NewVerifier([]token.Pool{idPool}, token.WithClaims("nonce", "custom:tenant"))
	if err != nil {
		t.Fatal(err)
	}
	k := make([]byte, session.KeySize)
	rand.Read(k)
	keys, err := session.NewKeyRing(k)
	if err != nil {
		t.Fatal(err)
	}
	so := session.Options{Domain: fx.iss.DomainURL(), ClientID: fx.iss.ClientID, Pool: "main", AllowedHosts: []string{app},
		LogoutRedirect: "https://" + app + "/", Keys: keys, AccessVerifier: v, IDVerifier: idv}
	for _, m := range mod {
		m(&so)
	}
	flow, err := session.New(so)
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New([]policy.Rule{
		{Name: "web", Match: policy.Match{PathPrefix: "/app"}, Action: policy.Login},
		{Name: "admin", Match: policy.Match{PathPrefix: "/admin"}, Action: policy.Login, Require: policy.Require{GroupsAny: []string{"admins"}}},
		{Name: "api", Match: policy.Match{PathPrefix: "/api"}, Action: policy.Authenticated},
		{Name: "feed", Match: policy.Match{PathPrefix: "/feed"}, Action: policy.Optional},
		{Name: "public", Match: policy.Match{PathPrefix: "/pub"}, Action: policy.Allow},
	}, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	fx.a, err = authz.New(authz.Options{Verifier: v, Policy: p, Headers: headers, ForwardToken: forward, Session: flow, DryRun: dryRun,
		Cache: authz.CacheOptions{MaxEntries: 1000, MaxBytes: 1 << 20, OnHit: func() { fx.hits.Add(1) }}})
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// jar keeps cookies as a browser does (by name; Max-Age<=0 deletes them) and sends them back.
type jar struct{ m map[string]string }

func newJar() *jar { return &jar{m: map[string]string{"theme": "dark"}} }

func (j *jar) apply(t testing.TB, lines []string) {
	t.Helper()
	for _, l := range lines {
		c, err := http.ParseSetCookie(l)
		if err != nil {
			t.Fatalf("Set-Cookie %q: %v", l, err)
		}
		if c.MaxAge < 0 {
			delete(j.m, c.Name)
		} else {
			j.m[c.Name] = c.Value
		}
	}
}

func (j *jar) header() string {
	var parts []string
	for _, n := range slices.Sorted(func(yield func(string) bool) {
		for n := range j.m {
			if !yield(n) {
				return
			}
		}
	}) {
		parts = append(parts, n+"="+j.m[n])
	}
	return strings.Join(parts, "; ")
}

func (j *jar) ours() []string {
	var out []string
	for n := range j.m {
		if strings.Contains(n, "cognito_authz") {
			out = append(out, n)
		}
	}
	return out
}

// nav is a top-level navigation; api is a fetch().
func (j *jar) nav(host, path string) *authz.Request {
	return &authz.Request{Method: "GET", Host: host, Path: path, Headers: token.HeaderMap{
		"sec-fetch-mode": "navigate", "accept": "text/html", "cookie": j.header()}}
}

func (j *jar) fetch(host, path string) *authz.Request {
	return &authz.Request{Method: "GET", Host: host, Path: path, Headers: token.HeaderMap{
		"sec-fetch-mode": "cors", "accept": "*/*", "cookie": j.header()}}
}

func header(hs []authz.Header, name string) (string, bool) {
	for _, h := range hs {
		if strings.EqualFold(h.Name, name) {
			return h.Value, true
		}
	}
	return "", false
}

func setCookies(d authz.Decision) []string {
	var out []string
	for _, h := range slices.Concat(d.Headers, d.ResponseHeaders) {
		if strings.EqualFold(h.Name, "set-cookie") {
			out = append(out, h.Value)
		}
	}
	return out
}

// loginForm drives the dev issuer's real login form and returns the callback path it redirects to.
func loginForm(t testing.TB, authorize string, username string, groups ...string) string {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authorize)
	if err != nil {
		t.Fatal(err)
	}
	io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	u, _ := url.Parse(authorize)
	form := u.Query()
	form.Set("username", username)
	form.Set("password", "pw")
	form.Set("groups", strings.Join(groups, ","))
	u.RawQuery = ""
	resp, err = noFollow.PostForm(u.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		t.Fatalf("login form: %d", resp.StatusCode)
	}
	cb, _ := url.Parse(resp.Header.Get("Location"))
	return cb.RequestURI()
}

// signIn navigates to path (a login route), signs in as username and follows the callback: it returns the
// callback's decision.
func (fx *browserFixture) signIn(t testing.TB, j *jar, path, username string, groups ...string) authz.Decision {
	t.Helper()
	d := fx.a.Check(t.Context(), j.nav(app, path))
	loc, _ := header(d.Headers, "Location")
	if d.Reason != authz.ReasonLoginRequired || d.HTTPStatus() != http.StatusFound || !strings.HasPrefix(loc, fx.iss.DomainURL()+"/oauth2/authorize?") {
		t.Fatalf("navigation without a session: %s %d %q (%v), want a 302 to the Hosted UI", d.Reason, d.HTTPStatus(), loc, d.Err)
	}
	j.apply(t, setCookies(d))
	cb := loginForm(t, loc, username, groups...)
	d = fx.a.Check(t.Context(), j.nav(app, cb))
	if d.Outcome != authz.Answered || d.Reason != authz.ReasonSignIn || d.HTTPStatus() != http.StatusFound {
		t.Fatalf("callback: %s %s %d (%v)", d.Outcome, d.Reason, d.HTTPStatus(), d.Err)
	}
	j.apply(t, setCookies(d))
	return d
}

// TestBrowserSignIn: a navigation to a login route signs in and comes back to the very URL (query kept);
// then the session is the credential: identity headers (e-mail from the ID token, which the access token
// lacks), our cookies stripped from the upstream's Cookie header while others stay, the access token
// forwarded as Bearer with forward_token, and the second Check served by the verified-token cache.
func TestBrowserSignIn(t *testing.T) {
	t.Parallel()
	for _, forward := range []bool{false, true} {
		t.Run(map[bool]string{false: "forward_token_false", true: "forward_token_true"}[forward], func(t *testing.T) {
			t.Parallel()
			fx := newBrowserFixture(t, forward)
			j := newJar()
			cb := fx.signIn(t, j, "/app/page?x=1&y=two", "carol", "users")
			if loc, _ := header(cb.Headers, "location"); loc != "/app/page?x=1&y=two" {
				t.Errorf("callback Location = %q, want the original URL", loc)
			}
			for i := range 2 {
				d := fx.a.Check(t.Context(), j.nav(app, "/app/page?x=1&y=two"))
				if !d.Allowed() || d.Reason != authz.ReasonOK {
					t.Fatalf("signed-in check %d: %s %s (%v)", i, d.Outcome, d.Reason, d.Err)
				}
				for name, want := range map[string]string{"x-auth-username": "carol", "x-auth-email": "carol@example.com", "x-auth-token-use": "access", "cookie": "theme=dark"} {
					if got, _ := header(d.Headers, name); got != want {
						t.Errorf("%s = %q, want %q", name, got, want)
					}
				}
				auth, ok := header(d.Headers, "authorization")
				if forward != ok || (ok && !strings.HasPrefix(auth, "Bearer ey")) {
					t.Errorf("authorization forwarded = %v (%.12q), want %v", ok, auth, forward)
				}
				if !forward && !slices.Contains(d.Remove, "authorization") {
					t.Errorf("forward_token false: authorization not removed: %v", d.Remove)
				}
				if d.Slot != nil {
					t.Error("an answer with the request's own Cookie header has a shared Slot")
				}
			}
			if fx.hits.Load() < 1 {
				t.Error("the session's access token never hit the verified-token cache")
			}
		})
	}
}

// TestSessionCredential: a session is a credential for login, authenticated and optional rules alike (and
// requirements apply to it); without one each rule keeps its own answer, and only a login rule sends a
// browser to sign in. The flow's paths are answered on allowed hosts whatever the rules say, and only there.
func TestSessionCredential(t *testing.T) {
	t.Parallel()
	fx := newBrowserFixture(t, false)
	in := newJar()
	fx.signIn(t, in, "/app", "dave", "users")
	out := newJar()
	tests := []struct {
		name       string
		req        *authz.Request
		wantReason authz.Reason
		wantStatus int
	}{
		{"login_signed_in", in.nav(app, "/app/x"), authz.ReasonOK, 0},
		{"authenticated_signed_in", in.fetch(app, "/api/x"), authz.ReasonOK, 0},
		{"optional_signed_in", in.fetch(app, "/feed"), authz.ReasonOK, 0},
		{"login_requirement_unmet", in.nav(app, "/admin"), authz.ReasonGroupRequired, 403},
		{"login_navigation_signed_out", out.nav(app, "/app/x"), authz.ReasonLoginRequired, 302},
		{"login_fetch_signed_out", out.fetch(app, "/app/x"), authz.ReasonLoginRequired, 401},
		{"authenticated_signed_out_navigation", out.nav(app, "/api/x"), authz.ReasonTokenMissing, 401},
		{"optional_signed_out", out.nav(app, "/feed"), authz.ReasonAnonymous, 0},
		{"public", out.nav(app, "/pub"), authz.ReasonAnonymous, 0},
		{"login_path_on_allowed_host", out.nav(app, "/_authz/login?rd=/app"), authz.ReasonSignIn, 302},
		// An unlisted host: the flow's paths are the rules' (default authenticated), never a redirect_uri.
		{"login_path_on_other_host", out.nav("evil.example.net", "/_authz/login?rd=/app"), authz.ReasonTokenMissing, 401},
		{"callback_on_other_host", out.nav("evil.example.net", "/_authz/callback?code=x&state=y"), authz.ReasonTokenMissing, 401},
		{"callback_unknown_state", out.nav(app, "/_authz/callback?code=x&state=y"), authz.ReasonLoginFailed, 400},
		{"logout_get_refused", in.nav(app, "/_authz/logout"), authz.ReasonLoginFailed, 405},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := fx.a.Check(t.Context(), tt.req)
			status := d.HTTPStatus()
			if d.Allowed() {
				status = 0
			}
			if d.Reason != tt.wantReason || status != tt.wantStatus {
				t.Fatalf("got %s %s %d (%v), want %s %d", d.Outcome, d.Reason, status, d.Err, tt.wantReason, tt.wantStatus)
			}
			if loc, ok := header(d.Headers, "Location"); ok && strings.Contains(loc, "evil") {
				t.Errorf("Location %q names the unlisted host", loc)
			}
		})
	}
}

// TestLoginRouteOnUnlistedHost: a login rule on a Host not in allowed_hosts never builds a redirect_uri
// for it: no redirect at all, 401 login_required.
func TestLoginRouteOnUnlistedHost(t *testing.T) {
	t.Parallel()
	fx := newBrowserFixture(t, false)
	d := fx.a.Check(t.Context(), newJar().nav("evil.example.net", "/app"))
	loc, hasLoc := header(d.Headers, "Location")
	if d.Allowed() || hasLoc || d.HTTPStatus() != http.StatusBadRequest || strings.Contains(d.Body, "evil") {
		t.Fatalf("got %s %s %d Location %q body %s, want a page without a redirect", d.Outcome, d.Reason, d.HTTPStatus(), loc, d.Body)
	}
}

// TestFetchGetsJSON: every request that is not a browser navigation gets 401 JSON naming the login URL
// (with the request as the return path), never a redirect to HTML.
func TestFetchGetsJSON(t *testing.T) {
	t.Parallel()
	fx := newBrowserFixture(t, false)
	tests := []struct {
		name    string
		method  string
		headers token.HeaderMap
	}{
		{"fetch", "GET", token.HeaderMap{"sec-fetch-mode": "cors", "accept": "application/json"}},
		{"xhr", "GET", token.HeaderMap{"x-requested-with": "XMLHttpRequest", "accept": "text/html"}},
		{"post_navigation", "POST", token.HeaderMap{"sec-fetch-mode": "navigate", "accept": "text/html"}},
		{"websocket", "GET", token.HeaderMap{"sec-fetch-mode": "websocket", "upgrade": "websocket", "accept": "text/html"}},
		{"preflight", "OPTIONS", token.HeaderMap{"access-control-request-method": "GET", "accept": "text/html"}},
		{"curl", "GET", token.HeaderMap{"accept": "*/*"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := fx.a.Check(t.Context(), &authz.Request{Method: tt.method, Host: app, Path: "/app/data?id=7", Headers: tt.headers})
			var body struct{ Error, Login string }
			if err := json.Unmarshal([]byte(d.Body), &body); err != nil || d.HTTPStatus() != 401 || body.Error != "login_required" {
				t.Fatalf("got %d %s (%v), want 401 login_required JSON", d.HTTPStatus(), d.Body, err)
			}
			if body.Login != "/_authz/login?rd=%2Fapp%2Fdata%3Fid%3D7" {
				t.Errorf("login = %q", body.Login)
			}
			if _, ok := header(d.Headers, "Location"); ok {
				t.Error("a 401 with a Location")
			}
		})
	}
}

// TestRefreshOnAllow: a session within refresh_before of expiry is refreshed inline: the allow carries the
// new session's Set-Cookie for the downstream response (not for the upstream), and with the new cookie no
// further refresh happens.
func TestRefreshOnAllow(t *testing.T) {
	t.Parallel()
	fx := newBrowserFixture(t, false, func(o *session.Options) { o.RefreshBefore = 10 * time.Minute })
	fx.iss.SetTokenTTL(5 * time.Minute) // every token is within refresh_before: due at once
	fx.iss.RotateRefreshTokens(true)
	j := newJar()
	fx.signIn(t, j, "/app", "erin")
	calls := fx.iss.TokenCalls()
	d := fx.a.Check(t.Context(), j.nav(app, "/app"))
	if !d.Allowed() || d.Reason != authz.ReasonOK {
		t.Fatalf("refresh allow: %s %s (%v)", d.Outcome, d.Reason, d.Err)
	}
	if fx.iss.TokenCalls() != calls+1 {
		t.Errorf("token calls = %d, want one refresh", fx.iss.TokenCalls()-calls)
	}
	if len(d.ResponseHeaders) == 0 || !strings.EqualFold(d.ResponseHeaders[0].Name, "set-cookie") {
		t.Fatalf("no Set-Cookie on the allow's response: %v", d.ResponseHeaders)
	}
	if _, ok := header(d.Headers, "set-cookie"); ok {
		t.Error("Set-Cookie among the upstream's headers")
	}
	if d.Slot != nil {
		t.Error("an allow with Set-Cookie has a shared Slot")
	}
	j.apply(t, setCookies(d))
	if d := fx.a.Check(t.Context(), j.nav(app, "/app")); !d.Allowed() {
		t.Fatalf("with the refreshed cookie: %s %s", d.Outcome, d.Reason)
	}
}

// TestRefreshFailures: invalid_grant (the refresh token revoked by a logout elsewhere) ends the session:
// cookies cleared, and a login route signs in again; the token endpoint down keeps the request allowed
// while the access token is valid, with no Set-Cookie and no redirect.
func TestRefreshFailures(t *testing.T) {
	t.Parallel()
	t.Run("invalid_grant", func(t *testing.T) {
		t.Parallel()
		fx := newBrowserFixture(t, false, func(o *session.Options) { o.RefreshBefore = 10 * time.Minute })
		fx.iss.SetTokenTTL(5 * time.Minute)
		j := newJar()
		fx.signIn(t, j, "/app", "frank")
		stolen := &jar{m: maps(j.m)}
		lo := stolen.nav(app, "/_authz/logout")
		lo.Method = "POST"
		lo.Headers.(token.HeaderMap)["origin"] = "https://" + app
		if d := fx.a.Check(t.Context(), lo); d.Reason != authz.ReasonSignOut || d.HTTPStatus() != 302 {
			t.Fatalf("logout: %s %d (%v)", d.Reason, d.HTTPStatus(), d.Err)
		}
		for _, tt := range []struct {
			name       string
			req        *authz.Request
			wantReason authz.Reason
			wantStatus int
		}{
			{"login_route", j.nav(app, "/app"), authz.ReasonLoginRequired, 302},
			{"api_route", j.fetch(app, "/api"), authz.ReasonTokenMissing, 401},
		} {
			d := fx.a.Check(t.Context(), tt.req)
			if d.Allowed() || d.Reason != tt.wantReason || d.HTTPStatus() != tt.wantStatus {
				t.Fatalf("%s: %s %s %d (%v)", tt.name, d.Outcome, d.Reason, d.HTTPStatus(), d.Err)
			}
			cleared := false
			for _, l := range setCookies(d) {
				if c, _ := http.ParseSetCookie(l); c != nil && c.Name == "__Host-cognito_authz" && c.MaxAge < 0 {
					cleared = true
				}
			}
			if !cleared {
				t.Errorf("%s: session not cleared: %v (%v)", tt.name, setCookies(d), d.Err)
			}
		}
	})
	t.Run("token_endpoint_down", func(t *testing.T) {
		t.Parallel()
		fx := newBrowserFixture(t, false, func(o *session.Options) { o.RefreshBefore = 10 * time.Minute })
		fx.iss.SetTokenTTL(5 * time.Minute)
		j := newJar()
		fx.signIn(t, j, "/app", "gina")
		fx.iss.FailTokenWith(http.StatusServiceUnavailable)
		d := fx.a.Check(t.Context(), j.nav(app, "/app"))
		if !d.Allowed() || len(setCookies(d)) != 0 {
			t.Fatalf("token endpoint down: %s %s, Set-Cookie %v; want an allow on the valid access token, no cookie", d.Outcome, d.Reason, setCookies(d))
		}
	})
}

// TestTamperedCookie: a session cookie that does not open is no session: a login route signs in again and
// the stale cookie is cleared; nothing of it reaches an upstream.
func TestTamperedCookie(t *testing.T) {
	t.Parallel()
	fx := newBrowserFixture(t, false)
	j := newJar()
	fx.signIn(t, j, "/app", "hank")
	v := []byte(j.m["__Host-cognito_authz"])
	v[len(v)/2] ^= 1
	j.m["__Host-cognito_authz"] = string(v)
	d := fx.a.Check(t.Context(), j.nav(app, "/app"))
	if d.Reason != authz.ReasonLoginRequired || d.HTTPStatus() != 302 {
		t.Fatalf("tampered: %s %d", d.Reason, d.HTTPStatus())
	}
	if !slices.ContainsFunc(setCookies(d), func(l string) bool { return strings.HasPrefix(l, "__Host-cognito_authz=;") }) {
		t.Errorf("tampered cookie not cleared: %v", setCookies(d))
	}
	d = fx.a.Check(t.Context(), j.nav(app, "/feed"))
	if d.Reason != authz.ReasonAnonymous {
		t.Fatalf("optional with a tampered cookie: %s", d.Reason)
	}
	if c, _ := header(d.Headers, "cookie"); strings.Contains(c, "cognito_authz") {
		t.Errorf("our cookie reached the upstream: %q", c)
	}
}

func maps(m map[string]string) map[string]string {
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}

// TestDryRunKeepsFlowAnswers: a global dry run turns a login rule's challenge into a marked allow (as any
// deny), but never the flow's own answers: a callback must still set the session and redirect, a logout
// still clear it.
func TestDryRunKeepsFlowAnswers(t *testing.T) {
	t.Parallel()
	fx := newBrowserFixtureDry(t, false, true)
	j := newJar()
	d := fx.a.Check(t.Context(), j.nav(app, "/app"))
	if !d.Allowed() || !d.DryRun || d.Reason != authz.ReasonLoginRequired {
		t.Fatalf("dry run of a challenge: %s %s dry=%v", d.Outcome, d.Reason, d.DryRun)
	}
	for _, path := range []string{"/_authz/login?rd=/app", "/_authz/callback?code=x&state=y"} {
		d := fx.a.Check(t.Context(), j.nav(app, path))
		if d.Allowed() || d.Outcome != authz.Answered {
			t.Errorf("%s in dry run: %s %s, want the flow's answer", path, d.Outcome, d.Reason)
		}
	}
}
