package authz_test

import (
	"context"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// TestCachedCheckAllocatesNothing: a cache hit, allowed or a cached bad signature, allocates nothing in
// authz.Check (the look-alike header check once cost it 4 allocations per request).
func TestCachedCheckAllocatesNothing(t *testing.T) { // not parallel: AllocsPerRun
	if authz.RaceEnabled {
		t.Skip("the race detector allocates")
	}
	f := newCached(t, cacheOn)
	tok := f.mint(t, 1)
	for _, tt := range []struct {
		name string
		req  *authz.Request
	}{
		{name: "allow", req: bearer(tok)},
		{name: "bad_signature", req: bearer(tok[:len(tok)-6] + "AAAAAA")},
	} {
		f.a.Check(t.Context(), tt.req) // fill the cache
		if n := testing.AllocsPerRun(100, func() { f.a.Check(t.Context(), tt.req) }); n != 0 {
			t.Errorf("%s: a cached Check allocates %.0f times, want 0", tt.name, n)
		}
	}
}

// BenchmarkCheck is one decision: cached (a token seen before), uncached (the cache off: a full
// verification), and a bad signature answered from the negative cache.
func BenchmarkCheck(b *testing.B) {
	for _, bc := range []struct {
		name   string
		cache  authz.CacheOptions
		tamper bool
		want   authz.Reason
	}{
		{name: "cached", cache: cacheOn, want: authz.ReasonOK},
		{name: "uncached", want: authz.ReasonOK},
		{name: "bad_signature_cached", cache: cacheOn, tamper: true, want: authz.ReasonSignatureInvalid},
	} {
		b.Run(bc.name, func(b *testing.B) {
			f := newCached(b, bc.cache)
			tok := f.mint(b, 1)
			if bc.tamper {
				tok = tok[:len(tok)-6] + "AAAAAA"
			}
			req := bearer(tok)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				if d := f.a.Check(ctx, req); d.Reason != bc.want {
					b.Fatalf("Check() = %s, want %s", d.Reason, bc.want)
				}
			}
		})
	}
}

// BenchmarkSignedIn compares a signed-in browser's cached Check (the session cookie opened from the cache
// of opened sessions, its access token from the verified-token cache, our cookie stripped from the Cookie
// header) with a cached Bearer Check of the same Authorizer.
func BenchmarkSignedIn(b *testing.B) {
	fx := newBrowserFixture(b, false)
	j := newJar()
	fx.signIn(b, j, "/app", "bench", "users")
	tok := fx.iss.MustMint(b, fx.iss.Access())
	for _, bc := range []struct {
		name string
		req  *authz.Request
	}{
		{"bearer_cached", &authz.Request{Method: "GET", Host: app, Path: "/api/x", Headers: token.HeaderMap{"authorization": "Bearer " + tok}}},
		{"session_cached", j.nav(app, "/app/x")},
	} {
		b.Run(bc.name, func(b *testing.B) {
			ctx := context.Background()
			if d := fx.a.Check(ctx, bc.req); d.Reason != authz.ReasonOK {
				b.Fatalf("Check() = %s (%v)", d.Reason, d.Err)
			}
			b.ReportAllocs()
			for b.Loop() {
				if d := fx.a.Check(ctx, bc.req); d.Reason != authz.ReasonOK {
					b.Fatalf("Check() = %s", d.Reason)
				}
			}
		})
	}
}
