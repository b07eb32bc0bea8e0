package session

import (
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// TestSealSession: what SealSession writes is what a Flow with the same keys and cookie options loads, and
// nothing else does; expired, oversized and keyless sessions are refused.
func TestSealSession(t *testing.T) {
	t.Parallel()
	fx := newFixture(t)
	now := time.Now()
	s := testSession()
	header := func(t *testing.T, lines []string) string {
		t.Helper()
		var parts []string
		for _, l := range lines {
			c, err := http.ParseSetCookie(l)
			if err != nil {
				t.Fatalf("bad Set-Cookie %q: %v", l, err)
			}
			if !c.Secure || !c.HttpOnly || c.Path != "/" {
				t.Errorf("Set-Cookie %q: want Secure, HttpOnly, Path=/ as a sign-in writes", l)
			}
			parts = append(parts, c.Name+"="+c.Value)
		}
		return strings.Join(append(parts, "theme=dark"), "; ")
	}
	big := testSession()
	big.Claims = map[string][]string{"groups": {strings.Repeat("g", 9000)}}
	tests := []struct {
		name  string
		keys  *KeyRing
		opts  CookieOptions
		s     *Session
		loads bool
	}{
		{name: "flow_keys", keys: fx.opts.Keys, s: s, loads: true},
		{name: "chunked", keys: fx.opts.Keys, s: big, loads: true},
		{name: "another_key", keys: ring(t, testKey(t)), s: s},
		{name: "another_cookie_name", keys: fx.opts.Keys, opts: CookieOptions{Name: "other"}, s: s},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			lines, err := SealSession(tt.keys, tt.opts, false, tt.s, now)
			if err != nil {
				t.Fatal(err)
			}
			got := fx.flow.Load(Request{Method: "GET", Host: appHost, Path: "/", Headers: token.HeaderMap{"cookie": header(t, lines)}})
			if (got != nil) != tt.loads {
				t.Fatalf("Flow.Load = %v, want a session: %v", got != nil, tt.loads)
			}
			if got != nil && (got.AccessToken != tt.s.AccessToken || got.Email != tt.s.Email) {
				t.Errorf("loaded %+v, want %+v", got, tt.s)
			}
		})
	}
	expired := testSession()
	expired.Expires = now.Add(-time.Second)
	if _, err := SealSession(fx.opts.Keys, CookieOptions{}, false, expired, now); err == nil {
		t.Error("an expired session was sealed")
	}
	huge := &Session{AccessToken: strings.Repeat("x", 30000), Expires: now.Add(time.Hour)}
	if _, err := SealSession(fx.opts.Keys, CookieOptions{}, false, huge, now); !errors.Is(err, ErrTooLarge) {
		t.Errorf("a 30 KB session: err = %v, want ErrTooLarge", err)
	}
	if _, err := SealSession(nil, CookieOptions{}, false, s, now); !errors.Is(err, ErrKeys) {
		t.Errorf("no key ring: err = %v, want ErrKeys", err)
	}
}
