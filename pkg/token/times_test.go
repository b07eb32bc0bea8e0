package token_test

import (
	"errors"
	"testing"
	"time"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// TestIdentityTimes: Expires and NotBefore are exactly the instants at which Verify starts and stops
// accepting the token, fractional NumericDates included, so a cache that serves while ValidAt holds serves
// exactly when Verify would have passed.
func TestIdentityTimes(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set := testkit.LoadedSet(t, iss)
	key := iss.SigningKey()
	const leeway = 30 * time.Second
	tests := []struct {
		name                    string
		claims                  string // JSON overrides of the time claims
		wantExpires, wantNotBef time.Time
	}{
		{name: "whole_seconds", claims: `"iat":1800000000,"exp":1800003600`,
			wantExpires: now.Add(time.Hour + leeway), wantNotBef: now.Add(-leeway)},
		{name: "fractional_exp_truncated", claims: `"iat":1800000000,"exp":1800003600.9`,
			wantExpires: now.Add(time.Hour + leeway), wantNotBef: now.Add(-leeway)},
		{name: "nbf_after_iat", claims: `"iat":1800000000,"nbf":1800000100.5,"exp":1800003600`,
			wantExpires: now.Add(time.Hour + leeway), wantNotBef: now.Add(100*time.Second - leeway)},
		{name: "nbf_before_iat", claims: `"iat":1800000000,"nbf":1799999000,"exp":1800003600`,
			wantExpires: now.Add(time.Hour + leeway), wantNotBef: now.Add(-leeway)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			tok := rawClaims(t, key, timed(iss.Access()), tt.claims)
			// Verify at a time inside the window to read the identity.
			id, err := newVerifier(t, iss, set, "access", token.WithClock(func() time.Time { return tt.wantNotBef })).Verify(t.Context(), tok)
			if err != nil {
				t.Fatal(err)
			}
			if !id.Expires.Equal(tt.wantExpires) || !id.NotBefore.Equal(tt.wantNotBef) {
				t.Fatalf("Expires, NotBefore = %v, %v; want %v, %v", id.Expires, id.NotBefore, tt.wantExpires, tt.wantNotBef)
			}
			// ValidAt agrees with Verify on both sides of both edges, to the nanosecond.
			for _, at := range []time.Time{
				id.NotBefore.Add(-time.Nanosecond), id.NotBefore, id.Expires.Add(-time.Nanosecond), id.Expires,
			} {
				_, err := newVerifier(t, iss, set, "access", token.WithClock(func() time.Time { return at })).Verify(t.Context(), tok)
				verifies := err == nil
				if err != nil && !errors.Is(err, token.ErrExpired) && !errors.Is(err, token.ErrNotYetValid) {
					t.Fatalf("Verify at %v: %v", at, err)
				}
				if id.ValidAt(at) != verifies {
					t.Errorf("at %v: ValidAt = %v, Verify accepts = %v", at, id.ValidAt(at), verifies)
				}
			}
		})
	}
}

// TestKeyHeld: an identity knows whether its signing key is still in its pool's key set.
func TestKeyHeld(t *testing.T) {
	t.Parallel()
	iss := testkit.Start(t)
	set := testkit.LoadedSet(t, iss)
	id, err := newVerifier(t, iss, set, "access").Verify(t.Context(), sign(t, iss.SigningKey(), nil, timed(iss.Access())))
	if err != nil {
		t.Fatal(err)
	}
	if !id.KeyHeld() {
		t.Fatal("KeyHeld() = false right after verifying")
	}
	iss.SetKeys(mustOtherKey(t, "rotated"), mustOtherKey(t, "rotated"))
	if err := set.Refresh(t.Context()); err != nil {
		t.Fatal(err)
	}
	if id.KeyHeld() {
		t.Fatal("KeyHeld() = true after the key left the JWKS")
	}
	if (&token.Identity{KID: id.KID}).KeyHeld() {
		t.Fatal("an identity no verifier made claims a held key")
	}
}

// BenchmarkVerify is the full cost of one token: shape check, header and claims decoding, key lookup, one
// RS256 signature check, and the Cognito claim checks.
