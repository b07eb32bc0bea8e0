package testkit_test

import (
	"errors"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/testkit"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// TestKit: the pre-generated keys are distinct 2048-bit keys, and a started issuer's tokens verify against
// its loaded key set while tampered ones do not.
func TestKit(t *testing.T) {
	t.Parallel()
	seen := map[string]bool{}
	for n := range testkit.Keys {
		k := testkit.Key(t, n, "k")
		if bits := k.Private.N.BitLen(); bits != 2048 {
			t.Errorf("key %d has %d bits, want 2048", n, bits)
		}
		if err := k.Private.Validate(); err != nil {
			t.Errorf("key %d: %v", n, err)
		}
		seen[k.Private.N.String()] = true
	}
	if len(seen) != testkit.Keys {
		t.Errorf("%d distinct keys, want %d", len(seen), testkit.Keys)
	}
	iss := testkit.Start(t)
	v, err := token.NewVerifier([]token.Pool{{Name: "main", Issuers: []string{iss.URL}, ClientIDs: []string{iss.ClientID},
		TokenUse: "any", Keys: testkit.LoadedSet(t, iss)}})
	if err != nil {
		t.Fatal(err)
	}
	tok := testkit.Mint(t, iss, iss.Access())
	if _, err := v.Verify(t.Context(), tok); err != nil {
		t.Fatalf("minted token: %v", err)
	}
	if _, err := v.Verify(t.Context(), testkit.Tamper(tok)); !errors.Is(err, token.ErrSignature) {
		t.Errorf("tampered token: %v, want ErrSignature", err)
	}
	if _, err := v.Verify(t.Context(), testkit.WithKID(tok, "nope")); !errors.Is(err, token.ErrKeyUnknown) {
		t.Errorf("unknown kid: %v, want ErrKeyUnknown", err)
	}
}
