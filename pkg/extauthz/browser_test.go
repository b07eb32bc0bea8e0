package extauthz_test

import (
	"crypto/rand"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	corev3 "github.com/envoyproxy/go-control-plane/envoy/config/core/v3"
	authv3 "github.com/envoyproxy/go-control-plane/envoy/service/auth/v3"
	"google.golang.org/grpc"
	"google.golang.org/protobuf/proto"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/extauthz"
	"github.com/cognito-authz/cognito-authz/pkg/policy"
	"github.com/cognito-authz/cognito-authz/pkg/session"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

const appHost = "app.example.com"

// browserService is a real Authorizer with browser sign-in over a real dev issuer, served over a real
// gRPC server with the service's codec, and over the HTTP protocol.
type browserService struct {
	iss  *devissuer.Issuer
	a    *authz.Authorizer
	conn *grpc.ClientConn
	http *httptest.Server
}

func newBrowserService(t *testing.T, refreshBefore time.Duration) *browserService {
	t.Helper()
	iss := testkit.Start(t)
	set := testkit.LoadedSet(t, iss)
	pool := token.Pool{Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID}, TokenUse: "any", Keys: set}
	v, err := token.NewVerifier([]token.Pool{pool})
	if err != nil {
		t.Fatal(err)
	}
	pool.TokenUse = "id"
	idv, err := token.NewVerifier([]token.Pool{pool}, token.WithClaims("nonce"))
	if err != nil {
		t.Fatal(err)
	}
	k := make([]byte, session.KeySize)
	rand.Read(k)
	keys, _ := session.NewKeyRing(k)
	flow, err := session.New(session.Options{Domain: iss.DomainURL(), ClientID: iss.ClientID, Pool: "main",
		AllowedHosts: []string{appHost}, LogoutRedirect: "https://" + appHost + "/", Keys: keys,
		AccessVerifier: v, IDVerifier: idv, RefreshBefore: refreshBefore})
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.New([]policy.Rule{{Name: "web", Match: policy.Match{PathPrefix: "/"}, Action: policy.Login}}, policy.Authenticated)
	if err != nil {
		t.Fatal(err)
	}
	a, err := authz.New(authz.Options{Verifier: v, Policy: p, Session: flow, Headers: authz.IdentityHeaders{Sub: "x-auth-sub", Username: "x-auth-username"},
		Cache: cacheOn})
	if err != nil {
		t.Fatal(err)
	}
	s := &browserService{iss: iss, a: a}
	s.conn = serveWith(t, extauthz.NewServer(a), true)
	h := extauthz.NewHTTPHandler(a, extauthz.HTTPOptions{})
	s.http = httptest.NewServer(h)
	t.Cleanup(s.http.Close)
	return s
}

func (s *browserService) check(t *testing.T, method, path string, h map[string]string) *authv3.CheckResponse {
	t.Helper()
	got, err := extauthz.Check(t.Context(), s.conn, extauthz.Probe{Method: method, Host: appHost, Path: path, Headers: h})
	if err != nil {
		t.Fatal(err)
	}
	return got
}

// nav is a browser navigation's headers with cookies.
func nav(cookies string) map[string]string {
	h := map[string]string{"sec-fetch-mode": "navigate", "accept": "text/html"}
	if cookies != "" {
		h["cookie"] = cookies
	}
	return h
}

func responseHeaders(r *authv3.CheckResponse) []*corev3.HeaderValueOption {
	if d := r.GetDeniedResponse(); d != nil {
		return d.GetHeaders()
	}
	return r.GetOkResponse().GetResponseHeadersToAdd()
}

// cookiesOf returns a Cookie header holding every cookie the answer sets (deleted ones left out).
func cookiesOf(t *testing.T, r *authv3.CheckResponse, prev string) string {
	t.Helper()
	m := map[string]string{}
	for _, part := range strings.Split(prev, "; ") {
		if n, v, ok := strings.Cut(part, "="); ok {
			m[n] = v
		}
	}
	for _, o := range responseHeaders(r) {
		if o.GetHeader().GetKey() != "set-cookie" {
			continue
		}
		c, err := http.ParseSetCookie(o.GetHeader().GetValue())
		if err != nil {
			t.Fatal(err)
		}
		if c.MaxAge < 0 {
			delete(m, c.Name)
		} else {
			m[c.Name] = c.Value
		}
	}
	var out []string
	for n, v := range m {
		out = append(out, n+"="+v)
	}
	return strings.Join(out, "; ")
}

func locationOf(r *authv3.CheckResponse) string {
	for _, o := range responseHeaders(r) {
		if o.GetHeader().GetKey() == "location" {
			return o.GetHeader().GetValue()
		}
	}
	return ""
}

// hostedUILogin signs in at the dev issuer's real login form and returns the callback path.
func hostedUILogin(t *testing.T, authorize string) string {
	t.Helper()
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	u, _ := url.Parse(authorize)
	form := u.Query()
	form.Set("username", "alice")
	form.Set("password", "pw")
	u.RawQuery = ""
	resp, err := noFollow.PostForm(u.String(), form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cb, _ := url.Parse(resp.Header.Get("Location"))
	return cb.RequestURI()
}

var (
	sealedValue = regexp.MustCompile(`^([^=]+)=[^;]+;`)
	txName      = regexp.MustCompile(`\.tx\.[A-Za-z0-9_-]+=`)
	subHeader   = regexp.MustCompile(`^[0-9a-f-]{36}$`)
)

// normalize replaces what is random in a sign-in answer (sealed cookie values, the transaction cookie's
// hashed name, state, nonce, PKCE challenge) with fixed text, so the rest is compared exactly.
func normalize(r *authv3.CheckResponse, issuer string) {
	for _, o := range responseHeaders(r) {
		h := o.GetHeader()
		switch h.GetKey() {
		case "set-cookie":
			v := txName.ReplaceAllString(h.GetValue(), ".tx.HASH=")
			if !strings.Contains(v, "=; ") && !strings.HasSuffix(v, "=") {
				v = sealedValue.ReplaceAllString(v, "$1=SEALED;")
			}
			h.Value = v
		case "location":
			h.Value = strings.Replace(h.GetValue(), issuer, "https://ISSUER", 1)
			if u, err := url.Parse(h.GetValue()); err == nil && u.RawQuery != "" {
				q := u.Query()
				for _, k := range []string{"state", "nonce", "code_challenge"} {
					if q.Has(k) {
						q.Set(k, strings.ToUpper(k))
					}
				}
				u.RawQuery = q.Encode()
				h.Value = u.String()
			}
		}
	}
	for _, o := range r.GetOkResponse().GetHeaders() {
		if subHeader.MatchString(o.GetHeader().GetValue()) {
			o.Header.Value = "SUB"
		}
	}
}

// TestBrowserGolden: the CheckResponses of the browser flow over gRPC with the service's codec, compared
// with testdata (random parts normalised): the redirect to sign in (302, Location, each Set-Cookie its own
// appended option, no-store), 401 login_required JSON for a fetch, the callback's success, an allow
// carrying a refreshed session's cookie in response_headers_to_add, and logout.
func TestBrowserGolden(t *testing.T) {
	t.Parallel()
	s := newBrowserService(t, 10*time.Minute)
	s.iss.SetTokenTTL(5 * time.Minute) // within refresh_before: the first signed-in check refreshes
	steps := []struct {
		name   string
		method string
		path   func(prev *authv3.CheckResponse) string
		nav    bool
	}{
		{"browser_redirect_to_sign_in", "GET", func(*authv3.CheckResponse) string { return "/app?x=1" }, true},
		{"browser_callback_success", "GET", func(prev *authv3.CheckResponse) string { return hostedUILogin(t, locationOf(prev)) }, true},
		{"browser_allow_refreshed_cookie", "GET", func(*authv3.CheckResponse) string { return "/app?x=1" }, true},
		{"browser_login_required_json", "GET", func(*authv3.CheckResponse) string { return "/app/data" }, false},
		{"browser_logout", "POST", func(*authv3.CheckResponse) string { return "/_authz/logout" }, false},
	}
	var prev *authv3.CheckResponse
	cookies := ""
	for _, st := range steps {
		h := nav(cookies)
		switch {
		case st.name == "browser_login_required_json":
			h = map[string]string{"sec-fetch-mode": "cors", "accept": "*/*"} // no session: a fetch
		case st.method == "POST":
			h["origin"] = "https://" + appHost
		}
		got := s.check(t, st.method, st.path(prev), h)
		if st.name != "browser_login_required_json" {
			cookies = cookiesOf(t, got, cookies)
			prev = got
		}
		got = proto.Clone(got).(*authv3.CheckResponse)
		normalize(got, s.iss.DomainURL())
		t.Run(st.name, func(t *testing.T) { golden(t, filepath.Join("testdata", st.name+".golden"), got) })
	}
}

// TestBrowserHTTPProtocol: the same flow over the HTTP protocol: a deny passes its status, Location,
// every Set-Cookie and body; a refreshed session's allow is a 200 with Set-Cookie.
func TestBrowserHTTPProtocol(t *testing.T) {
	t.Parallel()
	s := newBrowserService(t, 10*time.Minute)
	s.iss.SetTokenTTL(5 * time.Minute)
	noFollow := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	jar := map[string]string{}
	do := func(path string) *http.Response {
		req, _ := http.NewRequest("GET", s.http.URL+path, nil)
		req.Host = appHost
		req.Header.Set("Sec-Fetch-Mode", "navigate")
		req.Header.Set("Accept", "text/html")
		for n, v := range jar {
			req.AddCookie(&http.Cookie{Name: n, Value: v})
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		for _, c := range resp.Cookies() {
			if c.MaxAge < 0 {
				delete(jar, c.Name)
			} else {
				jar[c.Name] = c.Value
			}
		}
		return resp
	}
	resp := do("/app?x=1")
	if resp.StatusCode != http.StatusFound || !strings.HasPrefix(resp.Header.Get("Location"), s.iss.DomainURL()) ||
		len(resp.Header.Values("Set-Cookie")) == 0 || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("sign-in redirect over HTTP: %d %v", resp.StatusCode, resp.Header)
	}
	resp = do(hostedUILogin(t, resp.Header.Get("Location")))
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/app?x=1" {
		t.Fatalf("callback over HTTP: %d %v", resp.StatusCode, resp.Header)
	}
	resp = do("/app?x=1")
	if resp.StatusCode != http.StatusOK || len(resp.Header.Values("Set-Cookie")) == 0 || resp.Header.Get("X-Auth-Username") != "alice" {
		t.Fatalf("refreshed allow over HTTP: %d %v, want 200 with Set-Cookie", resp.StatusCode, resp.Header)
	}
}

// TestStrippedCookieNotShared: the allows of one cached token read from a cookie, for requests with
// different other cookies, each carry their own request's Cookie header: an answer holding a request's
// own header is never served from the cached identity's pre-encoded bytes.
func TestStrippedCookieNotShared(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	v, err := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID},
		TokenUse: "any", Keys: testkit.LoadedSet(t, iss)}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := authz.New(authz.Options{Verifier: v, Sources: []token.Source{{Cookie: "id_token"}}, Cache: cacheOn,
		Headers: authz.IdentityHeaders{Sub: "x-auth-sub"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := extauthz.NewServer(a)
	tok := iss.MustMint(t, iss.Access())
	for _, other := range []string{"a=1", "b=2", "c=3"} {
		pr := extauthz.Probe{Method: "GET", Host: appHost, Path: "/", Headers: map[string]string{"cookie": other + "; id_token=" + tok}}
		raw, err := srv.Check(t.Context(), pr.CheckRequest())
		if err != nil {
			t.Fatal(err)
		}
		got := extauthz.Summarize(raw)
		want := "cookie: " + other
		found := false
		for _, s := range got.Set {
			found = found || s == want
		}
		if !got.Allowed || !found {
			t.Errorf("request with %q: allowed %v, headers set %v, want %q", other, got.Allowed, got.Set, want)
		}
	}
}
