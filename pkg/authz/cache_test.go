package authz_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/devissuer"
	"github.com/cognito-authz/cognito-authz/pkg/jwks"
	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// clock is a settable time source shared by the verifier and, through it, the cache.
type clock struct{ ns atomic.Int64 }

func newClock(t time.Time) *clock { c := &clock{}; c.set(t); return c }
func (c *clock) Now() time.Time   { return time.Unix(0, c.ns.Load()) }
func (c *clock) set(t time.Time)  { c.ns.Store(t.UnixNano()) }

// t0 is the fixed start of the cache tests' clock.
var t0 = time.Unix(1_800_000_000, 0)

const leeway = 30 * time.Second

type cacheFixture struct {
	iss   *devissuer.Issuer
	set   *jwks.Set
	clock *clock
	a     *authz.Authorizer
}

func newCached(t testing.TB, opts authz.CacheOptions) *cacheFixture {
	t.Helper()
	iss := testkit.Start(t)
	set, err := jwks.New(jwks.Options{URL: iss.JWKSURL(), Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	f := &cacheFixture{iss: iss, set: set, clock: newClock(t0)}
	v, err := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID},
		TokenUse: "any", Keys: set}}, token.WithClock(f.clock.Now), token.WithLeeway(leeway), token.WithClaims("custom:tenant"))
	if err != nil {
		t.Fatal(err)
	}
	f.a, err = authz.New(authz.Options{Verifier: v, Headers: headers, ForwardToken: true, Cache: opts})
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// mint signs an access token issued at t0, valid for an hour, made distinct by n.
func (f *cacheFixture) mint(t testing.TB, n int) string {
	t.Helper()
	c := f.iss.Access()
	c["iat"], c["auth_time"], c["exp"], c["jti"] = t0.Unix(), t0.Unix(), t0.Add(time.Hour).Unix(), fmt.Sprintf("jti-%d", n)
	return f.iss.MustMint(t, c)
}

var cacheOn = authz.CacheOptions{MaxEntries: 1000, MaxBytes: 4 << 20, NegativeTTL: 10 * time.Second}

func wantDecision(t *testing.T, d authz.Decision, want authz.Reason) {
	t.Helper()
	if d.Reason != want {
		t.Fatalf("Check() = %s %s (%v), want %s", d.Outcome, d.Reason, d.Err, want)
	}
}

// TestCacheExpiryExact: a cached token is served up to the last instant it would verify (exp plus leeway,
// by the verifier's clock) and not at that instant.
func TestCacheExpiryExact(t *testing.T) {
	t.Parallel()
	f := newCached(t, cacheOn)
	tok := f.mint(t, 1)
	exp := t0.Add(time.Hour)
	wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonOK)

	f.clock.set(exp.Add(leeway - time.Second))
	if !f.a.Cached(tok) {
		t.Fatal("not served from the cache at exp+leeway-1s")
	}
	d := f.a.Check(t.Context(), bearer(tok))
	wantDecision(t, d, authz.ReasonOK)
	if d.Identity == nil || d.Identity.Subject == "" {
		t.Fatalf("cached allow without its identity: %+v", d.Identity)
	}

	f.clock.set(exp.Add(leeway))
	if f.a.Cached(tok) {
		t.Fatal("served from the cache at exp+leeway")
	}
	wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonTokenExpired)
}

// TestCacheNotYetValid: a token verified inside its nbf leeway is not served when the clock goes back
// before it (a wall clock can step back); Verify would refuse it then too.
func TestCacheNotYetValid(t *testing.T) {
	t.Parallel()
	f := newCached(t, cacheOn)
	c := f.iss.Access()
	c["iat"], c["nbf"], c["exp"] = t0.Unix(), t0.Add(20*time.Second).Unix(), t0.Add(time.Hour).Unix()
	tok := f.iss.MustMint(t, c)
	wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonOK) // nbf - leeway <= t0
	f.clock.set(t0.Add(-11 * time.Second))                               // before nbf - leeway
	if f.a.Cached(tok) {
		t.Fatal("served from the cache before nbf - leeway")
	}
	wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonTokenNotYetValid)
}

// TestCacheKeyRemoved: with a warm cache, a key that leaves the JWKS on refresh stops its tokens on the
// next request.
func TestCacheKeyRemoved(t *testing.T) {
	t.Parallel()
	f := newCached(t, cacheOn)
	tok := f.mint(t, 1)
	for range 2 {
		wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonOK)
	}
	if !f.a.Cached(tok) {
		t.Fatal("not cached")
	}
	rotated := testkit.Key(t, 1, "rotated-key")
	f.iss.SetKeys(rotated, rotated)
	if err := f.set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonKeyUnknown)
	if f.a.Cached(tok) {
		t.Fatal("a token of a removed key is still cached")
	}
	// The new key's tokens verify and are cached.
	fresh := f.mint(t, 2)
	wantDecision(t, f.a.Check(t.Context(), bearer(fresh)), authz.ReasonOK)
	if !f.a.Cached(fresh) {
		t.Fatal("a token of the new key is not cached")
	}
}

// TestCacheNegative: a bad signature against a known key is answered from the cache for NegativeTTL; an
// unknown kid and unavailable keys are never cached.
func TestCacheNegative(t *testing.T) {
	t.Parallel()
	f := newCached(t, cacheOn)
	good := f.mint(t, 1)
	tampered := good[:len(good)-6] + "AAAAAA"
	wantDecision(t, f.a.Check(t.Context(), bearer(tampered)), authz.ReasonSignatureInvalid)
	if !f.a.Cached(tampered) {
		t.Fatal("bad signature against a known key not cached")
	}
	d := f.a.Check(t.Context(), bearer(tampered))
	wantDecision(t, d, authz.ReasonSignatureInvalid)
	if d.Err == nil {
		t.Error("cached deny without its cause")
	}
	// The real token is another key: it is not affected by its tampered copy.
	wantDecision(t, f.a.Check(t.Context(), bearer(good)), authz.ReasonOK)

	f.clock.set(t0.Add(10 * time.Second))
	if f.a.Cached(tampered) {
		t.Fatal("negative entry served past NegativeTTL")
	}

	stranger := testkit.Key(t, 2, "unknown-kid")
	c := f.iss.Access()
	c["iat"], c["exp"] = t0.Unix(), t0.Add(time.Hour).Unix()
	unknown, err := devissuer.Sign(stranger, nil, c)
	if err != nil {
		t.Fatal(err)
	}
	wantDecision(t, f.a.Check(t.Context(), bearer(unknown)), authz.ReasonKeyUnknown)
	if f.a.Cached(unknown) {
		t.Fatal("unknown kid cached")
	}
}

func TestCacheKeysUnavailableNotCached(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set, err := jwks.New(jwks.Options{URL: "http://127.0.0.1:1/jwks.json", Logger: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	v, err := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID},
		TokenUse: "any", Keys: set}})
	if err != nil {
		t.Fatal(err)
	}
	a, err := authz.New(authz.Options{Verifier: v, Headers: headers, Cache: cacheOn})
	if err != nil {
		t.Fatal(err)
	}
	tok := iss.MustMint(t, iss.Access())
	wantDecision(t, a.Check(t.Context(), bearer(tok)), authz.ReasonKeysUnavailable)
	if a.Cached(tok) {
		t.Fatal("keys_unavailable cached")
	}
}

// TestCacheBounded: more tokens than either bound allows leave the cache within both.
func TestCacheBounded(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name string
		opts authz.CacheOptions
	}{
		{name: "entries", opts: authz.CacheOptions{MaxEntries: 20, MaxBytes: 64 << 20}},
		{name: "bytes", opts: authz.CacheOptions{MaxEntries: 100_000, MaxBytes: 16 << 10}},
	}
	f := newCached(t, cacheOn)
	toks := make([]string, 120)
	for i := range toks {
		toks[i] = f.mint(t, i)
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			// A second authorizer over f's issuer, key set and clock, with the bounds under test.
			v, err := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{f.iss.URL}, ClientIDs: []string{f.iss.ClientID},
				TokenUse: "any", Keys: f.set}}, token.WithClock(f.clock.Now))
			if err != nil {
				t.Fatal(err)
			}
			a, err := authz.New(authz.Options{Verifier: v, Headers: headers, Cache: tt.opts})
			if err != nil {
				t.Fatal(err)
			}
			for _, tok := range toks {
				wantDecision(t, a.Check(t.Context(), bearer(tok)), authz.ReasonOK)
			}
			n, w := a.CacheSize()
			if n > tt.opts.MaxEntries || w > uint64(tt.opts.MaxBytes) || n == 0 {
				t.Fatalf("cache holds %d entries weighing %d; bounds %d entries, %d bytes", n, w, tt.opts.MaxEntries, tt.opts.MaxBytes)
			}
		})
	}
}

// TestCacheConcurrent runs hits, misses and negative entries at once, for the race detector.
func TestCacheConcurrent(t *testing.T) {
	t.Parallel()
	f := newCached(t, authz.CacheOptions{MaxEntries: 8, MaxBytes: 1 << 20, NegativeTTL: time.Second})
	var toks []string
	for i := range 16 {
		toks = append(toks, f.mint(t, i))
	}
	bad := toks[0][:len(toks[0])-4] + "AAAA"
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := range 200 {
				tok := toks[(w*7+i)%len(toks)]
				want := authz.ReasonOK
				if i%10 == 0 {
					tok, want = bad, authz.ReasonSignatureInvalid
				}
				if d := f.a.Check(context.Background(), bearer(tok)); d.Reason != want {
					t.Errorf("Check() = %s, want %s", d.Reason, want)
					return
				}
			}
		})
	}
	wg.Wait()
}

// TestCacheServesIdentityNotDecision: a cached allow carries the identity, so requirements of the policy
// can still be applied to it per request, and the same headers as a fresh verification.
func TestCacheServesIdentityNotDecision(t *testing.T) {
	t.Parallel()
	f := newCached(t, cacheOn)
	c := f.iss.IDToken()
	c["iat"], c["exp"] = t0.Unix(), t0.Add(time.Hour).Unix()
	tok := f.iss.MustMint(t, jwt.MapClaims(c))
	first := f.a.Check(t.Context(), bearer(tok))
	second := f.a.Check(t.Context(), bearer(tok))
	wantDecision(t, second, authz.ReasonOK)
	if second.Identity != first.Identity {
		t.Error("cache hit did not return the verified identity")
	}
	if fmt.Sprint(first.Headers, first.Remove) != fmt.Sprint(second.Headers, second.Remove) {
		t.Errorf("headers differ: fresh %v %v, cached %v %v", first.Headers, first.Remove, second.Headers, second.Remove)
	}
}

// TestCacheKeyReplacedSameKID: with a warm cache, a JWKS that serves another key under the same kid stops
// the old key's tokens on the next request: the cache is bound to the key, not only to its kid.
func TestCacheKeyReplacedSameKID(t *testing.T) {
	t.Parallel()
	f := newCached(t, cacheOn)
	tok := f.mint(t, 1)
	for range 2 {
		wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonOK)
	}
	if !f.a.Cached(tok) {
		t.Fatal("not cached")
	}
	// A refresh that serves the same key keeps the entry.
	if err := f.set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !f.a.Cached(tok) {
		t.Fatal("a refresh serving the same key dropped the entry")
	}
	replaced, err := devissuer.NewKey(f.iss.SigningKey().ID)
	if err != nil {
		t.Fatal(err)
	}
	f.iss.SetKeys(replaced, replaced)
	if err := f.set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if !f.set.Has(replaced.ID) {
		t.Fatalf("the kid %q is no longer held", replaced.ID)
	}
	wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonSignatureInvalid)
	// The replacing key's tokens verify and are cached.
	fresh := f.mint(t, 2)
	wantDecision(t, f.a.Check(t.Context(), bearer(fresh)), authz.ReasonOK)
	if !f.a.Cached(fresh) {
		t.Fatal("a token of the replacing key is not cached")
	}
}

// TestCacheNegativeFloodKeepsIdentities: a flood of bad signatures, many times the cache's size, evicts no
// verified identity: failures have a budget of their own.
func TestCacheNegativeFloodKeepsIdentities(t *testing.T) {
	t.Parallel()
	const warm = 64
	f := newCached(t, authz.CacheOptions{MaxEntries: warm, MaxBytes: 64 << 20, NegativeTTL: time.Minute})
	toks := make([]string, warm)
	for i := range toks {
		toks[i] = f.mint(t, i)
		for range 2 {
			wantDecision(t, f.a.Check(t.Context(), bearer(toks[i])), authz.ReasonOK)
		}
	}
	good := toks[0]
	sig := strings.LastIndexByte(good, '.') + 1
	for i := range 20 * warm {
		// Distinct signatures of base64url digits, away from the last character's padding bits.
		bad := good[:sig+10] + fmt.Sprintf("%08d", i) + good[sig+18:]
		wantDecision(t, f.a.Check(t.Context(), bearer(bad)), authz.ReasonSignatureInvalid)
	}
	f.a.CleanUpCache()
	for i, tok := range toks {
		if !f.a.Cached(tok) {
			t.Errorf("warm identity %d was evicted by the flood of bad signatures", i)
		}
	}
	if n, _ := f.a.CacheSize(); n != warm {
		t.Errorf("identities held = %d, want %d", n, warm)
	}
}
