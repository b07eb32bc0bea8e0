package token_test

import (
	"errors"
	"slices"
	"strings"
	"testing"

	"github.com/golang-jwt/jwt/v5"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// sentinels is every error Extract and Verify may wrap; any error they return must wrap one.
var sentinels = []error{
	token.ErrMissing, token.ErrMalformed, token.ErrTooLarge,
	token.ErrAlgorithm, token.ErrKIDMissing, token.ErrHeader, token.ErrIssuer, token.ErrSignature,
	token.ErrExpired, token.ErrNotYetValid, token.ErrClaims, token.ErrTokenUse, token.ErrClient,
	token.ErrKeyUnknown, token.ErrKeysUnavailable,
}

func wrapsSentinel(err error) bool {
	return slices.ContainsFunc(sentinels, func(s error) bool { return errors.Is(err, s) })
}

// compact is the shape Extract promises: three segments of base64url characters.
func compact(s string) bool {
	if strings.Count(s, ".") != 2 {
		return false
	}
	return strings.Trim(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.") == ""
}

func FuzzExtract(f *testing.F) {
	for _, s := range []string{
		"Bearer a.b.c", "bearer a.b.c", " \tBEARER\t a.b.c ", "Bearer", "Bearer ", "Basic xyz", "Bearerxyz",
		"", "Bearer a.b.c, Bearer d.e.f", "Bearer a.b", "Bearer a.b.c.d", "Bearer a+b.c/d.e=", "Bearer a.b.\xff",
		"id_token=a.b.c", "x=1; id_token=a.b.c; y", "id_token=\"a.b.c\"", "Bearer " + strings.Repeat("A", 200),
	} {
		f.Add(s)
	}
	const max = 128
	sources := []token.Source{token.BearerSource, {Cookie: "id_token"}, {Header: "x-jwt"}}
	f.Fuzz(func(t *testing.T, v string) {
		h := token.HeaderMap{"authorization": v, "cookie": v, "x-jwt": v}
		got, err := token.Extract(h, sources, max)
		if err != nil {
			if got != "" {
				t.Errorf("Extract(%q) = %q with error %v", v, got, err)
			}
			if !errors.Is(err, token.ErrMissing) && !errors.Is(err, token.ErrMalformed) && !errors.Is(err, token.ErrTooLarge) {
				t.Errorf("Extract(%q) error = %v, wraps none of the sentinels", v, err)
			}
			return
		}
		if len(got) > max {
			t.Errorf("Extract(%q) = %d bytes, over the bound %d", v, len(got), max)
		}
		if !compact(got) {
			t.Errorf("Extract(%q) = %q, not three base64url segments", v, got)
		}
		if !strings.Contains(v, got) {
			t.Errorf("Extract(%q) = %q, not part of the input", v, got)
		}
	})
}

func FuzzVerify(f *testing.F) {
	iss := testkit.Start(f)
	set := testkit.LoadedSet(f, iss)
	key := iss.SigningKey()
	v := newVerifier(f, iss, set, "any")

	// The only inputs that may verify.
	valid := []string{
		sign(f, key, nil, timed(iss.Access())),
		sign(f, key, nil, timed(iss.IDToken())),
		sign(f, key, nil, timed(iss.M2M())),
		rawClaims(f, key, timed(iss.Access()), `"Cognito:Groups":["admins"]`), // an unknown claim, not the groups
	}
	for _, tok := range valid {
		if _, err := v.Verify(f.Context(), tok); err != nil {
			f.Fatalf("seed does not verify: %v", err)
		}
		f.Add(tok)
		i := strings.LastIndexByte(tok, '.')
		f.Add(tok[:i] + ".")                               // no signature
		f.Add(tok[:i] + "." + tok[i+2:])                   // signature shortened
		f.Add(tok[:i-1] + "x" + tok[i:])                   // payload changed
		f.Add(tok[:i+5] + "\n" + tok[i+5:])                // newline in the signature
		f.Add(tok + "\r")                                  // trailing CR
		f.Add(strings.Replace(tok, ".", "..", 1))          // four segments
		f.Add(tok[:len(tok)-1] + nextB64(tok[len(tok)-1])) // padding bits
		f.Add(tok[strings.IndexByte(tok, '.'):])           // no header
	}
	f.Add(signWith(f, jwt.SigningMethodNone, jwt.UnsafeAllowNoneSignatureType, key.ID, timed(iss.Access())))
	f.Add(sign(f, key, map[string]any{"kid": nil}, timed(iss.Access())))
	f.Add(sign(f, key, map[string]any{"jku": "http://x"}, timed(iss.Access())))
	f.Add(rawClaims(f, key, timed(iss.Access()), `"exp":1e300`))
	f.Add(rawClaims(f, key, timed(iss.Access()), `"cognito:groups":["a"],"cognito:group\u0073":["b"]`))
	f.Add(rawHeader(f, key, `{"alg":"none","kid":"`+key.ID+`","alg":"RS256"}`, timed(iss.Access())))
	for _, s := range []string{"", ".", "..", "a.b.c", "e30.e30.", "eyJhbGciOiJSUzI1NiJ9.e30.AAAA", "\x00", "..."} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		got, err := v.Verify(t.Context(), raw)
		if err != nil {
			if got != nil {
				t.Errorf("Verify() = %+v with error %v", got, err)
			}
			if !wrapsSentinel(err) {
				t.Errorf("Verify() error = %v, wraps none of the sentinels", err)
			}
			return
		}
		if !slices.Contains(valid, raw) {
			t.Fatalf("Verify(%q) accepted an input that is not a validly signed seed: %+v", raw, got)
		}
		if got == nil {
			t.Fatal("Verify() = nil, nil")
		}
	})
}

func BenchmarkVerify(b *testing.B) {
	iss := testkit.Start(b)
	v := newVerifier(b, iss, testkit.LoadedSet(b, iss), "access")
	tok := sign(b, iss.SigningKey(), nil, timed(iss.Access()))
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkVerifyExtraClaims is BenchmarkVerify with three extra claims kept, one of them a claim the
// verifier reads itself: still one pass over the payload.
func BenchmarkVerifyExtraClaims(b *testing.B) {
	iss := testkit.Start(b)
	v := newVerifier(b, iss, testkit.LoadedSet(b, iss), "access", token.WithClaims("custom:tenant", "email_verified", "cognito:groups"))
	tok := sign(b, iss.SigningKey(), nil, timed(iss.Access()))
	ctx := b.Context()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := v.Verify(ctx, tok); err != nil {
			b.Fatal(err)
		}
	}
}
