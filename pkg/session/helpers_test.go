package session

import (
	"crypto/rand"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

const appHost = "app.example.com"

// clock is a settable time for the flow (the verifiers keep the real clock: the dev issuer mints with it).
type clock struct {
	mu  sync.Mutex
	off time.Duration
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.off)
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.off += d
}

type fixture struct {
	iss   *devissuer.Issuer
	flow  *Flow
	clock *clock
	opts  Options
}

func testKey(tb testing.TB) []byte {
	tb.Helper()
	k := make([]byte, KeySize)
	rand.Read(k)
	return k
}

func ring(tb testing.TB, keys ...[]byte) *KeyRing {
	tb.Helper()
	r, err := NewKeyRing(keys...)
	if err != nil {
		tb.Fatal(err)
	}
	return r
}

// verifiers are real token verifiers over the dev issuer's real JWKS: one for access tokens, one for ID
// tokens that keeps the nonce and the custom claim the headers use.
func verifiers(tb testing.TB, iss *devissuer.Issuer) (access, id *token.Verifier) {
	tb.Helper()
	set, err := jwks.New(jwks.Options{URL: iss.JWKSURL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		tb.Fatal(err)
	}
	if err := set.Refresh(tb.Context()); err != nil {
		tb.Fatal(err)
	}
	pool := func(use string) []token.Pool {
		return []token.Pool{{Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID}, TokenUse: use, Keys: set}}
	}
	access, err = token.NewVerifier(pool("access"))
	if err != nil {
		tb.Fatal(err)
	}
	id, err = token.NewVerifier(pool("id"), token.WithClaims("nonce", "custom:tenant"))
	if err != nil {
		tb.Fatal(err)
	}
	return access, id
}

func newFixture(tb testing.TB, mod ...func(*Options)) *fixture {
	tb.Helper()
	iss := testkit.Start(tb)
	access, id := verifiers(tb, iss)
	c := &clock{}
	o := Options{
		Domain: iss.DomainURL(), ClientID: iss.ClientID, Pool: "main", AllowedHosts: []string{appHost},
		LogoutRedirect: "https://" + appHost + "/", Keys: ring(tb, testKey(tb)),
		AccessVerifier: access, IDVerifier: id, Now: c.now,
	}
	for _, m := range mod {
		m(&o)
	}
	f, err := New(o)
	if err != nil {
		tb.Fatal(err)
	}
	return &fixture{iss: iss, flow: f, clock: c, opts: o}
}

// browser keeps cookies the way a browser does (by name; Max-Age<=0 deletes) and sends them back.
type browser struct {
	cookies map[string]string
	order   []string
}

func newBrowser() *browser { return &browser{cookies: map[string]string{}} }

func (b *browser) apply(tb testing.TB, resp Response) {
	tb.Helper()
	for _, line := range resp.SetCookies() {
		c, err := http.ParseSetCookie(line)
		if err != nil {
			tb.Fatalf("bad Set-Cookie %q: %v", line, err)
		}
		if c.MaxAge < 0 {
			delete(b.cookies, c.Name)
			continue
		}
		if _, ok := b.cookies[c.Name]; !ok {
			b.order = append(b.order, c.Name)
		}
		b.cookies[c.Name] = c.Value
	}
}

func (b *browser) header() string {
	var parts []string
	for _, n := range b.order {
		if v, ok := b.cookies[n]; ok {
			parts = append(parts, n+"="+v)
		}
	}
	return strings.Join(parts, "; ")
}

// nav is a top-level browser navigation to path on the app.
func (b *browser) nav(path string) Request {
	return Request{Method: http.MethodGet, Host: appHost, Path: path, Headers: token.HeaderMap{
		"sec-fetch-mode": "navigate", "accept": "text/html", "cookie": b.header()}}
}

func location(tb testing.TB, resp Response) string {
	tb.Helper()
	for _, h := range resp.Headers {
		if h.Name == "Location" {
			return h.Value
		}
	}
	tb.Fatalf("no Location in response %d %v (err %v)", resp.Status, resp.Headers, resp.Err)
	return ""
}

// signIn drives the dev issuer's real login form: GET the authorize URL, POST the form with a user, and
// return the callback path (with code and state) the Hosted UI redirects to.
func signIn(tb testing.TB, authorize string, form url.Values) string {
	tb.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := noFollow.Get(authorize)
	if err != nil {
		tb.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), `name="username"`) {
		tb.Fatalf("authorize: %d %s", resp.StatusCode, page)
	}
	u, _ := url.Parse(authorize)
	post := u.Query()
	for k, v := range form {
		post[k] = v
	}
	u.RawQuery = ""
	resp, err = noFollow.PostForm(u.String(), post)
	if err != nil {
		tb.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound {
		tb.Fatalf("login form: %d", resp.StatusCode)
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil {
		tb.Fatal(err)
	}
	return cb.RequestURI()
}

func user(name string, groups ...string) url.Values {
	return url.Values{"username": {name}, "password": {"pw"}, "groups": {strings.Join(groups, ",")}}
}

// signedIn runs the whole flow for a browser and returns the callback's response.
func (fx *fixture) signedIn(tb testing.TB, b *browser, rd string, form url.Values) Response {
	tb.Helper()
	resp, ok := fx.flow.Serve(tb.Context(), b.nav(fx.flow.o.LoginPath+"?rd="+url.QueryEscape(rd)))
	if !ok || resp.Status != http.StatusFound {
		tb.Fatalf("login: ok=%v %d %v", ok, resp.Status, resp.Err)
	}
	b.apply(tb, resp)
	cb := signIn(tb, location(tb, resp), form)
	resp, ok = fx.flow.Serve(tb.Context(), b.nav(cb))
	if !ok {
		tb.Fatal("callback not served")
	}
	b.apply(tb, resp)
	return resp
}
