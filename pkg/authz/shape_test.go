package authz_test

import (
	"strings"
	"testing"

	"github.com/cognito-authz/cognito-authz/pkg/authz"
	"github.com/cognito-authz/cognito-authz/pkg/token"
)

// TestCachedTokenOtherSpellingsMalformed: a cache hit skips the shape scan, so another spelling of a
// cached token (a line break, a space, padding in the signature: Go's base64 decoder would skip some of
// them) must miss the cache and be refused as malformed by the verifier, never served as the cached one.
func TestCachedTokenOtherSpellingsMalformed(t *testing.T) {
	t.Parallel()
	for _, cache := range []struct {
		name string
		opts authz.CacheOptions
	}{{"cache_on", cacheOn}, {"cache_off", authz.CacheOptions{}}} {
		t.Run(cache.name, func(t *testing.T) {
			t.Parallel()
			f := newCached(t, cache.opts)
			tok := f.mint(t, 1)
			wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonOK)
			wantDecision(t, f.a.Check(t.Context(), bearer(tok)), authz.ReasonOK) // a hit, when cached
			i := strings.LastIndexByte(tok, '.') + 8
			tests := []struct{ name, token string }{
				{name: "newline_in_signature", token: tok[:i] + "\n" + tok[i:]},
				{name: "carriage_return_in_signature", token: tok[:i] + "\r" + tok[i:]},
				{name: "padding", token: tok + "=="},
				{name: "space_in_payload", token: strings.Replace(tok, ".", ". ", 1)},
				{name: "fourth_segment", token: tok + ".x"},
			}
			for _, tt := range tests {
				t.Run(tt.name, func(t *testing.T) {
					d := f.a.Check(t.Context(), bearer(tt.token))
					if d.Allowed() || d.Reason != authz.ReasonTokenMalformed {
						t.Fatalf("Check(%q variant) = %s %s, want a token_malformed deny", tt.name, d.Outcome, d.Reason)
					}
				})
			}
		})
	}
}

// TestDecisionSlots: a cached identity's allows share one Slot, a token verified now gets none (its answer
// is encoded once, for this request), and the denies of one reason share theirs.
func TestDecisionSlots(t *testing.T) {
	t.Parallel()
	f := newCached(t, cacheOn)
	tok := f.mint(t, 1)
	first := f.a.Check(t.Context(), bearer(tok))
	second := f.a.Check(t.Context(), bearer(tok))
	third := f.a.Check(t.Context(), bearer(tok))
	if first.Slot != nil {
		t.Error("a token verified now carries a Slot")
	}
	if second.Slot == nil || second.Slot != third.Slot {
		t.Errorf("cache hits carry Slots %p and %p, want one shared", second.Slot, third.Slot)
	}
	m1 := f.a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/", Headers: token.HeaderMap{}})
	m2 := f.a.Check(t.Context(), &authz.Request{Method: "GET", Path: "/", Headers: token.HeaderMap{}})
	if m1.Reason != authz.ReasonTokenMissing || m1.Slot == nil || m1.Slot != m2.Slot {
		t.Errorf("token_missing denies carry Slots %p and %p (%s), want one shared", m1.Slot, m2.Slot, m1.Reason)
	}
}
