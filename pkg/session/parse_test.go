package session

import (
	"encoding/base64"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

func TestSafeReturn(t *testing.T) {
	hosts := NewHosts([]string{"app.example.com", "admin.example.com:8443"})
	tests := []struct {
		name, in, want string
	}{
		{name: "path", in: "/orders", want: "/orders"},
		{name: "path_query_fragment", in: "/a/b?x=1&y=%2F#frag", want: "/a/b?x=1&y=%2F#frag"},
		{name: "root", in: "/", want: "/"},
		{name: "empty", in: "", want: "/"},
		{name: "allowed_https", in: "https://app.example.com/x?y=1", want: "https://app.example.com/x?y=1"},
		{name: "allowed_https_upper", in: "HTTPS://APP.Example.COM/x", want: "https://app.example.com/x"},
		{name: "allowed_https_port", in: "https://app.example.com:444/x", want: "https://app.example.com:444/x"},
		{name: "allowed_exact_port", in: "https://admin.example.com:8443/", want: "https://admin.example.com:8443/"},
		{name: "other_port_of_port_entry", in: "https://admin.example.com/", want: "/"},
		{name: "no_path", in: "https://app.example.com", want: "https://app.example.com/"},
		{name: "protocol_relative", in: "//evil.example/x", want: "/"},
		{name: "triple_slash", in: "///evil.example", want: "/"},
		{name: "backslash", in: `/\evil.example`, want: "/"},
		{name: "backslash_second", in: `\/evil.example`, want: "/"},
		{name: "encoded_tab", in: "/%09/evil.example", want: "/"},
		{name: "raw_tab", in: "/\t/evil.example", want: "/"},
		{name: "encoded_slash", in: "/%2F/evil.example", want: "/"},
		{name: "encoded_slash_lower", in: "/%2f%2fevil.example", want: "/"},
		{name: "encoded_backslash", in: "/%5Cevil.example", want: "/"},
		{name: "crlf", in: "/x\r\nSet-Cookie: a=b", want: "/"},
		{name: "encoded_crlf", in: "/x%0d%0aSet-Cookie:a=b", want: "/"},
		{name: "nul", in: "/x%00", want: "/"},
		{name: "javascript", in: "javascript:alert(1)", want: "/"},
		{name: "javascript_upper", in: "JaVaScRiPt:alert(1)", want: "/"},
		{name: "data", in: "data:text/html,<script>alert(1)</script>", want: "/"},
		{name: "http_not_allowed", in: "http://app.example.com/", want: "/"},
		{name: "unlisted_host", in: "https://evil.example/", want: "/"},
		{name: "suffix_lookalike", in: "https://app.example.com.evil.example/", want: "/"},
		{name: "prefix_lookalike", in: "https://evilapp.example.com/", want: "/"},
		{name: "trailing_dot", in: "https://app.example.com./", want: "/"},
		{name: "cyrillic_a", in: "https://аpp.example.com/", want: "/"},
		{name: "punycode", in: "https://xn--pp-8cd.example.com/", want: "/"},
		{name: "userinfo", in: "https://app.example.com@evil.example/", want: "/"},
		{name: "userinfo_allowed_host", in: "https://evil.example@app.example.com/", want: "/"},
		{name: "userinfo_port_trick", in: "https://app.example.com:443@evil.example/", want: "/"},
		{name: "encoded_at_host", in: "https://app.example.com%40evil.example/", want: "/"},
		{name: "opaque", in: "https:app.example.com/x", want: "/"},
		{name: "scheme_slash_backslash", in: `https:/\evil.example`, want: "/"},
		{name: "relative_no_slash", in: "evil.example", want: "/"},
		{name: "query_only", in: "?x=1", want: "/"},
		{name: "dot_segments", in: "/a/../..//evil.example", want: "/"},
		{name: "dot_segment_encoded", in: "/%2e%2e/x", want: "/"},
		{name: "space", in: "/a b", want: "/"},
		{name: "non_ascii_path", in: "/café", want: "/"},
		{name: "ipv6_host", in: "https://[::1]/", want: "/"},
		{name: "too_long", in: "/" + strings.Repeat("a", maxReturnURL), want: "/"},
		{name: "query_quotes_escaped", in: `/x?a="<b>'`, want: "/x?a=%22%3Cb%3E%27"},
		{name: "bad_percent_escaped", in: "/x?a=%zz", want: "/x?a=%25zz"},
		{name: "port_zero", in: "https://app.example.com:0/", want: "/"},
		{name: "port_leading_zero", in: "https://app.example.com:0443/", want: "/"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := SafeReturn(tt.in, hosts, false); got != tt.want {
				t.Errorf("SafeReturn(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
	if got := SafeReturn("http://app.example.com/x", hosts, true); got != "http://app.example.com/x" {
		t.Errorf("insecure_http: SafeReturn = %q", got)
	}
}

// FuzzSafeReturn: whatever the input, the result is "/" or a same-origin path that a browser resolves on
// this origin, or an https URL on an allowed host; never a header break, and stable under re-validation.
func FuzzSafeReturn(f *testing.F) {
	for _, s := range []string{"/", "/a?b#c", "//evil", `/\evil`, "/%09/evil", "https://app.example.com/x",
		"https://app.example.com@evil/", "javascript:alert(1)", "/%2F%2Fevil", "https://APP.example.com:8443/"} {
		f.Add(s)
	}
	hosts := NewHosts([]string{"app.example.com"})
	f.Fuzz(func(t *testing.T, in string) {
		got := SafeReturn(in, hosts, false)
		for i := 0; i < len(got); i++ {
			if c := got[i]; c <= ' ' || c >= 0x7f || c == '\\' {
				t.Fatalf("SafeReturn(%q) = %q holds byte %#x", in, got, c)
			}
		}
		if again := SafeReturn(got, hosts, false); again != got {
			t.Fatalf("not stable: %q -> %q -> %q", in, got, again)
		}
		// Resolve it as a browser would, against our origin: it must stay on an allowed host.
		base, _ := url.Parse("https://app.example.com/start")
		ref, err := url.Parse(got)
		if err != nil {
			t.Fatalf("SafeReturn(%q) = %q does not parse: %v", in, got, err)
		}
		if u := base.ResolveReference(ref); u.Scheme != "https" || u.Host != "app.example.com" && !strings.HasPrefix(u.Host, "app.example.com:") || u.User != nil {
			t.Fatalf("SafeReturn(%q) = %q leaves the origin: %v", in, got, u)
		}
	})
}

func TestIsNavigation(t *testing.T) {
	tests := []struct {
		name    string
		method  string
		headers map[string]string
		want    bool
	}{
		{name: "navigate", method: "GET", headers: map[string]string{"sec-fetch-mode": "navigate"}, want: true},
		{name: "head_navigate", method: "HEAD", headers: map[string]string{"sec-fetch-mode": "navigate"}, want: true},
		{name: "old_browser_html", method: "GET", headers: map[string]string{"accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}, want: true},
		{name: "fetch_cors", method: "GET", headers: map[string]string{"sec-fetch-mode": "cors", "accept": "text/html"}},
		{name: "fetch_no_cors", method: "GET", headers: map[string]string{"sec-fetch-mode": "no-cors"}},
		{name: "json_accept", method: "GET", headers: map[string]string{"accept": "application/json"}},
		{name: "star_accept", method: "GET", headers: map[string]string{"accept": "*/*"}},
		{name: "html_q0", method: "GET", headers: map[string]string{"accept": "text/html;q=0, application/json"}},
		{name: "no_headers", method: "GET"},
		{name: "post_navigate", method: "POST", headers: map[string]string{"sec-fetch-mode": "navigate"}},
		{name: "preflight", method: "OPTIONS", headers: map[string]string{"access-control-request-method": "GET", "accept": "text/html"}},
		{name: "websocket", method: "GET", headers: map[string]string{"sec-fetch-mode": "navigate", "upgrade": "websocket"}},
		{name: "xhr", method: "GET", headers: map[string]string{"accept": "text/html", "x-requested-with": "XMLHttpRequest"}},
		{name: "bearer", method: "GET", headers: map[string]string{"sec-fetch-mode": "navigate", "authorization": "Bearer x"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := IsNavigation(tt.method, token.HeaderMap(tt.headers)); got != tt.want {
				t.Errorf("IsNavigation = %v, want %v", got, tt.want)
			}
		})
	}
}

func TestParseKeys(t *testing.T) {
	k1 := base64.StdEncoding.EncodeToString(make([]byte, 32))
	k2 := base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", 32)))
	tests := []struct {
		name, in, wantText string
		wantKeys           int
	}{
		{name: "one", in: k1 + "\n", wantKeys: 1},
		{name: "two_comments_blank", in: "# rotated 2026-01\n" + k2 + "\n\n  " + k1 + "  \n", wantKeys: 2},
		{name: "empty", in: "\n# nothing\n", wantText: "no key"},
		{name: "short", in: base64.StdEncoding.EncodeToString(make([]byte, 16)), wantText: "line 1: 16 bytes, want 32"},
		{name: "url_base64", in: strings.Repeat("-", 43) + "=", wantText: "line 1: not standard base64"},
		{name: "hex", in: k1 + "\n" + strings.Repeat("ab", 32), wantText: "line 2"},
		{name: "duplicate", in: k1 + "\n" + k1, wantText: "key 2 repeats key 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, err := ParseKeys([]byte(tt.in))
			if tt.wantText != "" {
				if !errors.Is(err, ErrKeys) || !strings.Contains(err.Error(), tt.wantText) {
					t.Fatalf("ParseKeys error = %v, want ErrKeys with %q", err, tt.wantText)
				}
				if strings.Contains(err.Error(), k1) {
					t.Error("the error echoes a key")
				}
				return
			}
			if err != nil || len(r.keys) != tt.wantKeys {
				t.Fatalf("ParseKeys = %v, %v; want %d keys", r, err, tt.wantKeys)
			}
		})
	}
}

func testSession() *Session {
	now := time.Now()
	return &Session{AccessToken: "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJ4In0.c2ln", RefreshToken: "opaque+/=refresh",
		Email: "a@example.com", Claims: map[string][]string{"custom:tenant": {"acme"}},
		Issued: now.Truncate(time.Second), Expires: now.Add(time.Hour).Truncate(time.Second),
		AccessExpires: now.Add(time.Hour).Truncate(time.Second)}
}

func TestSessionCookies(t *testing.T) {
	k1, k2 := testKey(t), testKey(t)
	c := newCookies(CookieOptions{}, true)
	now := time.Now()
	write := func(t *testing.T, r *KeyRing, s *Session, have jar) *browser {
		t.Helper()
		lines, ok := c.writeSession(r, s, now, have)
		if !ok {
			t.Fatal("session does not fit")
		}
		b := newBrowser()
		b.apply(t, Response{Headers: cookieHeaders(lines)})
		return b
	}
	read := func(r *KeyRing, header string) *Session { return c.readSession(r, readJar(header, c.base), now) }
	big := testSession()
	big.Claims["groups"] = []string{strings.Repeat("g", 9000)}
	tests := []struct {
		name   string
		cookie func(t *testing.T) string
		ring   *KeyRing
		want   bool
	}{
		{name: "round_trip", want: true, ring: ring(t, k1), cookie: func(t *testing.T) string {
			return write(t, ring(t, k1), testSession(), nil).header()
		}},
		{name: "rotation_old_key_opens", want: true, ring: ring(t, k2, k1), cookie: func(t *testing.T) string {
			return write(t, ring(t, k1), testSession(), nil).header()
		}},
		{name: "dropped_key", ring: ring(t, k2), cookie: func(t *testing.T) string {
			return write(t, ring(t, k1), testSession(), nil).header()
		}},
		{name: "tampered", ring: ring(t, k1), cookie: func(t *testing.T) string {
			b := write(t, ring(t, k1), testSession(), nil)
			b.cookies[c.base] = flip(b.cookies[c.base])
			return b.header()
		}},
		{name: "truncated", ring: ring(t, k1), cookie: func(t *testing.T) string {
			b := write(t, ring(t, k1), testSession(), nil)
			b.cookies[c.base] = b.cookies[c.base][:len(b.cookies[c.base])-10]
			return b.header()
		}},
		{name: "garbage", ring: ring(t, k1), cookie: func(t *testing.T) string { return c.base + "=1.!!!; x=y" }},
		{name: "transaction_as_session", ring: ring(t, k1), cookie: func(t *testing.T) string {
			tx := &transaction{expires: now.Add(time.Hour), state: "s"}
			return c.base + "=1." + base64.RawURLEncoding.EncodeToString(ring(t, k1).seal(tx.encode(), c.base))
		}},
		{name: "sealed_for_another_name", ring: ring(t, k1), cookie: func(t *testing.T) string {
			return c.base + "=1." + base64.RawURLEncoding.EncodeToString(ring(t, k1).seal(testSession().encode(), "other"))
		}},
		{name: "expired_session", ring: ring(t, k1), cookie: func(t *testing.T) string {
			s := testSession()
			s.Expires = now.Add(time.Second)
			b := write(t, ring(t, k1), s, nil)
			b.cookies[c.base] = "1." + base64.RawURLEncoding.EncodeToString(ring(t, k1).seal(func() []byte {
				s.Expires = now.Add(-time.Second)
				return s.encode()
			}(), c.base))
			return b.header()
		}},
		{name: "chunked", want: true, ring: ring(t, k1), cookie: func(t *testing.T) string {
			b := write(t, ring(t, k1), big, nil)
			if _, ok := b.cookies[c.base+".2"]; !ok {
				t.Fatalf("9 KB session in %d cookies, want 3", len(b.cookies))
			}
			return b.header()
		}},
		{name: "chunk_missing", ring: ring(t, k1), cookie: func(t *testing.T) string {
			b := write(t, ring(t, k1), big, nil)
			delete(b.cookies, c.base+".1")
			return b.header()
		}},
		{name: "chunks_swapped", ring: ring(t, k1), cookie: func(t *testing.T) string {
			b := write(t, ring(t, k1), big, nil)
			b.cookies[c.base+".1"], b.cookies[c.base+".2"] = b.cookies[c.base+".2"], b.cookies[c.base+".1"]
			return b.header()
		}},
		{name: "shrunk_session_expires_stale_chunks", want: true, ring: ring(t, k1), cookie: func(t *testing.T) string {
			b := write(t, ring(t, k1), big, nil)
			lines, _ := c.writeSession(ring(t, k1), testSession(), now, readJar(b.header(), c.base))
			b.apply(t, Response{Headers: cookieHeaders(lines)})
			if len(b.cookies) != 1 {
				t.Errorf("%d cookies after shrinking, want 1: stale chunks not expired", len(b.cookies))
			}
			return b.header()
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			s := read(tt.ring, tt.cookie(t))
			if (s != nil) != tt.want {
				t.Fatalf("readSession = %v, want a session: %v", s != nil, tt.want)
			}
		})
	}
	if _, ok := c.writeSession(ring(t, k1), &Session{AccessToken: strings.Repeat("x", 30000), Expires: now.Add(time.Hour)}, now, nil); ok {
		t.Error("a 30 KB session was written: want at most maxChunks cookies")
	}
}

func TestStripAndMergedHeaders(t *testing.T) {
	c := newCookies(CookieOptions{}, true)
	r := ring(t, testKey(t))
	lines, _ := c.writeSession(r, testSession(), time.Now(), nil)
	hc, _ := http.ParseSetCookie(lines[0])
	ours := hc.Name + "=" + hc.Value
	tests := []struct {
		name, header, stripped string
		session                bool
	}{
		{name: "alone", header: ours, stripped: "", session: true},
		{name: "among_others", header: "a=1; " + ours + "; b=2", stripped: "a=1; b=2", session: true},
		{name: "comma_merged", header: "a=1, " + ours + ", b=2", stripped: "a=1, b=2", session: true},
		{name: "transaction_and_chunk", header: "a=1; " + c.tx + "x=y; " + c.base + ".1=z; " + c.base + ".9=keep", stripped: "a=1; " + c.base + ".9=keep"},
		{name: "lookalike_name_kept", header: "x" + c.base + "=1; " + c.base + "x=2", stripped: "x" + c.base + "=1; " + c.base + "x=2"},
		{name: "none", header: "a=1; b=2", stripped: "a=1; b=2"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			if got := c.strip(tt.header); got != tt.stripped {
				t.Errorf("strip = %q, want %q", got, tt.stripped)
			}
			if s := c.readSession(r, readJar(tt.header, c.base), time.Now()); (s != nil) != tt.session {
				t.Errorf("session read = %v, want %v", s != nil, tt.session)
			}
		})
	}
}

func TestCookieAttributes(t *testing.T) {
	tests := []struct {
		name   string
		opts   CookieOptions
		secure bool
		want   []string
		not    []string
	}{
		{name: "host_prefix", secure: true, want: []string{"__Host-cognito_authz=", "Path=/", "HttpOnly", "Secure", "SameSite=Lax"}, not: []string{"Domain"}},
		{name: "domain", opts: CookieOptions{Name: "sid", Domain: "example.com", SameSite: http.SameSiteStrictMode}, secure: true,
			want: []string{"sid=", "Domain=example.com", "Secure", "SameSite=Strict"}, not: []string{"__Host-"}},
		{name: "insecure_http", secure: false, want: []string{"cognito_authz=", "HttpOnly"}, not: []string{"Secure", "__Host-"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			c := newCookies(tt.opts, tt.secure)
			lines, _ := c.writeSession(ring(t, testKey(t)), testSession(), time.Now(), nil)
			for _, w := range tt.want {
				if !strings.Contains(lines[0], w) {
					t.Errorf("%q lacks %q", lines[0], w)
				}
			}
			for _, n := range tt.not {
				if strings.Contains(lines[0], n) {
					t.Errorf("%q has %q", lines[0], n)
				}
			}
		})
	}
}

// FuzzOpenSession: any cookie header is a session or none, never a panic; a session that opens re-encodes
// to itself.
func FuzzOpenSession(f *testing.F) {
	r, _ := NewKeyRing(make([]byte, KeySize))
	c := newCookies(CookieOptions{}, true)
	lines, _ := c.writeSession(r, testSession(), time.Now(), nil)
	good, _ := http.ParseSetCookie(lines[0])
	f.Add(c.base + "=" + good.Value)
	f.Add(c.base + "=2.abc; " + c.base + ".1=def")
	f.Add("a=b; " + c.base + "=; ;;=")
	f.Add(string(testSession().encode()))
	f.Fuzz(func(t *testing.T, header string) {
		if s := c.readSession(r, readJar(header, c.base), time.Now()); s != nil && s.AccessToken == "" {
			t.Fatal("a session without an access token")
		}
		if s, err := decodeSession([]byte(header)); err == nil {
			if again, err := decodeSession(s.encode()); err != nil || again.AccessToken != s.AccessToken {
				t.Fatalf("decode(encode(s)) = %v", err)
			}
		}
		_ = c.strip(header)
	})
}
